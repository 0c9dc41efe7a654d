"""The HTTP side: the page, the JSON API, the join URL and its QR code, and ``/healthz``.

One Flask blueprint, ``bridge``, under the keys of :func:`bridge.auth.guard`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any
from urllib.parse import urlencode

import segno
from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, request, url_for

from bridge.auth import Access, guard, request_role
from bridge.concurrency import runtime_counts
from bridge.errors import InvalidValue
from bridge.hub import Hub
from bridge.looks import Looks
from bridge.mapping import travel, travel_at
from bridge.model import Control, Origin
from bridge.monitor import IDLE
from bridge.net import lan_address
from bridge.views import View
from bridge.web.body import json_body


def blueprint(
    hub: Hub,
    access: Access,
    views: Mapping[str, View],
    status: Callable[[], dict[str, Any]],
    looks: Looks,
    monitor: Any = IDLE,
) -> Blueprint:
    """The page and API routes for ``hub``; ``status()`` is what ``/healthz`` serves; ``monitor`` sees each PUT."""
    bp = Blueprint("bridge", __name__)
    guard(bp, access)

    bp.add_app_template_filter(ink, "ink")
    bp.add_app_template_filter(led_color, "led_color")
    bp.add_app_template_filter(travel, "travel")
    bp.add_app_template_filter(travel_at, "travel_at")
    bp.add_app_template_filter(fixed, "fixed")

    @bp.get("/")
    def index() -> Any:
        view_name = request.args.get("view") or None
        if view_name is not None and view_name not in views:
            return render_template("no_view.html", name=view_name, views=list(views)), 404
        role = request_role() or "control"
        theme = current_theme()
        return render_template(
            "index.html",
            **surface(hub, looks, views, view_name, role, hub.values()),
            role=role,
            theme=theme,
            theme_color=THEME_COLORS[theme],
            # The editor: asked for, and only ever for the control role (the file holds the keys).
            editing=request.args.get("edit") == "1" and role == "control",
        )

    @bp.get("/api/values")
    def get_values() -> Any:
        return jsonify(hub.values())

    @bp.put("/api/values/<control_id>")
    def put_value(control_id: str) -> Any:
        if control_id not in hub.controls:
            return jsonify(error=f"unknown control {control_id!r}"), 404
        body = json_body(request)
        if monitor.watching:
            monitor.saw("http", "in", request.remote_addr or "", f"PUT /api/values/{control_id}",
                        [body.get("value") if isinstance(body, dict) else body], control_id)  # fmt: skip
        if not isinstance(body, dict) or "value" not in body:
            return jsonify(error='body must be JSON {"value": ...}'), 400
        try:
            applied = hub.set(control_id, body["value"], Origin("http", request.remote_addr or ""))
        except InvalidValue as err:
            return jsonify(error=str(err)), 400
        if applied.control.trigger:  # a press is an event: the stored value stays 0
            return jsonify(id=control_id, value=0, fired=applied.changed)
        return jsonify(id=control_id, value=applied.value)

    def keyed_join_url() -> str:
        """The LAN URL for a phone, with the key of the role asking for it when keys are in force,
        and the view of the page asking (the drummer's phone opens the drummer's view)."""
        url = join_url()
        role = request_role()
        key = access.key_for(role) if access.enabled and role else None
        view = request.args.get("view")
        query = [("key", key)] if key else []
        if view and view in views:
            query.append(("view", view))
        return f"{url}?{urlencode(query)}" if query else url

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

    @bp.get("/manifest.webmanifest")
    def manifest() -> Response:
        # Open without a key: a browser fetches it without cookies. It tells nothing about the show.
        view_name = request.args.get("view") or None
        theme = current_theme()
        return Response(
            json.dumps(web_manifest(view_name if view_name in views else None, theme)),
            mimetype="application/manifest+json",
        )

    return bp


#: The page's background in each theme: the browser's bars and the home-screen app's splash take it.
THEME_COLORS = {"dark": "#0b0d10", "light": "#eef0f3", "contrast": "#000000"}


def current_theme() -> str:
    """The theme of the running config (it follows a reload)."""
    bridge = current_app.extensions.get("stage_bridge")
    theme = bridge.config.server.theme if bridge is not None else "dark"
    return theme if theme in THEME_COLORS else "dark"


def web_manifest(view: str | None, theme: str) -> dict[str, Any]:
    """The web app manifest: "Add to Home Screen" gives a full-screen app with the bridge's icon."""
    colour = THEME_COLORS[theme]
    icons = url_for("static", filename="icons/")
    return {
        "name": f"{view} · Stage Bridge" if view else "Stage Bridge",
        "short_name": view or "Stage Bridge",
        "description": "Faders, buttons and displays of the show, kept in sync and bridged to OSC and MIDI",
        "start_url": url_for("bridge.index", view=view) if view else url_for("bridge.index"),
        "scope": "/",
        "display": "fullscreen",
        "display_override": ["fullscreen", "standalone"],
        "orientation": "any",
        "background_color": colour,
        "theme_color": colour,
        "icons": [
            {"src": f"{icons}icon-192.png", "sizes": "192x192", "type": "image/png", "purpose": "any"},
            {"src": f"{icons}icon-512.png", "sizes": "512x512", "type": "image/png", "purpose": "any"},
            {"src": f"{icons}icon-maskable-512.png", "sizes": "512x512", "type": "image/png", "purpose": "maskable"},
            {"src": f"{icons}icon.svg", "sizes": "any", "type": "image/svg+xml", "purpose": "any"},
        ],
    }


def surface(
    hub: Hub, looks: Looks, views: Mapping[str, View], view: str | None, role: str, values: dict[str, Any]
) -> dict[str, Any]:
    """What the surface template needs for ``view`` and ``role``: complete at first paint (the values, the
    digits to show them with, the pages and the groups as panels in the order they first appear, and the
    links to the views)."""
    controls = list(hub.controls.values())
    shown = views.get(view) if view is not None else None
    if shown is not None:
        # Only what this device needs; the values of the rest still reach it, unshown.
        controls = [c for c in controls if shown.shows(c.id)]
    return {
        "controls": controls,
        "values": values,
        "pages": layout(controls),
        "decimals": {c.id: places(c) for c in controls},
        "read_only": role == "viewer",
        "looks": looks.all(),
        "view": view,
        "views": list(views),
    }


def render_surface(app: Flask, context: dict[str, Any]) -> str:
    """The tabs and panels (``_surface.html``) and the links to the views (``_views.html``), from
    :func:`surface`'s ``context``, for the ``layout`` a reload sends to a page."""
    with app.test_request_context("/"):
        return render_template("_surface.html", **context) + render_template("_views.html", **context)


@dataclass(frozen=True)
class Panel:
    """A group's controls; a strip (a mixer channel) when they are all narrow ones standing upright."""

    name: str
    controls: tuple[Control, ...]
    strip: bool


@dataclass(frozen=True)
class Page:
    """One tab: the panels of the controls with this ``page``, in config order."""

    name: str
    panels: tuple[Panel, ...]


def layout(controls: list[Control]) -> list[Page]:
    """The pages (tabs, in the order they first appear) and the group panels on each.

    Controls without a page are on the page "Main" when others have one (with a page of
    that name, if there is one); when none has, there is one page, unnamed, and no tabs.
    """
    pages: dict[str, dict[str, list[Control]]] = {}
    named = any(c.page for c in controls)
    for control in controls:
        page = control.page or ("Main" if named else "")
        pages.setdefault(page, {}).setdefault(control.group, []).append(control)
    return [
        Page(name, tuple(Panel(group, tuple(members), _strip(members)) for group, members in groups.items()))
        for name, groups in pages.items()
    ]


def _strip(members: list[Control]) -> bool:
    upright = [c for c in members if c.type == "knob" or (c.numeric and c.orientation == "vertical")]
    narrow = all(c.type in ("knob", "label", "led", "button", "toggle") or c in upright for c in members)
    return bool(upright) and narrow


def ink(color: str) -> str:
    """Text that reads on ``color`` ("#rrggbb"): near-black on light colours, white on dark ones (WCAG luminance)."""
    channels = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return "#111111" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.179 else "#ffffff"


def fixed(value: object, places: int) -> str:
    """``value`` with ``places`` decimals as the page's script writes it (JavaScript's ``toFixed``: a half
    away from zero, on the float's exact value; no "-0.00"), so the first paint and the live page agree:
    Python's "%.0f" made -12.5 "-12", the script "-13"."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    exact = Context(prec=1000).create_decimal(value)
    text = str(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP, context=Context(prec=1000)))
    return text.lstrip("-") if Decimal(text) == 0 else text


def led_color(control: Control, value: object) -> str | None:
    """The colour an LED shows for ``value``: its threshold's, or its own colour when on; None when dark."""
    if control.colors:
        lit = None
        for threshold, color in control.colors:
            if isinstance(value, int | float) and value >= threshold:
                lit = color
        return lit
    return (control.color or None) if value else None


def places(control: Control) -> int:
    """Digits shown after the point: the config's, else the step's, else by span."""
    if control.decimals is not None:
        return int(control.decimals)
    if control.step > 0:
        return len(f"{control.step:.6f}".rstrip("0").split(".")[1])
    span = control.max - control.min
    return 2 if span <= 2 else 1 if span <= 20 else 0


def join_url() -> str:
    """The address a phone on the LAN opens: this machine's LAN address, else the one asked for.

    A bridge that listens on loopback only is reached at no LAN address: the one asked for then.
    """
    port = request.host.rsplit(":", 1)[1] if ":" in request.host.rsplit("]", 1)[-1] else ""
    lan = lan_address()
    bridge = current_app.extensions.get("stage_bridge")
    loopback = bridge is not None and bridge.config.server.host in ("127.0.0.1", "::1", "localhost")
    if lan is None or loopback or request.host.split(":")[0] not in ("localhost", "127.0.0.1", "0.0.0.0"):  # noqa: S104
        return request.host_url
    return f"{request.scheme}://{lan}:{port}/" if port else f"{request.scheme}://{lan}/"
