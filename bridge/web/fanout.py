"""Every browser's share of the changes: all of them while it keeps up, the latest while it is behind.

A change for N browsers is encoded once; under gevent the same WebSocket
frame is written to every browser that keeps up (:mod:`bridge.web.wire`),
elsewhere the same Engine.IO packet is queued for each.

A browser is **behind** when what was written to it waits for room (its
wire is flushing: the kernel's buffer toward it is full), when it has not
read what was written to it 0.1 s ago (beyond its round trip) or 64 frames
back (the pings written among its frames tell:
:meth:`bridge.web.wire.Reading.unread`), or when :data:`BACKLOG_LIMIT`
packets wait in its Socket.IO queue. From then on the
values it has not been sent are held, one per control (the latest; a
button's every press and release, in order, up to :data:`HELD_PRESSES`),
and sent once it has caught up: in one ``update values`` frame when the
browser said at connect that it reads them (``auth: {"batch": true}``),
else one ``update value`` each.
A browser that keeps up gets every change.

It also keeps the bookkeeping of changes that may have crossed on the wire
(:mod:`bridge.crossing`): the broadcasts are counted here, and a browser
whose change may have crossed another is sent the stored value once it
pauses.

Locks: ``_lock`` (the browsers and what is held toward them; reentrant,
since a send may close a session whose disconnect comes back here) is taken
before ``_cross_lock`` (the crossings), never after.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from engineio import packet as eio_packet
from socketio import packet as sio_packet

from bridge.crossing import Crossings
from bridge.flow import Latest
from bridge.model import Change, Value
from bridge.web.wire import PING, Reading, Wire, Wires, frame

#: A client with this many packets waiting in its Socket.IO queue is behind:
#: its updates are held back, latest value per control, until it catches up.
BACKLOG_LIMIT = 8
UPDATE = "update value"
#: Several held values in one frame: ``[{"who": id, "data": value}, ...]``, oldest first.
UPDATES = "update values"

#: What a held value is kept under: its control, or for a button (each press and
#: release goes out, in order) its control and a number of its own.
Held = str | tuple[str, int]
#: Presses and releases held one by one for a browser behind; past them (a flood of
#: taps toward a browser far behind) a button too is held to its latest state.
HELD_PRESSES = 64

_BEHIND = object()
_QUEUED = object()
_PING = eio_packet.Packet(eio_packet.PING)


@dataclass(slots=True)
class _Client:
    sid: str
    eio_sid: str
    batch: bool  # reads ``update values``
    held: Latest[Held, Value] | None = None
    presses: int = 0  # button presses and releases among what is held
    wire: Wire | None = None  # its WebSocket, once it is written directly


class Fanout:
    """The browsers connected, and the values held back toward those that are behind.

    ``server`` is the python-socketio server; ``stored(id)`` the hub's value
    of a control (for confirmations); ``wake()`` asks for a :meth:`flush`
    soon; ``wires`` the browsers' WebSockets when they are written directly.
    """

    def __init__(
        self,
        server: Any,
        stored: Callable[[str], Value],
        wake: Callable[[], None],
        wires: Wires | None = None,
    ) -> None:
        self._server = server
        self._stored = stored
        self._wake = wake
        self._wires = wires if wires is not None and wires.installed else None
        self._lock = threading.RLock()
        self._clients: dict[str, _Client] = {}
        self._behind: set[str] = set()
        self._crossings = Crossings()
        self._cross_lock = threading.Lock()
        self._gone_coalesced = 0
        self._presses = itertools.count()
        #: Frames written straight to a socket, and packets queued the library's way.
        self.direct = 0
        self.queued = 0

    # -- browsers ----------------------------------------------------------------
    def join(self, sid: str, batch: bool = False) -> None:
        """``sid`` was sent the snapshot: it gets every change from now on."""
        eio_sid = self._server.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is None:
            return  # gone meanwhile
        with self._lock:
            self._clients[sid] = _Client(sid, eio_sid, batch)
            with self._cross_lock:
                self._crossings.joined(sid)

    def leave(self, sid: str) -> None:
        with self._lock:
            client = self._clients.pop(sid, None)
            self._behind.discard(sid)
            if client is not None and client.held is not None:
                self._gone_coalesced += client.held.replaced
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
            held = [c.held for c in self._clients.values() if c.held is not None]
            coalesced = self._gone_coalesced + sum(h.replaced for h in held)
            return {
                "clients": len(self._clients),
                "behind": len(held),
                "coalesced": coalesced,
                "direct": self.direct,
                "queued": self.queued,
            }

    @property
    def confirmed(self) -> int:
        with self._cross_lock:
            return self._crossings.confirmed

    # -- out -------------------------------------------------------------------------
    def broadcast(self, change: Change) -> None:
        """Send ``change`` to every browser but its sender, encoded once; hold it for those behind."""
        cid, value = change.control.id, change.value
        origin = change.origin.ident if change.origin.kind == "web" else None
        with self._lock:
            with self._cross_lock:
                self._crossings.broadcast(cid, origin)
            out = _Encoded(self._server, UPDATE, {"who": cid, "data": value})
            now = time.monotonic()
            key: Held = (cid, next(self._presses)) if change.control.type == "button" else cid
            for client in list(self._clients.values()):
                if client.sid == origin:
                    if client.held is not None:
                        client.held.pop(cid)  # it shows its own newer value already
                    continue
                if client.held is None:
                    way = self._way(client, now)
                    if way is not _BEHIND:
                        self._send(client, way, out, now)
                        continue
                self._hold(client, key, value)
            behind = bool(self._behind)
        if behind:
            self._wake()

    def flush(self) -> bool:
        """Send what is held to browsers that caught up, and the confirmations due; True while any remain."""
        with self._lock:
            now = time.monotonic()
            for sid in list(self._behind):
                client = self._clients.get(sid)
                if client is None or client.held is None:
                    self._behind.discard(sid)
                    continue
                way = self._way(client, now)
                if way is _BEHIND:
                    continue
                held, client.held = client.held, None
                self._behind.discard(sid)
                self._gone_coalesced += held.replaced
                pairs = [(key if isinstance(key, str) else key[0], value) for key, value in held.take().items()]
                if client.batch and len(pairs) > 1 and len(pairs) == len(dict(pairs)):
                    batch = [{"who": cid, "data": value} for cid, value in pairs]
                    self._send(client, way, _Encoded(self._server, UPDATES, batch), now)
                else:  # (a button's presses held too: each goes out as it came)
                    for cid, value in pairs:
                        self._send(client, way, _Encoded(self._server, UPDATE, {"who": cid, "data": value}), now)
            self._confirm(now)
            with self._cross_lock:
                return bool(self._behind) or self._crossings.pending

    def forget(self, cids: Collection[str]) -> None:
        """A reload removed or brought back these controls: what was held of them for a browser behind
        is dropped. Its new surface carries their value; an older one held from before, sent after it,
        would undo it (a control removed and added back showed its value from before the removal)."""
        if not cids:
            return
        with self._lock:
            for sid in self._behind:
                client = self._clients.get(sid)
                held = client.held if client is not None else None
                if held is not None:
                    for key in [k for k in held if (k if isinstance(k, str) else k[0]) in cids]:
                        held.pop(key)

    def _confirm(self, now: float) -> None:
        """Send the stored value to browsers whose change may have crossed another (under the lock,
        so that no broadcast of a newer value can overtake it)."""
        with self._cross_lock:
            due = self._crossings.take_due(time.monotonic())
        for sid, cid in due:
            client = self._clients.get(sid)
            if client is None:
                continue
            value = self._stored(cid)
            way = self._way(client, now) if client.held is None else _BEHIND
            if way is _BEHIND:
                self._hold(client, cid, value)  # goes when it catches up, after the values held before
                continue
            self._send(client, way, _Encoded(self._server, UPDATE, {"who": cid, "data": value}), now)

    def _hold(self, client: _Client, key: Held, value: Value) -> None:
        """Behind: keep only the latest value under ``key`` (see :data:`Held`), sent once it
        catches up (under the lock)."""
        if client.held is None:
            client.held = Latest()
            client.presses = 0
            self._behind.add(client.sid)
        if not isinstance(key, str):
            if client.presses >= HELD_PRESSES:
                key = key[0]
            else:
                client.presses += 1
        client.held.put(key, value)

    def _way(self, client: _Client, now: float) -> Any:
        """How to reach ``client`` now: its :class:`Wire`, ``_QUEUED`` (the library's way) or ``_BEHIND``."""
        if self._wires is not None:
            wire = client.wire
            if wire is None or wire.dead:
                wire = client.wire = self._wires.get(client.eio_sid)
            if wire is not None and wire.ready:
                reading = wire.reading
                if wire.flushing or (reading.pings and reading.unread(now)):
                    return _BEHIND
                queued = wire.queue.qsize()
                if not queued:
                    return wire
                # Packets wait in the library's queue (a ping, a status event):
                # this one goes after them, the same way.
                return _BEHIND if queued >= BACKLOG_LIMIT else _QUEUED
            tls = self._reading(client)  # a WebSocket under TLS: the library writes
            if tls is not None and tls.pings and tls.unread(now):
                return _BEHIND
        sock = self._server.eio.sockets.get(client.eio_sid)
        if sock is not None and sock.queue.qsize() >= BACKLOG_LIMIT:
            return _BEHIND
        return _QUEUED  # (a session gone meanwhile is ignored by the library)

    def _send(self, client: _Client, way: Any, out: _Encoded, now: float) -> None:
        if isinstance(way, Wire):
            if way.offer(out.frame()):
                self.direct += 1
                if way.reading.due(now):
                    way.offer(PING)  # counted as it is written
            return
        self.queued += 1
        # The same packet object for every browser: the library encodes it once too.
        self._server._send_eio_packet(client.eio_sid, out.packet())
        reading = self._reading(client)
        if reading is not None and reading.due(now):
            self._server._send_eio_packet(client.eio_sid, _PING)  # counted as it is written

    def _reading(self, client: _Client) -> Reading | None:
        """How far ``client``, written the library's way, has read: known once its WebSocket carries it."""
        if self._wires is None:
            return None
        wire = client.wire
        if wire is not None:
            return wire.reading if wire.ready else None
        reading = self._wires.reading(client.eio_sid)
        if reading is None:
            return None
        sock = self._server.eio.sockets.get(client.eio_sid)
        return reading if sock is not None and sock.upgraded and not sock.upgrading else None

    # -- in: what the sender was told ----------------------------------------------------
    def changed(self, sid: str, cid: str, adjusted: bool) -> None:
        """``sid``'s change of ``cid`` was taken; ``adjusted``: it is sent the stored value at once."""
        with self._cross_lock:
            due = self._crossings.changed(sid, cid, time.monotonic())
            if adjusted:
                self._crossings.told(sid, cid)
        if due:
            self._wake()


class _Encoded:
    """One event, encoded at most once whatever the number of browsers: as a frame, as a packet, or both."""

    __slots__ = ("_server", "_event", "_payload", "_text", "_frame", "_packet")

    def __init__(self, server: Any, event: str, payload: Any) -> None:
        self._server = server
        self._event = event
        self._payload = payload
        self._text: str | None = None
        self._frame: bytes | None = None
        self._packet: Any = None

    def text(self) -> str:
        if self._text is None:
            pkt = self._server.packet_class(sio_packet.EVENT, namespace="/", data=[self._event, self._payload])
            self._text = str(pkt.encode())
        return self._text

    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = frame(f"{eio_packet.MESSAGE}{self.text()}")
        return self._frame

    def packet(self) -> Any:
        if self._packet is None:
            self._packet = eio_packet.Packet(eio_packet.MESSAGE, self.text())
        return self._packet
