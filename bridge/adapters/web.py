"""Socket.IO events and the HTTP API: browsers and scripts as hub sources.

The protocol is the classic Flask-SocketIO slider recipe's, kept compatible:
``value changed`` in, ``update value`` out to every other client, plus a
``snapshot`` on connect and ``rejected`` for bad input.
"""

from __future__ import annotations

import io
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

import segno
from flask import Blueprint, Flask, Response, jsonify, redirect, render_template, request
from flask_socketio import SocketIO, emit
from werkzeug.wrappers import Response as BaseResponse

from bridge.auth import COOKIE, Access, Role
from bridge.crossing import Crossings
from bridge.errors import InvalidValue, UnknownControl
from bridge.hub import Hub
from bridge.model import Change, Origin, Value
from bridge.net import lan_address
from bridge.ratelimit import LogLimiter
from bridge.views import View

log = logging.getLogger(__name__)


#: A client with this many packets waiting in its Socket.IO queue is behind:
#: its updates are held back, latest value per control, until it catches up.
BACKLOG_LIMIT = 8
#: How often held-back updates are offered again to clients that were behind.
FLUSH_INTERVAL = 0.005
#: A browser's burst of changes gives everything else (other browsers, OSC,
#: MIDI, HTTP) a turn after this many: under gevent a socket with data waiting
#: never yields by itself.
YIELD_EVERY = 32


class WebAdapter:
    """Socket.IO clients and HTTP callers as sources, Socket.IO clients as sinks.

    Toward each browser the latest value wins: while a client is behind (a
    phone on weak Wi-Fi, or a flood of changes), the values it has not been
    sent yet are replaced, one per control, and sent once it has caught up.
    A client that keeps up gets every change.
    """

    name = "web"

    def __init__(
        self,
        hub: Hub,
        socketio: SocketIO,
        status: Callable[[], dict[str, Any]],
        access: Access | None = None,
        max_rate: int = 200,
        max_clients: int = 250,
        views: Iterable[View] = (),
    ) -> None:
        self.hub = hub
        self.socketio = socketio
        self.status = status
        self.access = access or Access()
        self.max_rate = max_rate
        self.max_clients = max_clients
        self.views = {view.name: view for view in views}
        self._roles: dict[str, Role] = {}
        # Changes from browsers over their rate: sid -> {control id: latest data}.
        self._held_in: dict[str, dict[str, object]] = {}
        self._buckets: dict[str, list[float]] = {}  # sid -> [tokens, last refill]
        self._told: set[str] = set()
        self.throttled = 0
        self._warn = LogLimiter(log)
        self._pushed: dict[str, Any] = {}
        self._pushed_lock = threading.Lock()
        self._clients: set[str] = set()
        # sid -> {control id: latest value not yet sent}; insertion order kept.
        self._held: dict[str, dict[str, Value]] = {}
        self._lock = threading.Lock()  # clients and what is held back toward them
        self._in_lock = threading.Lock()  # rate limits of changes coming in
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._flusher: threading.Thread | None = None
        self._fanout: threading.Thread | None = None
        # Latest change per control; every change of a button (see send()).
        self._outbox: dict[str | tuple[str, int], Change] = {}
        self._presses = itertools.count()
        self._out_lock = threading.Lock()
        self._out_ready = threading.Event()
        self.coalesced = 0
        self._received = 0
        # Changes that may have crossed an update on the wire (see bridge.crossing).
        self._crossings = Crossings()
        self._cross_lock = threading.Lock()

    def start(self) -> None:
        """Start the thread that sends held-back values to clients that caught up."""
        self._stopping.clear()
        self._flusher = threading.Thread(target=self._flush_loop, name="web-flush", daemon=True)
        self._flusher.start()
        self._fanout = threading.Thread(target=self._fanout_loop, name="web-fanout", daemon=True)
        self._fanout.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._out_ready.set()
        for thread in (self._flusher, self._fanout):
            if thread is not None:
                thread.join(timeout=2)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "clients": len(self._clients),
                "behind": len(self._held),
                "coalesced": self.coalesced,
                "throttled": self.throttled,
                "confirmed": self._crossings.confirmed,
                "keys": self.access.enabled,
            }

    def send(self, change: Change) -> None:
        """Queue ``change`` for the fan-out thread; a newer change to the same control replaces it.

        The hub calls this for every change, so it only files the change: the
        cost of reaching every browser is paid by the fan-out thread, which
        under a flood sends each control's latest value instead of every one.
        """
        with self._out_lock:
            if change.control.type == "button":
                # A tap is a press and a release, often in one batch: both go out,
                # or other pages (and their hooks) would never see the press.
                self._outbox[(change.control.id, next(self._presses))] = change
            else:
                self._outbox.pop(change.control.id, None)  # re-inserted last: order of changes kept
                self._outbox[change.control.id] = change
        self._out_ready.set()

    def _fanout_loop(self) -> None:
        while True:
            self._out_ready.wait()
            with self._out_lock:
                batch, self._outbox = self._outbox, {}
                self._out_ready.clear()
            for change in batch.values():
                self._broadcast(change)
            if self._stopping.is_set():
                return

    def _broadcast(self, change: Change) -> None:
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
                        held.pop(cid, None)  # it shows its own newer value already
                    continue
                held = self._held.get(sid)
                if held is None and self._backlog(sid) >= BACKLOG_LIMIT:
                    held = self._held[sid] = {}
                if held is not None:
                    # Behind: keep only the latest value, sent once it catches up.
                    if cid in held:
                        self.coalesced += 1
                        del held[cid]
                    held[cid] = value
                    skip.append(sid)
            if len(skip) < len(self._clients):
                self.socketio.emit("update value", {"who": cid, "data": value}, skip_sid=skip or None)
        if self._held:
            self._wake.set()

    def _backlog(self, sid: str) -> int:
        """Packets queued for ``sid`` and not yet taken by its transport."""
        server = self.socketio.server
        try:
            eio_sid = server.manager.eio_sid_from_sid(sid, "/")
            sock = server.eio.sockets.get(eio_sid)
        except (KeyError, AttributeError):
            return 0
        return sock.queue.qsize() if sock is not None else 0

    def _flush_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            if self._stopping.is_set():
                return
            with self._lock:
                for sid in list(self._held):
                    if sid not in self._clients:
                        del self._held[sid]
                    elif self._backlog(sid) < BACKLOG_LIMIT:
                        for cid, value in self._held.pop(sid).items():
                            self.socketio.emit("update value", {"who": cid, "data": value}, to=sid)
                self._confirm()
            with self._in_lock:
                due = self._due_input()
                with self._cross_lock:  # a confirmation scheduled meanwhile keeps the loop awake
                    if not self._held and not self._held_in and not self._crossings.pending:
                        self._wake.clear()
                # Applied under the lock of the way in: once a browser's held
                # value is taken out, its next change (which would go straight
                # through) waits for it, so an older value never lands last.
                # Nothing on the way from the hub to an adapter takes this lock.
                for sid, who, data in due:
                    self._apply(sid, who, data)
            self._stopping.wait(FLUSH_INTERVAL)

    def _confirm(self) -> None:
        """Send the stored value to browsers whose change may have crossed another (under the lock,
        so that no broadcast of a newer value can overtake it)."""
        with self._cross_lock:
            due = self._crossings.take_due(time.monotonic())
        for sid, cid in due:
            if sid in self._clients:
                held = self._held.get(sid)
                if held is not None:
                    held.pop(cid, None)  # older than what goes now
                self.socketio.emit("update value", {"who": cid, "data": self.hub.get(cid)}, to=sid)

    def _take_token(self, sid: str) -> bool:
        """Token bucket per browser: ``max_rate`` changes a second, bursts up to one second's worth."""
        now = time.monotonic()
        bucket = self._buckets.setdefault(sid, [float(self.max_rate), now])
        bucket[0] = min(float(self.max_rate), bucket[0] + (now - bucket[1]) * self.max_rate)
        bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return True
        return False

    def _due_input(self) -> list[tuple[str, str, object]]:
        """Held browser changes whose sender has tokens again (called under the lock)."""
        due: list[tuple[str, str, object]] = []
        for sid in list(self._held_in):
            held = self._held_in[sid]
            if sid not in self._clients:
                del self._held_in[sid]
                continue
            while held and self._take_token(sid):
                who = next(iter(held))
                due.append((sid, who, held.pop(who)))
            if not held:
                del self._held_in[sid]
        return due

    def role(self, sid: str) -> Role | None:
        """The role the Socket.IO client ``sid`` joined with, or None once it left."""
        with self._lock:
            return self._roles.get(sid)

    def guard(self, bp: Blueprint) -> None:
        """Put ``bp``'s routes under the same keys as this adapter's: viewers only read."""
        bp.before_request(self._check_access)

    def check_access(self) -> Any:
        """The HTTP key check, for the routes of other modules' blueprints."""
        return self._check_access()

    def push(self, event: str, payload: Any) -> None:
        """Send a status event to every browser; new browsers get the latest one on connect."""
        with self._pushed_lock:
            self._pushed[event] = payload
        self.socketio.emit(event, payload)

    # -- Socket.IO -----------------------------------------------------------
    def register(self, app: Flask) -> None:
        """Attach the Socket.IO handlers and the HTTP routes."""
        self.socketio.on_event("connect", self._on_connect)
        self.socketio.on_event("disconnect", self._on_disconnect)
        # Straight on the Socket.IO server, without a Flask request context per
        # event: this is the hot path of every fader move (about half the cost).
        self.socketio.server.on("value changed", self._on_value_changed, namespace="/")
        self.socketio.on_event("ping bridge", self._on_ping)
        app.register_blueprint(self._blueprint())

    def _on_connect(self, auth: object = None) -> None:
        sid: str = request.sid  # type: ignore[attr-defined]
        presented = auth.get("key") if isinstance(auth, dict) else None
        role = self.access.role_for(presented if isinstance(presented, str) else request_key())
        if role is None:
            raise ConnectionRefusedError("unauthorized: open the join URL with its key")
        with self._lock:
            if len(self._clients) >= self.max_clients:
                self._warn.warning("full", "refused a browser: max_clients (%d) reached", self.max_clients)
                raise ConnectionRefusedError(f"server full: at most {self.max_clients} clients")
            self._roles[sid] = role

        # Under the hub's dispatch order, so no update can slip between the
        # values read here and the snapshot sent with them.
        def welcome(values: dict[str, Value]) -> None:
            emit("snapshot", {"values": values})
            with self._lock:
                self._clients.add(sid)
                with self._cross_lock:
                    self._crossings.joined(sid)

        self.hub.with_values(welcome)
        with self._pushed_lock:
            pushed = list(self._pushed.items())
        for event, payload in pushed:
            emit(event, payload)

    def _on_disconnect(self, reason: object = None) -> None:
        sid: str = request.sid  # type: ignore[attr-defined]
        with self._lock:
            self._clients.discard(sid)
            self._held.pop(sid, None)
            self._roles.pop(sid, None)
        with self._cross_lock:
            self._crossings.forget(sid)
        with self._in_lock:
            self._held_in.pop(sid, None)
            self._buckets.pop(sid, None)
            self._told.discard(sid)

    def _on_ping(self, payload: object = None) -> object:
        # Acknowledged at once: the page measures its round-trip time with it.
        return payload

    def _on_value_changed(self, sid: str, message: object) -> None:
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
        if self._roles.get(sid) == "viewer":
            self._reject(sid, who, data, "read-only: this browser joined with the viewer key")
            return
        if not isinstance(who, str) or who not in self.hub.controls:
            self._reject(sid, who, data, f"unknown control {who!r}")
            return
        # Its own lock: the way in never waits for the fan-out to browsers.
        with self._in_lock:
            held = self._held_in.get(sid)
            if held is not None or not self._take_token(sid):
                # Over its rate: keep only this browser's latest value per control.
                if held is None:
                    held = self._held_in[sid] = {}
                held.pop(who, None)
                held[who] = data
                self.throttled += 1
                tell = sid not in self._told
                self._told.add(sid)
                self._wake.set()
            else:
                tell = False
                held = None
        if held is not None:
            if tell:
                log.warning("browser %s is over max_rate (%d changes/s); its latest values win", sid, self.max_rate)
                payload = {"limit": self.max_rate, "reason": f"over {self.max_rate} changes a second"}
                self.socketio.emit("throttled", payload, to=sid)
            return
        self._apply(sid, who, data)

    def _apply(self, sid: str, who: str, data: object) -> None:
        try:
            applied = self.hub.set(who, data, Origin("web", sid))
        except (UnknownControl, InvalidValue) as err:
            self._reject(sid, who, data, str(err))
            return
        with self._cross_lock:
            if self._crossings.changed(sid, applied.control.id, time.monotonic()):
                self._wake.set()
            if applied.adjusted:
                self._crossings.told(sid, applied.control.id)
        if applied.adjusted:
            # Clamped or stepped: the sender shows something else; correct it.
            self.socketio.emit("update value", {"who": applied.control.id, "data": applied.value}, to=sid)

    def _reject(self, sid: str, who: object, data: object, reason: str) -> None:
        self._warn.warning(("web", sid, reason), "rejected from browser %s: %s", sid, reason)
        self.socketio.emit("rejected", {"who": who, "data": data, "reason": reason}, to=sid)

    # -- HTTP ----------------------------------------------------------------
    def _check_access(self) -> Any:
        """Keys in force: no key, no page and no API; a viewer only reads."""
        if request.endpoint in OPEN_ENDPOINTS:
            return None
        role = self.access.role_for(request_key())
        if role is None:
            if request.endpoint == "bridge.index":
                wrong = bool(request.args.get("key"))
                return render_template("key.html", wrong=wrong), 401
            return jsonify(error="unauthorized: send the key as ?key=, a cookie or Authorization: Bearer"), 401
        if role == "viewer" and request.method not in ("GET", "HEAD", "OPTIONS"):
            return jsonify(error="read-only: the viewer key cannot change values"), 403
        request.environ["stage_bridge.role"] = role
        if request.endpoint == "bridge.index" and request.args.get("key"):
            # Keep the key out of the address bar and bookmarks: it lives in the cookie now.
            rest = urlencode([(k, v) for k, v in request.args.items(multi=True) if k != "key"])
            response = redirect(f"{request.path}?{rest}" if rest else request.path, code=303)
            self._set_cookie(response, request.args["key"])
            return response
        return None

    def _join_url(self) -> str:
        """The LAN URL for a phone, with the key of the role asking for it when keys are in force."""
        url = join_url()
        role = request.environ.get("stage_bridge.role")
        key = self.access.key_for(role) if self.access.enabled and role else None
        return f"{url}?key={key}" if key else url

    def _set_cookie(self, response: BaseResponse, key: str) -> None:
        response.set_cookie(COOKIE, key, max_age=30 * 24 * 3600, httponly=True, samesite="Strict", path="/")

    def _blueprint(self) -> Blueprint:
        bp = Blueprint("bridge", __name__)
        hub = self.hub
        bp.before_request(self._check_access)

        @bp.get("/")
        def index() -> Any:
            # Complete at first paint: the values, the digits to show them with,
            # and the config's groups as panels in the order they first appear.
            controls = list(hub.controls.values())
            view_name = request.args.get("view") or None
            if view_name is not None:
                view = self.views.get(view_name)
                if view is None:
                    return render_template("no_view.html", name=view_name, views=list(self.views)), 404
                # Only what this device needs; the values of the rest still reach it, unshown.
                controls = [c for c in controls if view.shows(c.id)]
            groups: dict[str, list[Any]] = {}
            for control in controls:
                groups.setdefault(control.group, []).append(control)

            def places(control: Any) -> int:
                """Digits shown after the point: the config's, else the step's, else by span."""
                if control.decimals is not None:
                    return int(control.decimals)
                if control.step > 0:
                    return len(f"{control.step:.6f}".rstrip("0").split(".")[1])
                span = control.max - control.min
                return 2 if span <= 2 else 1 if span <= 20 else 0

            return render_template(
                "index.html",
                controls=controls,
                values=hub.values(),
                groups=list(groups.items()),
                decimals={c.id: places(c) for c in controls},
                role=request.environ.get("stage_bridge.role", "control"),
                read_only=request.environ.get("stage_bridge.role") == "viewer",
                view=view_name,
                views=list(self.views),
            )

        @bp.get("/api/values")
        def get_values() -> Any:
            return jsonify(hub.values())

        @bp.put("/api/values/<control_id>")
        def put_value(control_id: str) -> Any:
            if control_id not in hub.controls:
                return jsonify(error=f"unknown control {control_id!r}"), 404
            body = request.get_json(silent=True)
            if not isinstance(body, dict) or "value" not in body:
                return jsonify(error='body must be JSON {"value": ...}'), 400
            try:
                applied = hub.set(control_id, body["value"], Origin("http", request.remote_addr or ""))
            except InvalidValue as err:
                return jsonify(error=str(err)), 400
            return jsonify(id=control_id, value=applied.value)

        @bp.get("/join")
        def join() -> Any:
            return jsonify(url=self._join_url())

        @bp.get("/qr.svg")
        def qr_svg() -> Response:
            buffer = io.BytesIO()
            # A standalone SVG document (with its namespace), so <img src="/qr.svg"> draws it too.
            segno.make(self._join_url(), error="m").save(
                buffer, kind="svg", scale=6, border=2, dark="#000", light="#fff", xmldecl=False
            )
            svg = buffer.getvalue()
            return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})

        @bp.get("/healthz")
        def healthz() -> Any:
            return jsonify(self.status())

        return bp


#: Reachable without a key: monitoring. (Static files are not the blueprint's: always open.)
OPEN_ENDPOINTS = {"bridge.healthz"}


def request_key() -> str | None:
    """The key a request presents: ``?key=``, then the cookie, then ``Authorization: Bearer``."""
    key = request.args.get("key") or request.cookies.get(COOKIE)
    if key:
        return key
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token else None


def join_url() -> str:
    """The address a phone on the LAN opens: this machine's LAN address, else the one asked for."""
    port = request.host.rsplit(":", 1)[1] if ":" in request.host.rsplit("]", 1)[-1] else ""
    lan = lan_address()
    if lan is None or request.host.split(":")[0] not in ("localhost", "127.0.0.1", "0.0.0.0"):  # noqa: S104
        return request.host_url
    return f"http://{lan}:{port}/" if port else f"http://{lan}/"
