"""Every browser's share of the changes: all of them while it keeps up, the latest while it is behind.

A browser is behind when :data:`BACKLOG_LIMIT` packets wait in its
Socket.IO queue (a phone on weak Wi-Fi, or a flood of changes). From then
on the values it has not been sent are held, one per control (the latest),
and sent once it has caught up. A browser that keeps up gets every change.

It also keeps the bookkeeping of changes that may have crossed on the wire
(:mod:`bridge.crossing`): the broadcasts are counted here, and a browser
whose change may have crossed another is sent the stored value once it
pauses.

Locks: ``_lock`` (the browsers and what is held toward them) is taken
before ``_cross_lock`` (the crossings), never after.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from bridge.crossing import Crossings
from bridge.flow import Latest
from bridge.model import Change, Value

#: A client with this many packets waiting in its Socket.IO queue is behind:
#: its updates are held back, latest value per control, until it catches up.
BACKLOG_LIMIT = 8


class Fanout:
    """The browsers connected, and the values held back toward those that are behind.

    ``server`` is the python-socketio server; ``stored(id)`` the hub's value
    of a control (for confirmations); ``wake()`` asks for a :meth:`flush`
    soon.
    """

    def __init__(self, server: Any, stored: Callable[[str], Value], wake: Callable[[], None]) -> None:
        self._server = server
        self._stored = stored
        self._wake = wake
        self._lock = threading.Lock()
        self._clients: set[str] = set()
        self._held: dict[str, Latest[str, Value]] = {}  # sid -> latest value per control not yet sent
        self._crossings = Crossings()
        self._cross_lock = threading.Lock()
        self._gone_coalesced = 0

    # -- browsers ----------------------------------------------------------------
    def join(self, sid: str) -> None:
        """``sid`` was sent the snapshot: it gets every change from now on."""
        with self._lock:
            self._clients.add(sid)
            with self._cross_lock:
                self._crossings.joined(sid)

    def leave(self, sid: str) -> None:
        with self._lock:
            self._clients.discard(sid)
            held = self._held.pop(sid, None)
            if held is not None:
                self._gone_coalesced += held.replaced
        with self._cross_lock:
            self._crossings.forget(sid)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._clients)

    def connected(self, sid: str) -> bool:
        with self._lock:
            return sid in self._clients

    def describe(self) -> dict[str, int]:
        with self._lock:
            coalesced = self._gone_coalesced + sum(held.replaced for held in self._held.values())
            return {"clients": len(self._clients), "behind": len(self._held), "coalesced": coalesced}

    @property
    def confirmed(self) -> int:
        with self._cross_lock:
            return self._crossings.confirmed

    # -- out -------------------------------------------------------------------------
    def broadcast(self, change: Change) -> None:
        """Send ``change`` to every browser but its sender; hold it for those behind."""
        cid, value = change.control.id, change.value
        origin = change.origin.ident if change.origin.kind == "web" else None
        with self._lock:
            with self._cross_lock:
                self._crossings.broadcast(cid, origin)
            skip: list[str] = []
            for sid in self._clients:
                if sid == origin:
                    skip.append(sid)
                    held = self._held.get(sid)
                    if held is not None:
                        held.pop(cid)  # it shows its own newer value already
                    continue
                held = self._held.get(sid)
                if held is None and self._backlog(sid) >= BACKLOG_LIMIT:
                    held = self._held[sid] = Latest()
                if held is not None:
                    # Behind: keep only the latest value, sent once it catches up.
                    held.put(cid, value)
                    skip.append(sid)
            if len(skip) < len(self._clients):
                self._server.emit("update value", {"who": cid, "data": value}, skip_sid=skip or None)
            behind = bool(self._held)
        if behind:
            self._wake()

    def flush(self) -> bool:
        """Send what is held to browsers that caught up, and the confirmations due; True while any remain."""
        with self._lock:
            for sid in list(self._held):
                if sid not in self._clients:
                    self._gone_coalesced += self._held.pop(sid).replaced
                elif self._backlog(sid) < BACKLOG_LIMIT:
                    held = self._held.pop(sid)
                    self._gone_coalesced += held.replaced
                    for cid, value in held.take().items():
                        self._server.emit("update value", {"who": cid, "data": value}, to=sid)
            self._confirm()
            with self._cross_lock:
                return bool(self._held) or self._crossings.pending

    def _confirm(self) -> None:
        """Send the stored value to browsers whose change may have crossed another (under the lock,
        so that no broadcast of a newer value can overtake it)."""
        with self._cross_lock:
            due = self._crossings.take_due(time.monotonic())
        for sid, cid in due:
            if sid in self._clients:
                held = self._held.get(sid)
                if held is not None:
                    held.pop(cid)  # older than what goes now
                self._server.emit("update value", {"who": cid, "data": self._stored(cid)}, to=sid)

    def _backlog(self, sid: str) -> int:
        """Packets queued for ``sid`` and not yet taken by its transport."""
        server = self._server
        try:
            eio_sid = server.manager.eio_sid_from_sid(sid, "/")
            sock = server.eio.sockets.get(eio_sid)
        except (KeyError, AttributeError):
            return 0
        return sock.queue.qsize() if sock is not None else 0

    # -- in: what the sender was told ----------------------------------------------------
    def changed(self, sid: str, cid: str, adjusted: bool) -> None:
        """``sid``'s change of ``cid`` was taken; ``adjusted``: it is sent the stored value at once."""
        with self._cross_lock:
            due = self._crossings.changed(sid, cid, time.monotonic())
            if adjusted:
                self._crossings.told(sid, cid)
        if due:
            self._wake()
