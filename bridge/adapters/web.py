"""Socket.IO events and the HTTP API: browsers and scripts as hub sources.

The protocol is the classic Flask-SocketIO slider recipe's, kept compatible:
``value changed`` in, ``update value`` out to every other client, plus a
``snapshot`` on connect and ``rejected`` for bad input.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import segno
from flask import Blueprint, Flask, Response, jsonify, render_template, request
from flask_socketio import SocketIO, emit

from bridge.errors import InvalidValue, UnknownControl
from bridge.hub import Hub
from bridge.model import Change, Origin, Value
from bridge.net import lan_address
from bridge.ratelimit import LogLimiter

log = logging.getLogger(__name__)


class WebAdapter:
    """Socket.IO clients and HTTP callers as sources, Socket.IO clients as sinks."""

    name = "web"

    def __init__(self, hub: Hub, socketio: SocketIO, status: Callable[[], dict[str, Any]]) -> None:
        self.hub = hub
        self.socketio = socketio
        self.status = status
        self._warn = LogLimiter(log)
        self._pushed: dict[str, Any] = {}
        self._pushed_lock = threading.Lock()

    def start(self) -> None:
        """Nothing to open: the Socket.IO server is the web server's."""

    def stop(self) -> None:
        """Nothing to close."""

    def send(self, change: Change) -> None:
        """Broadcast ``change``, skipping the browser it came from."""
        skip = change.origin.ident if change.origin.kind == "web" else None
        self.socketio.emit("update value", {"who": change.control.id, "data": change.value}, skip_sid=skip)

    def push(self, event: str, payload: Any) -> None:
        """Send a status event to every browser; new browsers get the latest one on connect."""
        with self._pushed_lock:
            self._pushed[event] = payload
        self.socketio.emit(event, payload)

    # -- Socket.IO -----------------------------------------------------------
    def register(self, app: Flask) -> None:
        """Attach the Socket.IO handlers and the HTTP routes."""
        self.socketio.on_event("connect", self._on_connect)
        self.socketio.on_event("value changed", self._on_value_changed)
        self.socketio.on_event("ping bridge", self._on_ping)
        app.register_blueprint(self._blueprint())

    def _on_connect(self, auth: object = None) -> None:
        # Under the hub's dispatch order, so no update can slip between the
        # values read here and the snapshot sent with them.
        self.hub.with_values(lambda values: emit("snapshot", {"values": values}))
        with self._pushed_lock:
            pushed = list(self._pushed.items())
        for event, payload in pushed:
            emit(event, payload)

    def _on_ping(self, payload: object = None) -> object:
        # Acknowledged at once: the page measures its round-trip time with it.
        return payload

    def _on_value_changed(self, message: object) -> None:
        sid: str = request.sid  # type: ignore[attr-defined]
        if not isinstance(message, dict):
            self._reject(sid, None, message, 'payload must be an object {"who": id, "data": value}')
            return
        who, data = message.get("who"), message.get("data")
        missing = [key for key in ("who", "data") if key not in message]
        if missing:
            self._reject(sid, who, data, f"missing field {missing[0]!r}")
            return
        try:
            applied = self.hub.set(who, data, Origin("web", sid))
        except (UnknownControl, InvalidValue) as err:
            self._reject(sid, who, data, str(err))
            return
        if not _same_json(applied.value, data):
            # Clamped or stepped: the sender shows something else; correct it.
            emit("update value", {"who": applied.control.id, "data": applied.value})

    def _reject(self, sid: str, who: object, data: object, reason: str) -> None:
        self._warn.warning(("web", sid, reason), "rejected from browser %s: %s", sid, reason)
        emit("rejected", {"who": who, "data": data, "reason": reason})

    # -- HTTP ----------------------------------------------------------------
    def _blueprint(self) -> Blueprint:
        bp = Blueprint("bridge", __name__)
        hub = self.hub

        @bp.get("/")
        def index() -> str:
            return render_template("index.html", controls=list(hub.controls.values()), values=hub.values())

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
            return jsonify(url=join_url())

        @bp.get("/qr.svg")
        def qr_svg() -> Response:
            svg = segno.make(join_url(), error="m").svg_inline(scale=6, dark="#000", light="#fff", border=2)
            return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})

        @bp.get("/healthz")
        def healthz() -> Any:
            return jsonify(self.status())

        return bp


def join_url() -> str:
    """The address a phone on the LAN opens: this machine's LAN address, else the one asked for."""
    port = request.host.rsplit(":", 1)[1] if ":" in request.host.rsplit("]", 1)[-1] else ""
    lan = lan_address()
    if lan is None or request.host.split(":")[0] not in ("localhost", "127.0.0.1", "0.0.0.0"):  # noqa: S104
        return request.host_url
    return f"http://{lan}:{port}/" if port else f"http://{lan}/"


def _same_json(stored: Value, sent: object) -> bool:
    """True when the sender already shows ``stored`` (25 and 25.0 are one number)."""
    if isinstance(sent, bool):
        return stored == int(sent)
    comparable = type(stored) is type(sent) or (isinstance(sent, int | float) and not isinstance(stored, str))
    return comparable and stored == sent
