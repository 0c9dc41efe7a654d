"""The HTTP side: the page, the JSON API, the join URL and its QR code, and ``/healthz``.

One Flask blueprint, ``bridge``, under the keys of :func:`bridge.auth.guard`.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

import segno
from flask import Blueprint, Response, jsonify, render_template, request

from bridge.auth import Access, guard, request_role
from bridge.concurrency import runtime_counts
from bridge.errors import InvalidValue
from bridge.hub import Hub
from bridge.model import Control, Origin
from bridge.net import lan_address
from bridge.views import View


def blueprint(hub: Hub, access: Access, views: Mapping[str, View], status: Callable[[], dict[str, Any]]) -> Blueprint:
    """The page and API routes for ``hub``; ``status()`` is what ``/healthz`` serves."""
    bp = Blueprint("bridge", __name__)
    guard(bp, access)

    @bp.get("/")
    def index() -> Any:
        # Complete at first paint: the values, the digits to show them with,
        # and the config's groups as panels in the order they first appear.
        controls = list(hub.controls.values())
        view_name = request.args.get("view") or None
        if view_name is not None:
            view = views.get(view_name)
            if view is None:
                return render_template("no_view.html", name=view_name, views=list(views)), 404
            # Only what this device needs; the values of the rest still reach it, unshown.
            controls = [c for c in controls if view.shows(c.id)]
        groups: dict[str, list[Control]] = {}
        for control in controls:
            groups.setdefault(control.group, []).append(control)
        role = request_role() or "control"
        return render_template(
            "index.html",
            controls=controls,
            values=hub.values(),
            groups=list(groups.items()),
            decimals={c.id: places(c) for c in controls},
            role=role,
            read_only=role == "viewer",
            view=view_name,
            views=list(views),
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

    def keyed_join_url() -> str:
        """The LAN URL for a phone, with the key of the role asking for it when keys are in force."""
        url = join_url()
        role = request_role()
        key = access.key_for(role) if access.enabled and role else None
        return f"{url}?key={key}" if key else url

    @bp.get("/join")
    def join() -> Any:
        return jsonify(url=keyed_join_url())

    @bp.get("/qr.svg")
    def qr_svg() -> Response:
        buffer = io.BytesIO()
        # A standalone SVG document (with its namespace), so <img src="/qr.svg"> draws it too.
        segno.make(keyed_join_url(), error="m").save(
            buffer, kind="svg", scale=6, border=2, dark="#000", light="#fff", xmldecl=False
        )
        return Response(buffer.getvalue(), mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})

    @bp.get("/healthz")
    def healthz() -> Any:
        body = status()
        if request.args.get("runtime"):
            # On request only: counting greenlets walks the whole heap.
            body["runtime"] = runtime_counts()
        return jsonify(body)

    return bp


def places(control: Control) -> int:
    """Digits shown after the point: the config's, else the step's, else by span."""
    if control.decimals is not None:
        return int(control.decimals)
    if control.step > 0:
        return len(f"{control.step:.6f}".rstrip("0").split(".")[1])
    span = control.max - control.min
    return 2 if span <= 2 else 1 if span <= 20 else 0


def join_url() -> str:
    """The address a phone on the LAN opens: this machine's LAN address, else the one asked for."""
    port = request.host.rsplit(":", 1)[1] if ":" in request.host.rsplit("]", 1)[-1] else ""
    lan = lan_address()
    if lan is None or request.host.split(":")[0] not in ("localhost", "127.0.0.1", "0.0.0.0"):  # noqa: S104
        return request.host_url
    return f"http://{lan}:{port}/" if port else f"http://{lan}/"
