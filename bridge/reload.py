"""Live config: save the file, and the running show takes it, with no value lost.

The file is watched (its size, time and inode, four times a second: any
editor's way of saving shows, write in place or write-then-rename), and
``SIGHUP`` and ``POST /api/config/reload`` ask for the same. A new version
is read and checked whole first; a broken one changes nothing: the running
config stays, the log and the pages' banner say why (file, line, key), and
``/healthz`` shows it until a good save.

A good one is applied in one step under the hub's dispatch order
(:meth:`bridge.hub.Hub.reshape`): values of the controls that stay are
kept, new controls start from their saved or default value, and every
adapter takes the new controls before any later change reaches it; every
page gets its new surface as one ``layout`` event. Then what has ports is
brought in line: a changed ``[osc]``, ``[midi]``, ``[oscquery]`` or
``[discovery]`` table starts a new adapter beside the old one and swaps it
in only when it started (a port that cannot be opened keeps the old one,
and the log says so).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.concurrency import run_blocking
from bridge.config import Config, load_config
from bridge.errors import BridgeError, ConfigError
from bridge.flow import Workers
from bridge.hub import Reshaped, same_value

if TYPE_CHECKING:
    from bridge.app import Bridge

log = logging.getLogger(__name__)

#: How often the file is looked at.
WATCH_INTERVAL = 0.25
#: A save is taken once the file has stayed the same this long (an editor may write it in pieces).
SETTLE = 0.1
#: How long the file may be missing before the bridge says it is gone (an editor's
#: delete-and-rename takes milliseconds).
GONE_AFTER = 1.0


@dataclass(frozen=True)
class Outcome:
    """What one reload did."""

    generation: int
    #: Why the file was not taken (``reshaped`` is None then), or which of its tables were not
    #: (a port taken: the old adapter stays); None when all of it is in force.
    error: str | None = None
    reshaped: Reshaped | None = None


class Reloader:
    """Applies new versions of the config file to a running :class:`Bridge`."""

    def __init__(self, bridge: Bridge, push: Callable[[str, Any], None]) -> None:
        self.bridge = bridge
        self.path = bridge.config.path
        self._push = push
        self._lock = threading.Lock()  # one reload at a time
        self._workers = Workers()
        self._seen = self._stamp()
        self.generation = 1
        self.error: str | None = None
        self.reloads = 0
        #: ``[server]`` keys the command line set (--host, --port): they stay over the file's.
        self.overrides: dict[str, Any] = {}

    def start(self) -> None:
        self._push("config", {"generation": self.generation, "error": None})
        self._workers.start((self._watch, "config-watch"))

    def stop(self) -> None:
        self._workers.stop()

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "generation": self.generation, "error": self.error, "reloads": self.reloads}

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _watch(self) -> None:
        missing_since: float | None = None
        while not self._workers.wait(WATCH_INTERVAL):
            stamp = self._stamp()
            if stamp is None:  # between an editor's delete and its rename, or gone
                missing_since = missing_since or time.monotonic()
                if time.monotonic() - missing_since >= GONE_AFTER and self.error != self._gone:
                    with self._lock:
                        self._refused(self._gone)
                continue
            if missing_since is not None:
                missing_since = None
                if self.error == self._gone:
                    self._seen = None  # back, perhaps just as it was (moved back): read it again
            if stamp == self._seen:
                continue
            while not self._workers.wait(SETTLE):
                again = self._stamp()
                if again == stamp:
                    break
                stamp = again
            self._seen = stamp
            self.reload("the file was saved")

    def reload(self, why: str, carried: Mapping[str, str] | None = None) -> Outcome:
        """Read the config file again and apply it; what happened (the running config stays on an error).
        ``carried``: controls renamed, new id -> old id (see :meth:`Hub.reshape`)."""
        with self._lock:
            self._seen = self._stamp()
            if _empty(self.path):
                # A save caught between its truncation and its text (an editor that stalls): taken,
                # it would remove every control from every page and switch OSC and MIDI off.
                return self._refused(f"{self.path}: is empty (still being written?); nothing applied")
            try:
                # Off the event loop (tens of milliseconds for a hundred controls): fades and the
                # fan-out go on meanwhile.
                config = run_blocking(load_config, self.path)
            except ConfigError as err:
                return self._refused(str(err))
            if self.overrides:
                config = dataclasses.replace(config, server=dataclasses.replace(config.server, **self.overrides))
            if config == self.bridge.config:
                # Saved again as it was (or put back after a broken save): nothing to apply.
                if self.error is not None:
                    self.error = None
                    self._push("config", {"generation": self.generation, "error": None})
                    log.info("config: %s is good again, as it was", self.path)
                return Outcome(self.generation, None, Reshaped((), (), (), {}))
            try:
                reshaped, refused = apply(self.bridge, config, self.generation + 1, carried)
            except BridgeError as err:
                return self._refused(str(err))
            self.generation += 1
            self.reloads += 1
            self.error = "; ".join(refused) or None  # the rest is in force; saving again tries these again
            self._push("config", {"generation": self.generation, "error": self.error})
            for cid, (before, now) in reshaped.adjusted.items():
                earlier = reshaped.recalled.get(cid, before)
                if cid not in reshaped.recalled:
                    log.warning("config: %s was %r, which its new definition refuses; now %r", cid, before, now)
                elif same_value(now, earlier):
                    log.info("config: %s given back its %r, its value before a reload changed it", cid, now)
                else:
                    log.warning(
                        "config: %s was %r before a reload changed it; its new definition takes %r", cid, earlier, now
                    )
            log.info(
                "config reloaded (%s): generation %d; %d controls added, %d removed, %d changed",
                why,
                self.generation,
                len(reshaped.added),
                len(reshaped.removed),
                len(reshaped.redefined),
            )
            return Outcome(self.generation, self.error, reshaped)

    @property
    def _gone(self) -> str:
        return (
            f"{self.path}: the file is gone (moved or deleted); the show runs on as it was, but the "
            "editor and the next start need it: put it back"
        )

    def _refused(self, error: str) -> Outcome:
        if error != self.error:
            log.warning("config not reloaded, the running one stays: %s", error)
        self.error = error
        self._push("config", {"generation": self.generation, "error": error})
        return Outcome(self.generation, error)


def _empty(path: Path) -> bool:
    """True when the file is there and holds nothing but white space."""
    try:
        return not path.read_bytes().strip()
    except OSError:
        return False  # (the loader says why it cannot be read)


def apply(
    bridge: Bridge, config: Config, generation: int, carried: Mapping[str, str] | None = None
) -> tuple[Reshaped, list[str]]:
    """Put ``config`` in force in the running ``bridge``; what changed, and the tables that could not
    be (see :meth:`Bridge.replace_adapters`)."""
    old = bridge.config
    for key in ("host", "port", "state_file", "tls", "max_payload"):
        if getattr(config.server, key) != getattr(old.server, key):
            log.warning("config: server.%s changed; it takes effect at the next start", key)
    if config.cluster != old.cluster:
        log.warning("config: [cluster] changed; it takes effect at the next start")
    bridge.config = config
    if bridge.access.follow(config.server.key, config.server.viewer_key):
        log.warning("config: the keys changed; browsers and OSCQuery clients whose key no longer opens it are let go")
        bridge.web.recheck_keys()
        oscquery = bridge.ported.get("oscquery")
        if oscquery is not None and hasattr(oscquery, "recheck_keys"):
            oscquery.recheck_keys()
    bridge.web.reconfigure(config.server, config.views)
    bridge.origins.listed = tuple(config.server.allowed_origins)
    if config.server.theme != old.server.theme:
        bridge.web.push("theme", {"theme": config.server.theme})  # open pages change their looks at once

    def in_force(reshaped: Reshaped) -> None:
        # Under the hub's dispatch order: no change reaches an adapter between the new controls and this.
        bridge.looks.reshape(bridge.hub.controls, reshaped.renamed)
        for adapter in bridge.hub.adapters:
            # Those whose table changed too: if their successor cannot start, they stay, on the new controls.
            reshape = getattr(adapter, "reshape", None)
            if reshape is not None:
                reshape(reshaped)
        bridge.web.relayout(bridge.render_surface, generation, reshaped)

    reshaped = bridge.hub.reshape(config.controls, in_force, carried)
    refused = bridge.replace_adapters(old, config)
    for adapter in bridge.ported.values():
        follow = getattr(adapter, "follow", None)  # one kept as it was: what it says of the rest
        if follow is not None:
            follow(bridge.config)
    return reshaped, refused
