"""Several bridge processes, one set of values: the shared store in Redis.

Imported only when the config has a ``[cluster]`` table; without it the
bridge never imports Redis. The hub stays the one owner of the values in
each process; this adapter keeps every process's hub in one global order.

Keys, under the ``[cluster] name`` prefix:

``<name>:values``
    one hash: ``<id>`` holds the JSON value, ``<id>:version`` its version.
``<name>:signature``
    the controls' signature (ids, types, ranges) of the processes running.
``<name>:members``
    a sorted set of the processes alive, each scored with the Redis time at
    which it counts as gone unless it beats again.
``<name>:changes``
    the channel: one JSON announcement per accepted change.

How a change travels. The hub applies a local change at once and hands it
to :meth:`ClusterAdapter.send`, which files it (latest value per control)
for the writer thread. The writer runs one Lua script per change, which
increments the control's version, stores the value and publishes
``{control, version, process, origin, value}``, all in one step: Redis runs
scripts one at a time, so the versions are one global order. The listener
thread of every process applies announcements from the others to its hub
with the origin kind ``cluster``, so its web, OSC, MIDI and state adapters
all see them, and this adapter does not write them back.

How every process ends on the same value when two of them change one
control at once. Each process remembers, per control, the highest version
it knows and its value. While a change of its own to that control is filed
or being written, it does not apply what others announce (its own write
comes later in the global order and will win); once nothing of its own is
pending, it makes its hub show the value of the highest version it knows.
So the last write in Redis's order is the value everywhere.

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
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from bridge.config import ClusterConfig
from bridge.errors import BridgeError, InvalidValue, UnknownControl
from bridge.hub import Hub
from bridge.model import Change, Control, Origin, Value
from bridge.ratelimit import LogLimiter
from bridge.validation import normalize

log = logging.getLogger(__name__)

#: The origin kind of changes that came from another process.
ORIGIN_KIND = "cluster"
#: A process that has not beaten for this long no longer counts as running.
MEMBER_TTL_MS = 5000
BEAT_INTERVAL = 1.0
#: How long the listener waits for an announcement before it looks at the clock.
LISTEN_TIMEOUT = 0.5
#: Reconnection backoff, doubled after each failed try.
RETRY_MIN = 0.1
RETRY_MAX = 2.0
#: How long start-up waits for Redis before it gives up.
START_TIMEOUT = 5.0

# One accepted change: next version, value, announcement, in one step.
_WRITE = """
local version = redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':version', 1)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[5], '{"control":"' .. ARGV[1] .. '","version":' .. version ..
  ',"process":"' .. ARGV[3] .. '","origin":"' .. ARGV[4] .. '","value":' .. ARGV[2] .. '}')
return version
"""

# Joining: check the controls' signature against the processes running (or
# take over when none is), register as a member, fill in controls Redis does
# not have or holds at an older version than this process knows, and return
# the whole hash.
_JOIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local current = redis.call('GET', KEYS[2])
local took_over = 0
if current and current ~= ARGV[1] then
  local others = redis.call('ZCARD', KEYS[3])
  if redis.call('ZSCORE', KEYS[3], ARGV[2]) then others = others - 1 end
  if others > 0 then return {'refused', current, others} end
  redis.call('DEL', KEYS[1])
  took_over = 1
end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[2])
local restored = 0
for i = 5, #ARGV, 3 do
  local id, value, version = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local stored = tonumber(redis.call('HGET', KEYS[1], id .. ':version'))
  if stored == nil or redis.call('HEXISTS', KEYS[1], id) == 0 or stored < version then
    redis.call('HSET', KEYS[1], id, value, id .. ':version', version)
    if version > 0 then restored = restored + 1 end
    redis.call('PUBLISH', ARGV[4], '{"control":"' .. id .. '","version":' .. version ..
      ',"process":"' .. ARGV[2] .. '","origin":"join","value":' .. value .. '}')
  end
end
return {'joined', redis.call('HGETALL', KEYS[1]), took_over, restored}
"""

# A heartbeat: still running; the number of processes that are.
_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call('ZCARD', KEYS[1])
"""


def signature(controls: Any) -> str:
    """A short hash of what must agree between processes: ids, types and ranges, in order."""
    shape = [[c.id, c.type, c.min, c.max, c.step] for c in controls]
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]


def redact(url: str) -> str:
    """The Redis URL without its password, for logs and /healthz."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _safe(text: str) -> str:
    """Only characters that need no escaping inside a JSON string built by the write script."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


class Refused(BridgeError):
    """Redis holds another set of controls, and processes with them are running."""


@dataclass
class _Slot:
    """What this process knows of one control in the cluster."""

    version: int = 0  # the highest version known from Redis
    value: Value | None = None  # the value at that version
    inflight: int = 0  # writes sent and not yet acknowledged


class ClusterAdapter:
    """Shares the hub's values with every other process of the same ``[cluster]``."""

    name = "cluster"

    def __init__(self, hub: Hub, config: ClusterConfig) -> None:
        self.hub = hub
        self.config = config
        self.url = redact(config.redis)
        self.process_id = _safe(f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}")
        self.signature = signature(hub.controls.values())
        prefix = config.name
        self._values_key = f"{prefix}:values"
        self._signature_key = f"{prefix}:signature"
        self._members_key = f"{prefix}:members"
        self.channel = f"{prefix}:changes"
        # No retries inside redis-py: the writer and the listener retry, with backoff, themselves.
        self.client = redis.Redis.from_url(
            config.redis,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=5,
            health_check_interval=2,
            retry=Retry(NoBackoff(), 0),
        )
        self._slots: dict[str, _Slot] = {cid: _Slot() for cid in hub.controls}
        self._queued: dict[str, tuple[Value, str]] = {}  # control -> (latest local value, origin kind)
        self._lock = threading.Lock()  # slots, queue, state
        self._apply_lock = threading.Lock()  # one settle at a time, so the highest version lands last
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._pubsub: Any = None
        self._threads: list[threading.Thread] = []
        self._joined = False
        self._up = False
        self._down_since = 0.0
        self._next_beat = 0.0
        self._refusal_logged = False
        self._warn = LogLimiter(log, interval=10.0)
        self.state = "starting"  # joined | down | refused
        self.members = 0
        self.written = 0
        self.received = 0
        self.applied = 0
        self.outages = 0

    # -- life cycle ------------------------------------------------------------
    def start(self) -> None:
        """Join the cluster (or stop start-up with a clear message), then start the threads."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self._join(initial=True)
                break
            except Refused:
                raise
            except (RedisError, OSError) as err:
                self._close_pubsub()
                if time.monotonic() > deadline:
                    raise BridgeError(
                        f"cannot reach Redis at {self.url}: {err} (start Redis, or fix [cluster] redis)"
                    ) from err
                time.sleep(0.2)
        self._threads = [
            threading.Thread(target=self._listen_loop, name="cluster-listen", daemon=True),
            threading.Thread(target=self._write_loop, name="cluster-write", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Write what is still queued (briefly), leave the members, close the connections."""
        self._stopping.set()
        self._ready.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._threads:
            try:
                self.client.zrem(self._members_key, self.process_id)
            except RedisError:
                pass
        self._close_pubsub()
        self.client.close()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "redis": self.url,
                "name": self.config.name,
                "process": self.process_id,
                "state": self.state,
                "members": self.members,
                "written": self.written,
                "received": self.received,
                "applied": self.applied,
                "queued": len(self._queued),
                "inflight": sum(slot.inflight for slot in self._slots.values()),
                "outages": self.outages,
            }

    # -- local changes out -----------------------------------------------------
    def send(self, change: Change) -> None:
        """File a local change for the writer; the latest value per control wins."""
        if change.origin.kind == ORIGIN_KIND:
            return  # it came from the cluster: never written back
        with self._lock:
            self._queued.pop(change.control_id, None)  # re-inserted last: order of changes kept
            self._queued[change.control_id] = (change.value, change.origin.kind)
        self._ready.set()

    def _write_loop(self) -> None:
        backoff = RETRY_MIN
        while True:
            self._ready.wait()
            stopping = self._stopping.is_set()
            with self._lock:
                if not self._joined:
                    # Redis is away: hold the changes; the listener wakes us when it is back.
                    self._ready.clear()
                    if stopping:
                        if self._queued:
                            log.warning("cluster: %d changes not written: Redis is unreachable", len(self._queued))
                        return
                    continue
                batch = list(self._queued.items())
                self._queued.clear()
                self._ready.clear()
                for cid, _item in batch:
                    self._slots[cid].inflight += 1
            if batch:
                try:
                    versions = self._write(batch)
                except (RedisError, OSError) as err:
                    self._requeue(batch)
                    if isinstance(err, ResponseError):
                        # Out of memory, read-only replica...: retried, reported once in a while.
                        self._warn.warning("refused", "cluster: Redis refused a write: %s; retrying", err)
                    else:
                        self._lost(err)
                    if stopping:
                        log.warning("cluster: %d changes not written before stopping: %s", len(batch), err)
                        return
                    self._stopping.wait(backoff)
                    backoff = min(RETRY_MAX, backoff * 2)
                    self._ready.set()
                    continue
                if backoff > RETRY_MIN:
                    self._reachable()
                backoff = RETRY_MIN
                self._acknowledged(batch, versions)
            if stopping:
                return

    def _write(self, batch: list[tuple[str, tuple[Value, str]]]) -> list[int]:
        """Run the write script for each change, in one round trip; their versions."""
        pipe = self.client.pipeline(transaction=False)
        for cid, (value, kind) in batch:
            pipe.eval(_WRITE, 1, self._values_key, cid, json.dumps(value), self.process_id, _safe(kind), self.channel)
        return [int(v) for v in pipe.execute()]

    def _requeue(self, batch: list[tuple[str, tuple[Value, str]]]) -> None:
        """Put back changes whose write failed, unless a newer one for the same control is queued."""
        with self._lock:
            merged = {cid: item for cid, item in batch if cid not in self._queued}
            merged.update(self._queued)
            self._queued = merged
            for cid, _item in batch:
                self._slots[cid].inflight -= 1

    def _acknowledged(self, batch: list[tuple[str, tuple[Value, str]]], versions: list[int]) -> None:
        with self._lock:
            for (cid, (value, _kind)), version in zip(batch, versions, strict=True):
                slot = self._slots[cid]
                slot.inflight -= 1
                if version > slot.version:
                    slot.version, slot.value = version, value
            self.written += len(batch)
        for cid in dict.fromkeys(cid for cid, _item in batch):
            self._settle(cid)

    # -- changes from the others in ----------------------------------------------
    def _listen_loop(self) -> None:
        backoff = RETRY_MIN
        while not self._stopping.is_set():
            try:
                if self._pubsub is None:
                    self._join(initial=False)
                    backoff = RETRY_MIN
                message = self._pubsub.get_message(timeout=LISTEN_TIMEOUT)
                if message is not None and message.get("type") == "message":
                    self._announced(message["data"])
                if time.monotonic() >= self._next_beat:
                    self._beat()
            except Refused as err:
                self._close_pubsub()
                with self._lock:
                    self.state = "refused"
                if not self._refusal_logged:
                    log.error("cluster: %s; serving locally, trying again every %.0f s", err, RETRY_MAX)
                    self._refusal_logged = True
                self._stopping.wait(RETRY_MAX)
            except (RedisError, OSError) as err:
                self._close_pubsub()
                with self._lock:
                    # Writes wait for the next join: it re-reads what changed meanwhile.
                    self._joined = False
                    if self.state != "refused":
                        self.state = "down"
                self._lost(err)
                self._stopping.wait(backoff)
                backoff = min(RETRY_MAX, backoff * 2)

    def _join(self, initial: bool) -> None:
        """Subscribe, then read the hash in one step with the membership checks, and catch up.

        Subscribing first means no announcement made after the read can be
        missed; those made before it carry versions already known and are ignored.
        """
        pubsub = self.client.pubsub()
        self._pubsub = pubsub
        pubsub.subscribe(self.channel)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            message = pubsub.get_message(timeout=0.5)
            if message is not None and message.get("type") == "subscribe":
                break
            if time.monotonic() > deadline:
                raise redis.ConnectionError("no answer to SUBSCRIBE")
        with self._lock:
            known = {cid: (slot.value, slot.version) for cid, slot in self._slots.items()}
        values = self.hub.values()
        args: list[Any] = []
        for cid, (value, version) in known.items():
            args += [cid, json.dumps(values[cid] if value is None else value), version]
        reply = self.client.eval(
            _JOIN,
            3,
            self._values_key,
            self._signature_key,
            self._members_key,
            self.signature,
            self.process_id,
            MEMBER_TTL_MS,
            self.channel,
            *args,
        )
        if reply[0] == "refused":
            raise Refused(
                f"cannot join the cluster {self.config.name!r} at {self.url}: this config's controls differ "
                f"from those of the {reply[2]} process(es) running (signature {self.signature}, theirs {reply[1]}); "
                "start every process with the same [[controls]] ids, types, min, max and step"
            )
        flat, took_over, restored = reply[1], int(reply[2]), int(reply[3])
        stored = dict(zip(flat[::2], flat[1::2], strict=True))
        fresh = self._read_hash(stored)
        with self._lock:
            for cid, (version, value) in fresh.items():
                slot = self._slots[cid]
                # Replaced, not merged: after a restart that lost data, versions may have gone down.
                slot.version, slot.value = version, value
            self._joined = True
            self.state = "joined"
            was_down = not self._up and not initial
            down_for = time.monotonic() - self._down_since
            self._up = True
            self._refusal_logged = False
            queued = len(self._queued)
        self._next_beat = 0.0
        if took_over:
            log.warning(
                "cluster %r: the controls changed and no other process was running: values reset from this config",
                self.config.name,
            )
        if restored:
            log.warning("cluster: Redis had lost %d acknowledged values; written back from this process", restored)
        if initial:
            self.hub.restore({cid: value for cid, (_version, value) in fresh.items()})
            log.info("cluster %r: joined at %s as %s", self.config.name, self.url, self.process_id)
        else:
            if was_down:
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
            value = self._checked(control, stored[cid])
            if value is not None:
                fresh[cid] = (int(stored.get(f"{cid}:version", 0)), value)
        return fresh

    def _checked(self, control: Control, text: str) -> Value | None:
        try:
            return normalize(control, json.loads(text))
        except (ValueError, InvalidValue) as err:
            log.warning("cluster: %s holds %r in Redis, which does not fit it (%s); ignored", control.id, text, err)
            return None

    def _announced(self, data: str) -> None:
        try:
            message = json.loads(data)
            cid, version, process = message["control"], int(message["version"]), message["process"]
            control = self.hub.controls[cid]
        except (ValueError, KeyError, TypeError) as err:
            log.warning("cluster: announcement %r not understood (%s); ignored", data[:200], err)
            return
        value = self._checked(control, json.dumps(message.get("value")))
        if value is None:
            return
        with self._lock:
            self.received += 1
            slot = self._slots[cid]
            if version <= slot.version:
                return  # stale, or already known (its own write, acknowledged)
            slot.version, slot.value = version, value
        if process != self.process_id:
            self._settle(cid)

    def _settle(self, cid: str) -> None:
        """Make the hub show the highest version known, unless a change of this process is pending.

        A pending change of its own comes later in the global order and will
        win; once it is acknowledged this runs again. Under ``_apply_lock``, so
        two threads settling at once cannot leave an older value last.
        """
        with self._apply_lock:
            with self._lock:
                slot = self._slots[cid]
                if not self._joined or cid in self._queued or slot.inflight or slot.value is None:
                    return
                value = slot.value
            try:
                applied = self.hub.set(cid, value, Origin(ORIGIN_KIND, self.process_id))
            except (InvalidValue, UnknownControl) as err:
                log.warning("cluster: %s from Redis not applied: %s", cid, err)
                return
            if applied.changed:
                with self._lock:
                    self.applied += 1

    def _beat(self) -> None:
        members = int(self.client.eval(_BEAT, 1, self._members_key, self.process_id, MEMBER_TTL_MS))
        with self._lock:
            self.members = members
        self._next_beat = time.monotonic() + BEAT_INTERVAL

    # -- outages -------------------------------------------------------------------
    def _lost(self, err: BaseException) -> None:
        """Note an outage; logged once per outage, not per retry."""
        with self._lock:
            if not self._up:
                return
            self._up = False
            self.outages += 1
            self._down_since = time.monotonic()
        log.warning(
            "cluster: lost Redis at %s (%s); serving this process's clients, changes held until it is back",
            self.url,
            err,
        )

    def _reachable(self) -> None:
        """A write went through after failures the listener may never have seen (its own connection held)."""
        with self._lock:
            if self._up or not self._joined:
                return
            self._up = True
        log.warning("cluster: Redis at %s reachable again", self.url)

    def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                pubsub.close()
            except (RedisError, OSError):
                pass
