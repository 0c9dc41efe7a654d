"""Browsers as hub sources and sinks, over Socket.IO.

The protocol is the classic Flask-SocketIO slider recipe's, kept compatible:
``value changed`` in, ``update value`` out to every other client, plus a
``snapshot`` on connect and ``rejected`` for bad input.

Every handler is registered the same way, on python-socketio's server with
the client's sid (:meth:`WebAdapter.on`): no Flask request context is built
per event, which is half the cost of a fader move.

Toward the browsers, :meth:`WebAdapter.send` only files each change (the
latest per control; every press and release of a button); one fan-out
thread sends them (:mod:`bridge.web.fanout`). Coming in, each browser is
held to ``max_rate`` (:mod:`bridge.web.intake`).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from flask_socketio import ConnectionRefusedError, SocketIO
from werkzeug.wrappers import Request

from bridge.auth import Access, Role, presented_key
from bridge.errors import InvalidValue, UnknownControl
from bridge.flow import Outbox, Workers
from bridge.hub import Hub
from bridge.logs import LogLimiter, raised_by_a_library
from bridge.model import Change, Origin, Value
from bridge.views import View
from bridge.web.fanout import Fanout
from bridge.web.intake import Intake

log = logging.getLogger(__name__)

#: How often held-back updates are offered again to clients that were behind.
FLUSH_INTERVAL = 0.005
#: A browser's burst of changes gives everything else (other browsers, OSC,
#: MIDI, HTTP) a turn after this many: under gevent a socket with data waiting
#: never yields by itself.
YIELD_EVERY = 32
READ_ONLY = "read-only: this browser joined with the viewer key"

#: A Socket.IO event handler: (sid, data) -> the acknowledgement, if any.
Handler = Callable[..., Any]


class WebAdapter:
    """Socket.IO clients as sources and sinks of the hub."""

    name = "web"

    def __init__(
        self,
        hub: Hub,
        socketio: SocketIO,
        access: Access | None = None,
        max_rate: int = 200,
        max_clients: int = 250,
        views: Iterable[View] = (),
    ) -> None:
        self.hub = hub
        self.socketio = socketio
        self.server = socketio.server
        self.access = access or Access()
        self.max_clients = max_clients
        self.views = {view.name: view for view in views}
        self._roles: dict[str, Role] = {}
        self._roles_lock = threading.Lock()
        self._warn = LogLimiter(log)
        self._pushed: dict[str, Any] = {}
        self._pushed_lock = threading.Lock()
        self._wake = threading.Event()
        self._workers = Workers()
        # Latest change per control; every change of a button (see send()).
        self._outbox: Outbox[str | tuple[str, int], Change] = Outbox()
        self._presses = itertools.count()
        #: Browsers that left, for the flush thread to forget (see _on_disconnect).
        self._gone: deque[str] = deque()
        self._received = 0  # every ``value changed``, good or bad
        #: ``value changed`` events answered with ``rejected``.
        self.rejected = 0
        #: Socket.IO packets that could not be decoded, dropped.
        self.rejected_packets = 0
        self.fanout = Fanout(self.server, hub.get, self._wake.set)
        self.intake = Intake(max_rate)

    def start(self) -> None:
        """Start the fan-out thread and the one that sends held-back values to clients that caught up."""
        self._workers.start((self._fanout_loop, "web-fanout"), (self._flush_loop, "web-flush"))

    def stop(self) -> None:
        self._workers.stop(wake=(self._wake.set, self._outbox.wake))

    def describe(self) -> dict[str, Any]:
        return {
            **self.fanout.describe(),
            "received": self._received,
            "rejected": self.rejected,
            "malformed": self.rejected_packets,
            "throttled": self.intake.throttled,
            "confirmed": self.fanout.confirmed,
            "keys": self.access.enabled,
        }

    # -- toward the browsers -------------------------------------------------------
    def send(self, change: Change) -> None:
        """File ``change`` for the fan-out thread; a newer change to the same control replaces it.

        The hub calls this for every change, so it only files the change: the
        cost of reaching every browser is paid by the fan-out thread, which
        under a flood sends each control's latest value instead of every one.
        """
        if change.control.type == "button":
            # A tap is a press and a release, often in one batch: both go out,
            # or other pages (and their hooks) would never see the press.
            self._outbox.put((change.control.id, next(self._presses)), change)
        else:
            self._outbox.put(change.control.id, change)

    def _fanout_loop(self) -> None:
        while not self._workers.stopping.is_set():
            for change in self._outbox.take().values():
                self.fanout.broadcast(change)

    def _flush_loop(self) -> None:
        while not self._workers.stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._workers.stopping.is_set():
                return
            while self._gone:
                sid = self._gone.popleft()
                self.fanout.leave(sid)
                self.intake.forget(sid)
            pending = self.fanout.flush()
            pending = self.intake.release(self.fanout.connected, self._apply) or pending
            if pending:
                self._wake.set()
            self._workers.wait(FLUSH_INTERVAL)

    def push(self, event: str, payload: Any) -> None:
        """Send a status event to every browser; new browsers get the latest one on connect."""
        with self._pushed_lock:
            self._pushed[event] = payload
        self.server.emit(event, payload)

    def role(self, sid: str) -> Role | None:
        """The role the Socket.IO client ``sid`` joined with, or None once it left."""
        with self._roles_lock:
            return self._roles.get(sid)

    # -- Socket.IO -----------------------------------------------------------------
    def on(self, event: str, handler: Handler) -> None:
        """Handle ``event`` with ``handler(sid, data)``; what it returns is the acknowledgement."""
        self.server.on(event, handler, namespace="/")

    def register(self) -> None:
        """Attach the Socket.IO handlers."""
        self._guard_packets()
        self.on("connect", self._on_connect)
        self.on("disconnect", self._on_disconnect)
        self.on("value changed", self._on_value_changed)
        self.on("ping bridge", self._on_ping)

    def _guard_packets(self) -> None:
        """A malformed Socket.IO packet costs one rate-limited line, not a traceback per packet.

        python-socketio raises from its packet decoding on broken JSON, an
        unexpected packet type or an event without a name, and Engine.IO logs
        each with its traceback at ERROR and carries on: a broken or hostile
        client could fill the log. The packet is dropped either way. An
        exception raised in the bridge's own code still propagates whole.
        """
        handle = self.server._handle_eio_message

        def on_message(eio_sid: str, data: object) -> None:
            try:
                handle(eio_sid, data)
            except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
                if not raised_by_a_library(err):
                    raise  # ours: a bug to see whole
                self.rejected_packets += 1
                self._warn.warning(("packet", eio_sid), "malformed Socket.IO packet from %s dropped (%s)", eio_sid, err)

        self.server.eio.on("message", on_message)

    def _on_connect(self, sid: str, environ: dict[str, Any], auth: object = None) -> None:
        presented = auth.get("key") if isinstance(auth, dict) else None
        if not isinstance(presented, str):
            presented = presented_key(Request(environ))
        role = self.access.role_for(presented)
        if role is None:
            raise ConnectionRefusedError("unauthorized: open the join URL with its key")
        with self._roles_lock:
            if len(self._roles) >= self.max_clients:
                self._warn.warning("full", "refused a browser: max_clients (%d) reached", self.max_clients)
                raise ConnectionRefusedError(f"server full: at most {self.max_clients} clients")
            self._roles[sid] = role

        # Under the hub's dispatch order, so no update can slip between the
        # values read here and the snapshot sent with them.
        def welcome(values: dict[str, Value]) -> None:
            self.server.emit("snapshot", {"values": values}, to=sid)
            self.fanout.join(sid)

        self.hub.with_values(welcome)
        with self._pushed_lock:
            pushed = list(self._pushed.items())
        for event, payload in pushed:
            self.server.emit(event, payload, to=sid)

    def _on_disconnect(self, sid: str, reason: object = None) -> None:
        with self._roles_lock:
            self._roles.pop(sid, None)
        # The rest waits for the flush thread: python-engineio calls this handler
        # from inside an emit when it finds the client gone (no pong in time), and
        # that emit may run under the fan-out's or the intake's lock, which
        # leave() and forget() take: done here, the web side would freeze for good.
        self._gone.append(sid)
        self._wake.set()

    def _on_ping(self, sid: str, payload: object = None) -> object:
        # Acknowledged at once: the page measures its round-trip time with it.
        return payload

    def _on_value_changed(self, sid: str, message: object = None) -> None:
        self._received += 1
        if self._received % YIELD_EVERY == 0:
            time.sleep(0)  # gevent: a turn for the others; threads: the GIL handed on
        if not isinstance(message, dict):
            self._reject(sid, None, message, 'payload must be an object {"who": id, "data": value}')
            return
        who, data = message.get("who"), message.get("data")
        missing = [key for key in ("who", "data") if key not in message]
        if missing:
            self._reject(sid, who, data, f"missing field {missing[0]!r}")
            return
        if self.role(sid) == "viewer":
            self._reject(sid, who, data, READ_ONLY)
            return
        if not isinstance(who, str) or who not in self.hub.controls:
            self._reject(sid, who, data, f"unknown control {who!r}")
            return
        # Its own lock: the way in never waits for the fan-out to browsers.
        now, tell = self.intake.admit(sid, who, data)
        if now:
            self._apply(sid, who, data)
            return
        self._wake.set()
        if tell:
            rate = self.intake.max_rate
            log.warning("browser %s is over max_rate (%d changes/s); its latest values win", sid, rate)
            self.server.emit("throttled", {"limit": rate, "reason": f"over {rate} changes a second"}, to=sid)

    def _apply(self, sid: str, who: str, data: object) -> None:
        try:
            applied = self.hub.set(who, data, Origin("web", sid))
        except (UnknownControl, InvalidValue) as err:
            self._reject(sid, who, data, str(err))
            return
        self.fanout.changed(sid, applied.control.id, applied.adjusted)
        if applied.adjusted:
            # Clamped or stepped: the sender shows something else; correct it.
            self.server.emit("update value", {"who": applied.control.id, "data": applied.value}, to=sid)

    def _reject(self, sid: str, who: object, data: object, reason: str) -> None:
        self.rejected += 1
        self._warn.warning(("web", sid, reason), "rejected from browser %s: %s", sid, reason)
        self.server.emit("rejected", {"who": who, "data": data, "reason": reason}, to=sid)
