"""Browsers as hub sources and sinks, over Socket.IO.

The protocol is the classic Flask-SocketIO slider recipe's, kept compatible:
``value changed`` in, ``update value`` out to every other client, plus a
``snapshot`` on connect and ``rejected`` for bad input.

Every handler is registered the same way, on python-socketio's server with
the client's sid (:meth:`WebAdapter.on`): no Flask request context is built
per event, which is half the cost of a fader move.

Toward the browsers, under gevent, the first change of a turn of the event
loop is fanned out at once by whoever made it (the OSC or MIDI reader, a
browser's handler): the writes never wait (:mod:`bridge.web.wire`), so a
change reaches the sockets with no hand-over to another greenlet. Changes
that follow within the same turn (a flood) are filed, the latest per
control (every press and release of a button), and one fan-out thread sends
them (:mod:`bridge.web.fanout`); under the other server models every change
is filed. Coming in, each browser is held to ``max_rate``
(:mod:`bridge.web.intake`).
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
from bridge.config import ServerConfig
from bridge.errors import InvalidValue, UnknownControl, shown
from bridge.flow import Outbox, Workers
from bridge.hub import Hub, Reshaped
from bridge.logs import LogLimiter, raised_by_a_library
from bridge.looks import Looks
from bridge.model import Change, Origin, Value
from bridge.monitor import IDLE
from bridge.views import View
from bridge.web.fanout import Fanout
from bridge.web.holds import Holds
from bridge.web.intake import COMMANDS_PER_SECOND as PER_S
from bridge.web.intake import Intake
from bridge.web.wire import Wires

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
    hand_last = True  # its fan-out to every browser would make each desk and synth wait
    monitor = IDLE  # the bridge's (bridge.monitor): one check per message while no drawer is open

    def __init__(
        self,
        hub: Hub,
        socketio: SocketIO,
        access: Access | None = None,
        max_rate: int = 200,
        max_clients: int = 250,
        views: Iterable[View] = (),
        looks: Looks | None = None,
    ) -> None:
        self.hub = hub
        self.socketio = socketio
        self.server = socketio.server
        self.access = access or Access()
        self.max_clients = max_clients
        self.views = {view.name: view for view in views}
        self._roles: dict[str, Role] = {}
        self._keys: dict[str, str | None] = {}  # sid -> the key it joined with (a reload may revoke it)
        self._views: dict[str, str | None] = {}  # sid -> the view its page shows
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
        self.holds = Holds()  # the push pads each browser holds down
        self._received = 0  # every ``value changed``, good or bad
        #: ``value changed`` events answered with ``rejected``.
        self.rejected = 0
        #: Socket.IO packets that could not be decoded, dropped.
        self.rejected_packets = 0
        self.wires = Wires()
        # Under gevent the browsers' sockets are written directly, and the first
        # change of each turn of the loop is fanned out where it was made.
        direct = socketio.async_mode == "gevent" and self.wires.install(self.server.eio)
        self._turn = _Turn() if direct else None
        self.fanout = Fanout(self.server, hub.get, self._wake.set, self.wires)
        self.intake = Intake(max_rate)
        self.looks = looks
        if looks is not None:
            # A name or colour from the desk: to every page at once (a late joiner gets them on connect), with
            # the control's own label where the desk gives none (its name emptied: the page shows that).
            looks.listen(lambda cid, look: self.server.emit("update look", self._look(cid, look)))

    def _look(self, cid: str, look: dict[str, str]) -> dict[str, str]:
        return {"who": cid, "label": str(getattr(self.hub.controls.get(cid), "label", cid)), **look}

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
            "unanswered": self.intake.unanswered,
            "confirmed": self.fanout.confirmed,
            "filed_replaced": self._outbox.replaced,
            "keys": self.access.enabled,
        }

    # -- toward the browsers -------------------------------------------------------
    def send(self, change: Change) -> None:
        """File ``change`` for the fan-out thread; a newer change to the same control replaces it.

        The hub calls this for every change, so it only files the change: the
        cost of reaching every browser is paid by the fan-out thread, which
        under a flood sends each control's latest value instead of every one.
        """
        if self.monitor.watching:
            self.monitor.saw("web", "out", "pages", "update value", [change.value], change.control.id)
        if change.control.push and not change.value:
            self.holds.released(change.control.id)
        if self._turn is not None and not len(self._outbox) and self._turn.take():
            # Nothing filed before it (which it would overtake): out now.
            self.fanout.broadcast(change)
            return
        if change.control.type == "button":
            # A tap is a press and a release, often in one batch: both go out,
            # or other pages (and their hooks) would never see the press; every
            # press of a trigger goes out.
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
                self._let_go(sid)
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

    def reconfigure(self, server: ServerConfig, views: Iterable[View]) -> None:
        """A reload: the views and limits of the new config (the page's routes see the same views)."""
        self.views.clear()
        self.views.update({view.name: view for view in views})
        self.max_clients = server.max_clients
        self.intake.max_rate = server.max_rate

    def relayout(self, render: Callable[[str | None, Role], str], generation: int, reshaped: Reshaped) -> None:
        """Send every page its new surface (a reload), as one ``layout`` event rendered once per view and role.

        Called under the hub's dispatch order: ``values`` (the controls new in
        this generation) are the ones every later ``update value`` follows;
        a control that stays keeps the value the client knows.
        """
        with self._roles_lock:
            pages = [(sid, self._views.get(sid), role) for sid, role in self._roles.items()]
        values = {cid: self.hub.get(cid) for cid in reshaped.added}
        removed = list(reshaped.removed)
        self.fanout.forget({*reshaped.added, *removed})  # held from before: the surface carries them now
        rendered: dict[tuple[str | None, Role], str] = {}
        for sid, view, role in pages:
            if view is not None and view not in self.views:
                view = None  # its view is gone: the whole surface
            if (view, role) not in rendered:
                rendered[(view, role)] = render(view, role)
            payload = {
                "generation": generation,
                "surface": rendered[(view, role)],
                "values": values,
                "removed": removed,
            }
            self.server.emit("layout", payload, to=sid)

    def recheck_keys(self) -> None:
        """The keys changed: a browser whose key no longer opens the show is let go; one whose role changed keeps
        its connection with its new role."""
        with self._roles_lock:
            joined = dict(self._keys)
        for sid, key in joined.items():
            role = self.access.role_for(key)
            if role is None:
                log.warning("browser %s: its key is no longer valid after the reload; disconnected", sid)
                self.server.disconnect(sid)
                continue
            with self._roles_lock:
                if sid in self._roles:
                    self._roles[sid] = role

    def role(self, sid: str) -> Role | None:
        """The role the Socket.IO client ``sid`` joined with, or None once it left."""
        with self._roles_lock:
            return self._roles.get(sid)

    # -- Socket.IO -----------------------------------------------------------------
    def on(self, event: str, handler: Handler, limited: bool = False) -> None:
        """Handle ``event`` with ``handler(sid, data)``; what it returns is the acknowledgement.
        ``limited``: a browser may send it ``PER_S`` times a second; beyond, it is answered not ok."""

        def within_rate(sid: str, data: object = None) -> object:
            if self.intake.may_command(sid):
                return handler(sid, data)
            self._warn.warning(("commands", sid), "browser %s: more than %d %r a second; dropped", sid, PER_S, event)
            return {"ok": False, "error": f"more than {PER_S} a second: wait a moment"}

        self.server.on(event, within_rate if limited else handler, namespace="/")

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
            if isinstance(data, str) and data[:1] in BINARY_PACKETS:
                # The protocol carries no binary data. The library would keep every attachment
                # a packet announces (a million), unbounded: 3.4 GB from one client in 14 s.
                self.rejected_packets += 1
                self._warn.warning(("packet", eio_sid), "binary Socket.IO packet from %s dropped", eio_sid)
                return
            try:
                handle(eio_sid, data)
            except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as err:
                if not raised_by_a_library(err):
                    raise  # ours: a bug to see whole
                self.rejected_packets += 1
                self._warn.warning(("packet", eio_sid), "malformed Socket.IO packet from %s dropped (%s)", eio_sid, err)

        self.server.eio.on("message", on_message)

    def _on_connect(self, sid: str, environ: dict[str, Any], auth: object = None) -> None:
        presented = auth.get("key") if isinstance(auth, dict) else None
        if not isinstance(presented, str):
            presented = presented_key(Request(environ))
        view = auth.get("view") if isinstance(auth, dict) else None
        role = self.access.role_for(presented)
        if role is None:
            raise ConnectionRefusedError("unauthorized: open the join URL with its key")
        with self._roles_lock:
            if len(self._roles) >= self.max_clients:
                self._warn.warning("full", "refused a browser: max_clients (%d) reached", self.max_clients)
                raise ConnectionRefusedError(f"server full: at most {self.max_clients} clients")
            self._roles[sid] = role
            self._keys[sid] = presented
            self._views[sid] = view if isinstance(view, str) else None

        # Under the hub's dispatch order, so no update can slip between the
        # values read here and the snapshot sent with them.
        batch = isinstance(auth, dict) and auth.get("batch") is True

        def welcome(values: dict[str, Value]) -> None:
            self.server.emit("snapshot", {"values": values}, to=sid)
            self.fanout.join(sid, batch)

        self.hub.with_values(welcome)
        if self.looks is not None:
            for cid, look in self.looks.all().items():  # (with its own label where the desk gives none)
                self.server.emit("update look", self._look(cid, look), to=sid)
        with self._pushed_lock:
            pushed = list(self._pushed.items())
        for event, payload in pushed:
            self.server.emit(event, payload, to=sid)

    def _on_disconnect(self, sid: str, reason: object = None) -> None:
        with self._roles_lock:
            self._roles.pop(sid, None)
            self._keys.pop(sid, None)
            self._views.pop(sid, None)
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
        if self.monitor.watching:
            who = message.get("who") if isinstance(message, dict) else None
            data = message.get("data") if isinstance(message, dict) else message
            self.monitor.saw("web", "in", f"page {sid[:8]}", "value changed", [data], str(who or ""))
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
            self._reject(sid, who, data, f"unknown control {shown(who)}")
            return
        control = self.hub.controls[who]
        if control.read_only:
            self._reject(sid, who, data, f"read-only: {control.label} is a display, set by OSC, MIDI, HTTP or a scene")
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
        pad = self.hub.controls.get(who)
        if pad is not None and pad.push and data in (0, False) and self.holds.lift(sid, who):
            # Another browser holds it still: it stays down, and this page shows so.
            self.server.emit("update value", {"who": who, "data": self.hub.get(who)}, to=sid)
            return
        try:
            applied = self.hub.set(who, data, Origin("web", sid))
        except (UnknownControl, InvalidValue) as err:
            self._reject(sid, who, data, str(err))
            return
        control = applied.control
        if control.push and applied.value:
            self.holds.press(sid, control.id)
        self.fanout.changed(sid, control.id, applied.adjusted)
        if applied.adjusted:
            # Clamped or stepped: the sender shows something else; correct it.
            self.server.emit("update value", {"who": applied.control.id, "data": applied.value}, to=sid)

    def _let_go(self, sid: str) -> None:
        """A browser that left: the pads it still held down, and no other holds, are released."""
        for cid in sorted(self.holds.leave(sid)):
            if cid in self.hub.controls and self.hub.get(cid):
                log.warning("browser %s left holding %s down: released", sid, cid)
                self.hub.set(cid, 0, Origin("web", sid))

    def _reject(self, sid: str, who: object, data: object, reason: str) -> None:
        self.rejected += 1
        self._warn.warning(("web", sid), "rejected from browser %s: %s", sid, reason)  # a line per browser
        if not self.intake.may_answer(sid):
            return  # a flood of refused changes: counted and said in the log, not answered one by one
        if self.monitor.watching:
            self.monitor.saw("web", "out", f"page {sid[:8]}", "rejected", [reason], who if isinstance(who, str) else "")
        self.server.emit("rejected", {"who": who, "data": data, "reason": reason}, to=sid)


#: Socket.IO's BINARY_EVENT and BINARY_ACK packet types: a header announcing attachments to come.
BINARY_PACKETS = ("5", "6")


class _Turn:
    """Under gevent: whether a change was fanned out inline in this turn of the event loop already."""

    __slots__ = ("_loop", "_used")

    def __init__(self) -> None:
        self._loop: Any = None
        self._used = False

    def take(self) -> bool:
        """True (once per turn) when the caller may fan out inline."""
        if self._used:
            return False
        if self._loop is None:
            import gevent

            self._loop = gevent.get_hub().loop
        self._used = True
        self._loop.run_callback(self._reset)  # runs when this turn hands back to the loop
        return True

    def _reset(self) -> None:
        self._used = False
