"""How one process stands with Redis and the other processes: its state, counts and outages.

The cluster adapter's threads (writer and listener) report here; each
turn of events (Redis lost, back, refusing, the processes disagreeing on
their controls and agreeing again) is logged once, not per retry.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)

#: How long the listener waits between two tries while Redis refuses this process.
REFUSED_RETRY = 2.0


class Status:
    """The cluster link's state (``starting``, ``joined``, ``down``, ``refused``) and counters, under one lock."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self._lock = threading.Lock()
        self.state = "starting"
        self.members = 0
        #: Processes running other controls (a config reload not made by every process yet).
        self.differ = 0
        #: OSC targets this process shares with another (each then gets every change twice).
        self.shared: list[str] = []
        self.written = 0
        self.received = 0
        self.applied = 0
        self.outages = 0
        self._up = False
        self._down_since = 0.0
        self._refusal_logged = False

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "state": self.state,
                "members": self.members,
                "differ": self.differ,
                "shared_targets": list(self.shared),
                "written": self.written,
                "received": self.received,
                "applied": self.applied,
            }

    def count(self, counter: str, n: int = 1) -> None:
        """Add ``n`` to ``written``, ``received`` or ``applied``."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + n)

    def joined(self, initial: bool) -> float | None:
        """Joined (again): how long Redis was away, or None when it was not (or this is the first join)."""
        with self._lock:
            self.state = "joined"
            was_down = not self._up and not initial
            self._up = True
            self._refusal_logged = False
            return time.monotonic() - self._down_since if was_down else None

    def refused(self, err: BaseException) -> None:
        with self._lock:
            self.state = "refused"
            logged, self._refusal_logged = self._refusal_logged, True
        if not logged:
            log.error("cluster: %s; serving locally, trying again every %.0f s", err, REFUSED_RETRY)

    def down(self, err: BaseException) -> None:
        """The listener lost Redis (a refusal stays the state to show)."""
        with self._lock:
            if self.state != "refused":
                self.state = "down"
        self.lost(err)

    def lost(self, err: BaseException) -> None:
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

    def reachable(self, joined: bool) -> None:
        """A write went through after failures the listener may never have seen (its own connection held)."""
        with self._lock:
            if self._up or not joined:
                return
            self._up = True
        log.warning("cluster: Redis at %s reachable again", self.url)

    def share(self, shared: dict[str, list[str]]) -> None:
        """Say when an OSC target of this process becomes (or stops being) another process's too."""
        with self._lock:
            before, self.shared = set(self.shared), sorted(shared)
        for target in sorted(set(shared) - before):
            log.warning(
                "cluster %r: OSC target %s is also a target of process %s: every change reaches it from "
                "both, and a GO fires twice; leave it (or [osc]) to one process",
                self.name,
                target,
                ", ".join(shared[target]),
            )
        for target in sorted(before - set(shared)):
            log.info("cluster %r: OSC target %s is this process's alone again", self.name, target)

    def agree(self, differ: int, signature: str, members: int | None = None) -> None:
        """Say when the processes start or stop running the same controls."""
        with self._lock:
            before, self.differ = self.differ, differ
            if members is not None:
                self.members = members
        if differ and not before:
            log.warning(
                "cluster %r: %d other process(es) run other controls (signature here %s): a config reload "
                "not made by every process; values are shared only for the controls they have in common",
                self.name,
                differ,
                signature,
            )
        elif before and not differ:
            log.info("cluster %r: every process runs the same controls again", self.name)


def target_names(targets: list[tuple[str, str, int]]) -> list[str]:
    """OSC targets (transport, host, port) named so that processes on other machines can compare them:
    as the config writes them, with this machine's name before a loopback one (each machine's
    127.0.0.1 is its own). Nothing is resolved (it runs at every heartbeat, on the listener's thread):
    a desk named by its address in one config and by a name in another is not matched."""
    names = []
    for transport, host, port in targets:
        loopback = host.lower() == "localhost" or host.startswith("127.") or host.strip("[]") == "::1"
        names.append(f"{transport} {socket.gethostname() + '/' if loopback else ''}{host}:{port}")
    return names


def redact(url: str) -> str:
    """The Redis URL without its password, for logs and /healthz."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
