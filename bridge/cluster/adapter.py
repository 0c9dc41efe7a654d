"""Several bridge processes, one set of values: the hub's adapter toward Redis.

Imported only when the config has a ``[cluster]`` table; without it the
bridge never imports Redis. The hub stays the one owner of the values in
each process; this adapter keeps every process's hub in one global order,
by the rules of :mod:`bridge.cluster.protocol`, through
:mod:`bridge.cluster.store`.

How a change travels. The hub applies a local change at once and hands it
to :meth:`ClusterAdapter.send`, which files it (latest value per control)
for the writer thread. The writer runs one Lua script per change, which
increments the control's version, stores the value and publishes
``{control, version, process, origin, value}``, all in one step. The
listener thread of every process applies announcements from the others to
its hub with the origin kind ``cluster``, so its web, OSC, MIDI and state
adapters all see them, and this adapter does not write them back.

Outages. Redis gone: each process keeps serving its own clients, keeps the
latest local value per control, and writes them when Redis is back; the
listener subscribes again, re-reads the hash and applies what differs.
Versions let a process tell that Redis lost a write it had acknowledged
(Redis restarted within its fsync window): it writes that value back, with
its version, when it joins again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge.cluster.protocol import Pending, Versions, checked
from bridge.cluster.scenes import SharedScenes
from bridge.cluster.status import REFUSED_RETRY, Status, redact
from bridge.cluster.store import MEMBER_TTL_MS, Joined, RedisStore, StoreError
from bridge.config import ClusterConfig
from bridge.errors import BridgeError, ClusterRefused, InvalidValue, UnknownControl
from bridge.flow import Workers
from bridge.hub import Held, Hub, Reshaped, same_value
from bridge.logs import LogLimiter
from bridge.model import Change, Origin, Value
from bridge.monitor import IDLE

if TYPE_CHECKING:
    from bridge.scenes.engine import Scenes

log = logging.getLogger(__name__)

#: The origin kind of changes that came from another process.
ORIGIN_KIND = "cluster"
BEAT_INTERVAL = 1.0
#: How long the listener waits for an announcement before it looks at the clock.
LISTEN_TIMEOUT = 0.5
#: Reconnection backoff, doubled after each failed try.
RETRY_MIN = 0.1
RETRY_MAX = REFUSED_RETRY
#: How long start-up waits for Redis before it gives up.
START_TIMEOUT = 5.0
#: A trigger's press that could not be shared within this long is not shared at all (see :meth:`Hub.set`).
FIRE_WITHIN = Held.FIRE_WITHIN


def signature(controls: Any) -> str:
    """A short hash of what must agree between processes: ids, types and ranges, in order."""
    shape = [
        [c.id, c.type, c.min, c.max, c.step] + ([[o.value for o in c.options]] if c.options else []) for c in controls
    ]
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]


def _safe(text: str) -> str:
    """Only characters that need no escaping inside a JSON string built by the write script."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


class ClusterAdapter:
    """Shares the hub's values with every other process of the same ``[cluster]``.

    Locks: ``_apply_lock`` (one settle at a time, so the highest version
    lands last) is taken before the versions' own lock, never after; the
    lock ``_lock`` (the trigger presses to announce, the signature) is
    taken alone. The link's state and counters are :class:`Status`'s.
    """

    name = "cluster"
    monitor = IDLE  # the bridge's (bridge.monitor): one check per message while no drawer is open

    def __init__(
        self,
        hub: Hub,
        config: ClusterConfig,
        targets: Callable[[], list[str]] | None = None,
        scenes: Scenes | None = None,
    ) -> None:
        self.hub, self.config = hub, config
        self.targets = targets or list  # this process's OSC targets, named to be compared (target_names)
        self.url = redact(config.redis)
        self.process_id = _safe(f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}")
        self.signature = signature(hub.controls.values())
        self.store = RedisStore(config.redis, config.name, self.process_id)
        self.versions = Versions(hub.controls)
        self._lock = threading.Lock()  # the trigger presses and the signature
        self._apply_lock = threading.Lock()
        self._ready = threading.Event()
        #: Trigger presses to announce, in order: (control, origin kind, when pressed, changes filed before it).
        self._fires: list[tuple[str, str, float, int]] = []
        self._workers, self._next_beat = Workers(), 0.0
        self._warn = LogLimiter(log, interval=10.0)
        self.status = Status(self.url, config.name)
        self._reshaped: list[str] | None = None  # controls a reload added, to read from Redis
        self.behind: list[str] = []  # controls whose value the first join changed, and all changed since seeded
        self.joined, self._listed_after = self.behind, 0.0  # (and when the processes listed are all alive: _beat)
        #: The show's scenes, shared (:mod:`bridge.cluster.scenes`); None without scenes (a bench's hub alone).
        self.scenes = None if scenes is None else SharedScenes(scenes, self.store)
        if self.scenes is not None:
            self.scenes.wake = self._ready.set

    # -- life cycle ------------------------------------------------------------
    def start(self) -> None:
        """Join the cluster (or stop start-up with a clear message), then start the threads."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self._join(initial=True)
                break
            except StoreError as err:
                self.store.unsubscribe()
                if time.monotonic() > deadline:
                    raise BridgeError(
                        f"cannot reach Redis at {self.url}: {err} (start Redis, or fix [cluster] redis)"
                    ) from err
                time.sleep(0.2)
        self._workers.start((self._listen_loop, "cluster-listen"), (self._write_loop, "cluster-write"))

    def stop(self) -> None:
        """Write what is still queued (briefly), leave the members, close the connections."""
        started = self._workers.running
        self._workers.stop(timeout=5, wake=(self._ready.set,))
        if started:
            self.store.leave()
        self.store.close()

    def describe(self) -> dict[str, Any]:
        return {
            "redis": self.url,
            "name": self.config.name,
            "process": self.process_id,
            **self.status.describe(),
            "queued": self.versions.queued,
            "inflight": self.versions.inflight,
            "outages": self.status.outages,
        }

    def reshape(self, reshaped: Reshaped) -> None:
        """A config reload (under the hub's dispatch order): the new controls are shared from now on.

        Redis is told the new signature, and the values it holds for the
        controls added are read, by the listener thread: never Redis I/O
        under the hub's lock.
        """
        self.versions.reshape(self.hub.controls)
        with self._lock:
            self.signature = signature(self.hub.controls.values())
            self._reshaped = (self._reshaped or []) + list(reshaped.added)

    def _take_reshape(self) -> None:
        """On the listener: tell Redis the signature of a reload, and take what it holds of new controls."""
        with self._lock:
            added, self._reshaped = self._reshaped, None
            mine = self.signature
        if added is None:
            return
        try:
            differ = self.store.reshape(mine)
            stored = self.store.read([cid for cid in added if cid in self.hub.controls])
        except StoreError:
            with self._lock:
                self._reshaped = (self._reshaped or []) + added  # again once Redis is back
            raise
        self.status.agree(differ, mine)
        for cid, (text, version) in stored.items():
            control = self.hub.controls.get(cid)
            value = None if control is None else checked(control, text)
            if value is not None and self.versions.announced(cid, version, value):
                self._settle(cid)

    # -- local changes out -----------------------------------------------------
    def send(self, change: Change) -> None:
        """File a local change for the writer; the latest value per control wins."""
        if change.origin.kind == ORIGIN_KIND:
            return  # it came from the cluster: never written back
        if change.control.trigger:
            with self._lock:
                self._fires.append(
                    (change.control_id, _safe(change.origin.kind), time.monotonic(), self.versions.filed)
                )
            self._ready.set()
            return
        self.versions.file(change.control_id, change.value, _safe(change.origin.kind))
        self._ready.set()

    def _write_loop(self) -> None:
        backoff = RETRY_MIN
        while True:
            self._ready.wait()
            self._ready.clear()
            stopping = self._workers.stopping.is_set()
            batch = self.versions.take()
            if batch is None:
                self._announce_fires(None)  # (not sent: Redis is away, and one held for later is a cue fired late)
                # Redis is away: hold the changes; the listener wakes us when it is back.
                if stopping:
                    if self.versions.queued:
                        log.warning("cluster: %d changes not written: Redis is unreachable", self.versions.queued)
                    return
                continue
            if batch:
                if not self._write(batch, stopping, backoff):
                    if stopping:
                        return
                    backoff = min(RETRY_MAX, backoff * 2)
                    self._ready.set()
                    continue
                backoff = RETRY_MIN
            # After the values changed before them: a GO pressed after a level or a cue's text was set
            # reached the desk of another process before them (its announcement went first).
            self._announce_fires(self.versions.taken)
            try:
                if self.scenes is not None:
                    self.scenes.write()
            except StoreError as err:
                self.status.lost(err)  # (kept: written once Redis is back)
            if stopping:
                return

    def _announce_fires(self, written: int | None) -> None:
        """Tell the others of the presses filed after no more than ``written`` changes (None: all); not while
        Redis is away, nor a press that waited past :data:`FIRE_WITHIN`: a cue fired late is worse than none."""
        with self._lock:
            fires = [f for f in self._fires if written is None or f[3] <= written]
            self._fires = [f for f in self._fires if written is not None and f[3] > written]
            if self._fires:  # (the writer takes the changes filed before them first, then comes back)
                self._ready.set()
        now = time.monotonic()
        for n, (cid, kind, at, _filed) in enumerate(fires):
            if not self.versions.joined or now - at > FIRE_WITHIN:
                why = "Redis is away" if not self.versions.joined else f"it waited {now - at:.1f} s for Redis"
                self._warn.warning(
                    ("fire", why[:9]),
                    "cluster: a trigger press of %s not shared: %s; only this process's pages and outputs had it",
                    cid,
                    why,
                )
                continue
            try:
                self.store.fire(cid, kind)
            except StoreError as err:
                self.status.lost(err)
                self._warn.warning(("fire", "lost"), "cluster: %d trigger presses not shared: %s", len(fires) - n, err)
                return

    def _write(self, batch: list[tuple[str, Pending]], stopping: bool, backoff: float) -> bool:
        """Write ``batch``; False (after waiting ``backoff``) when it must be tried again."""
        try:
            versions = self.store.write(batch)
        except StoreError as err:
            self.versions.requeue(batch)
            if err.refused:
                # Out of memory, read-only replica...: retried, reported once in a while.
                self._warn.warning("refused", "cluster: Redis refused a write: %s; retrying", err)
            else:
                self.status.lost(err)
            if stopping:
                log.warning("cluster: %d changes not written before stopping: %s", len(batch), err)
            else:
                self._workers.wait(backoff)
            return False
        if backoff > RETRY_MIN:
            self.status.reachable(self.versions.joined)
        self.status.count("written", len(batch))
        if self.monitor.watching:
            for cid, (value, _kind) in batch:
                self.monitor.saw("cluster", "out", self.url, "write", [value], cid)
        for cid in self.versions.acknowledged(batch, versions):
            self._settle(cid)
        return True

    # -- changes from the others in ----------------------------------------------
    def _listen_loop(self) -> None:
        backoff = RETRY_MIN
        while not self._workers.stopping.is_set():
            try:
                if not self.store.subscribed:
                    self._join(initial=False)
                    backoff = RETRY_MIN
                self._take_reshape()
                data = self.store.announcement(LISTEN_TIMEOUT)
                if data is not None:
                    self._announced(data)
                if time.monotonic() >= self._next_beat:
                    self._beat()
            except ClusterRefused as err:
                self.store.unsubscribe()
                self.status.refused(err)
                self._workers.wait(REFUSED_RETRY)
            except StoreError as err:
                self.store.unsubscribe()
                # Writes wait for the next join: it re-reads what changed meanwhile.
                self.versions.left()
                self.status.down(err)
                self._workers.wait(backoff)
                backoff = min(RETRY_MAX, backoff * 2)

    def _join(self, initial: bool) -> None:
        """Subscribe, then read the hash in one step with the membership checks, and catch up.

        Subscribing first means no announcement made after the read can be
        missed; those made before it carry versions already known and are ignored.
        """
        self.store.subscribe()
        values = self.hub.values()
        known = [
            (cid, json.dumps(values[cid] if value is None else value), version)
            for cid, (value, version) in self.versions.known().items()
        ]
        joined = self.store.join(self.signature, known)
        if not isinstance(joined, Joined):
            theirs, running = joined
            raise ClusterRefused(
                f"cannot join the cluster {self.config.name!r} at {self.url}: this config's controls differ "
                f"from those of the {running} process(es) running (signature {self.signature}, theirs {theirs}); "
                "start every process with the same [[controls]] ids, types, min, max and step"
            )
        fresh = self._read_hash(joined.stored)
        if self.scenes is not None:
            self.scenes.joined()
        queued = self.versions.replace(fresh)
        self.status.agree(joined.differ, self.signature)
        down_for = self.status.joined(initial)
        self._next_beat = 0.0
        if joined.took_over:
            log.warning(
                "cluster %r: the controls changed and no other process was running: values reset from this config",
                self.config.name,
            )
        if joined.restored:
            log.warning(
                "cluster: Redis had lost %d acknowledged values; written back from this process", joined.restored
            )
        if initial:
            self._listed_after = time.monotonic() + MEMBER_TTL_MS / 1000
            before, self.joined = self.hub.values(), [cid for cid, (version, _) in fresh.items() if version > 0]
            self.behind = [cid for cid, (v, value) in fresh.items() if v > 0 and not same_value(before[cid], value)]
            self.hub.restore({cid: value for cid, (_version, value) in fresh.items()})
            log.info("cluster %r: joined at %s as %s", self.config.name, self.url, self.process_id)
        else:
            if down_for is not None:
                log.warning(
                    "cluster: Redis at %s back after %.1f s; %d queued changes go out now", self.url, down_for, queued
                )
            for cid in fresh:
                self._settle(cid)
        self._ready.set()

    def _read_hash(self, stored: dict[str, str]) -> dict[str, tuple[int, Value]]:
        """The hash as {control: (version, value)}, each value checked against its control."""
        fresh: dict[str, tuple[int, Value]] = {}
        for cid, control in self.hub.controls.items():
            if cid not in stored:
                continue
            value = checked(control, stored[cid])
            if value is not None:
                fresh[cid] = (int(stored.get(f"{cid}:version", 0)), value)
        return fresh

    def _announced(self, data: str) -> None:
        try:
            message = json.loads(data)
            if message.get("fire") is True:
                self._fired(message["control"], message["process"])
                return
            if "scenes" in message:
                if self.scenes is not None:
                    self.scenes.announced(message)
                return
            cid, version, process = message["control"], int(message["version"]), message["process"]
        except (ValueError, KeyError, TypeError) as err:
            log.warning("cluster: announcement %r not understood (%s); ignored", data[:200], err)
            return
        if self.monitor.watching:
            self.monitor.saw("cluster", "in", str(process), "announce", [message.get("value")], str(cid))
        control = self.hub.controls.get(cid)
        if control is None:
            return  # a control another process has and this one does not (a reload not made everywhere)
        value = checked(control, json.dumps(message.get("value")))
        if value is None:
            return
        self.status.count("received")
        if self.versions.announced(cid, version, value) and process != self.process_id:
            self._settle(cid)

    def _fired(self, cid: object, process: object) -> None:
        if process == self.process_id or cid not in self.hub.controls:
            return
        if self.monitor.watching:
            self.monitor.saw("cluster", "in", str(process), "fire", [1], str(cid))
        self.status.count("received")
        try:
            self.hub.set(cid, 1, Origin(ORIGIN_KIND, str(process)))
        except (InvalidValue, UnknownControl) as err:
            log.warning("cluster: a trigger press from %s not applied: %s", process, err)

    def _settle(self, cid: str) -> None:
        """Make the hub show the highest version known, unless a change of this process is pending.

        Under ``_apply_lock``, so two threads settling at once cannot leave an older value last.
        """
        with self._apply_lock:
            value = self.versions.settled(cid)
            if value is None:
                return
            try:
                applied = self.hub.set(cid, value, Origin(ORIGIN_KIND, self.process_id))
            except (InvalidValue, UnknownControl) as err:
                log.warning("cluster: %s from Redis not applied: %s", cid, err)
                return
            if applied.changed:
                self.status.count("applied")

    def _beat(self) -> None:
        members, differ = self.store.beat(self.signature)
        self.status.agree(differ, self.signature, members)
        mine = self.targets()
        theirs = self.store.targets(mine) if mine or members > 1 else {}
        if time.monotonic() < self._listed_after:
            theirs = {}  # (a process killed just before this one started is listed until its beats expire)
        shared: dict[str, list[str]] = {}
        for process, listed in theirs.items():
            for target in set(mine) & set(listed):
                shared.setdefault(target, []).append(process)
        self.status.share(shared)
        self._next_beat = time.monotonic() + BEAT_INTERVAL
