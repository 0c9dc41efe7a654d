"""Access keys: who may control the show, who may only watch it. Every key check is here.

A key travels once as ``?key=...`` in the join URL (or QR code) and then as
an HttpOnly, SameSite cookie; scripts may send ``Authorization: Bearer KEY``
and Socket.IO clients ``auth={"key": KEY}``. Keys are compared in constant
time with :func:`hmac.compare_digest`.

* :func:`presented_key` reads the key a request carries (the page's Flask
  requests, Socket.IO's handshake and the OSCQuery server all hand in a
  Werkzeug request);
* :meth:`Access.role_for` says what a key is worth;
* :func:`guard` puts a Flask blueprint under the keys: no key, no page and no
  API; a viewer only reads;
* :class:`Origins` says which pages may open a Socket.IO connection, for
  both transports: Engine.IO asks it on polling requests, the HTTP server
  (:mod:`bridge.serve`) before a WebSocket upgrade.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

from flask import Blueprint, jsonify, redirect, render_template, request
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response as BaseResponse

log = logging.getLogger(__name__)

Role = Literal["control", "viewer"]
COOKIE = "stage_bridge_key"
#: Where Flask routes find the role of the request being served.
ROLE_KEY = "stage_bridge.role"
#: Reachable without a key: monitoring, and the web app manifest, which browsers fetch without cookies.
#: (Static files are not a blueprint's: always open.)
OPEN_ENDPOINTS = {"bridge.healthz", "bridge.manifest"}
#: The page: asks for a key instead of answering 401 with JSON, and moves ``?key=`` into the cookie.
PAGE_ENDPOINT = "bridge.index"
READ_METHODS = ("GET", "HEAD", "OPTIONS")


def generate_key() -> str:
    """A fresh key that is easy to type from a printout: 12 URL-safe characters."""
    return secrets.token_urlsafe(9)


def keys_file_for(anchor: Path) -> Path:
    """Where the keys ``"auto"`` stands for are kept: beside the state file (or the config), named after it."""
    return anchor.with_name(f"{anchor.stem}.keys.json")


def kept_keys(path: Path | None, wanted: tuple[str | None, str | None]) -> tuple[str | None, str | None]:
    """The keys ``wanted`` (the config's key and viewer key) stand for: an ``"auto"`` one is the key kept in
    ``path``, made and kept there (readable by its owner only) the first time. A restart with new keys
    locked every phone out until each operator was shown the QR code again. Without ``path``, made anew."""
    if "auto" not in wanted:
        return wanted
    found: Any = {}
    if path is not None:
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as err:
            log.warning("the keys kept in %s cannot be read (%s); new ones made", path, err)
        try:
            if path.exists() and path.stat().st_mode & 0o077:
                path.chmod(0o600)  # (written by hand under umask 022: the keys are its owner's alone)
        except OSError as err:
            log.warning("the keys kept in %s cannot be made readable by their owner only: %s", path, err)
    kept = {
        name: key for name, key in (found.items() if isinstance(found, dict) else ()) if isinstance(key, str) and key
    }
    keys: list[str | None] = []
    for name, want in zip(("key", "viewer_key"), wanted, strict=True):
        if want == "auto" and name not in kept:
            kept[name] = generate_key()
            found = None  # (to be written)
        keys.append(kept[name] if want == "auto" else want)
    if found is None and path is not None:
        from bridge.state import write_atomic

        try:
            if path.exists():
                path.chmod(0o600)  # (first: the new file takes the old one's mode, and one written by hand may be 0644)
            write_atomic(path, json.dumps(kept, indent=1).encode("utf-8"))
        except OSError as err:
            log.warning("cannot keep the keys in %s (%s): new ones at the next start", path, err.strerror or err)
    return keys[0], keys[1]


def same_key(presented: str, expected: str) -> bool:
    """Compare two keys in constant time (for equal lengths)."""
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def presented_key(req: Request) -> str | None:
    """The key a request presents: ``?key=``, then ``Authorization: Bearer``, then the cookie (a key sent on
    purpose wins over one a browser happens to carry: a script sharing a viewer page's session)."""
    scheme, _, token = req.headers.get("Authorization", "").partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" and token else None
    return req.args.get("key") or bearer or req.cookies.get(COOKIE) or None


@dataclass
class Access:
    """The keys in force: ``key`` gives control, ``viewer_key`` read-only access.

    One object for the whole run: a config reload changes its keys in place
    (:meth:`follow`), and every check everywhere sees the new ones.
    """

    key: str | None = None
    viewer_key: str | None = None
    #: The keys as the config writes them ("auto" included), to tell what a reload changed.
    wanted: tuple[str | None, str | None] = (None, None)
    #: Where the keys "auto" stands for are kept (see :func:`kept_keys`).
    kept: Path | None = None

    @classmethod
    def from_config(cls, key: str | None, viewer_key: str | None, kept: Path | None = None) -> Access:
        """Resolve ``"auto"`` into the kept keys (made the first time)."""
        made, made_viewer = kept_keys(kept, (key, viewer_key))
        return cls(key=made, viewer_key=made_viewer, wanted=(key, viewer_key), kept=kept)

    def follow(self, key: str | None, viewer_key: str | None) -> bool:
        """Take the keys of a reloaded config; an "auto" key that stays "auto" keeps its value.

        True when a key changed.
        """
        if (key, viewer_key) == self.wanted:
            return False
        fresh = Access.from_config(key, viewer_key, self.kept)
        if key == "auto" and self.wanted[0] == "auto":
            fresh.key = self.key
        if viewer_key == "auto" and self.wanted[1] == "auto":
            fresh.viewer_key = self.viewer_key
        changed = (fresh.key, fresh.viewer_key) != (self.key, self.viewer_key)
        self.key, self.viewer_key, self.wanted = fresh.key, fresh.viewer_key, (key, viewer_key)
        return changed

    @property
    def enabled(self) -> bool:
        return self.key is not None

    def role_for(self, presented: str | None) -> Role | None:
        """The role a presented key gives, or None; everyone controls when no key is set."""
        if self.key is None:
            return "control"
        if not presented:
            return None
        # Both comparisons always run, so the time taken does not tell which key is near.
        is_control = same_key(presented, self.key)
        is_viewer = self.viewer_key is not None and same_key(presented, self.viewer_key)
        if is_control:
            return "control"
        if is_viewer:
            return "viewer"
        return None

    def key_for(self, role: Role) -> str | None:
        return self.key if role == "control" else self.viewer_key


def own_origins(environ: Mapping[str, Any]) -> list[str]:
    """The origins of the page a request was served from: its Host, and the one a proxy forwarded.

    The same rule as python-engineio's ``cors_allowed_origins=None``, so a
    page behind nginx (see docs/cluster.md) keeps working.
    """
    host = environ.get("HTTP_HOST")
    if not host:
        return []
    scheme = environ.get("wsgi.url_scheme", "http")
    origins = [f"{scheme}://{host}"]
    if "HTTP_X_FORWARDED_PROTO" in environ or "HTTP_X_FORWARDED_HOST" in environ:
        forwarded_scheme = environ.get("HTTP_X_FORWARDED_PROTO", scheme).split(",")[0].strip()
        forwarded_host = environ.get("HTTP_X_FORWARDED_HOST", host).split(",")[0].strip()
        origins.append(f"{forwarded_scheme}://{forwarded_host}")
    return origins


@dataclass
class Origins:
    """The pages that may connect: their own origin, and those ``[server] allowed_origins`` lists.

    A request without an ``Origin`` header is a script, not a page in a
    browser, and is let through (browsers always send one with a WebSocket
    or cross-origin request). Called as Engine.IO's ``cors_allowed_origins``.
    One object for the whole run: a config reload changes ``listed`` in place.
    """

    listed: tuple[str, ...] = ()

    def allows(self, origin: str | None, environ: Mapping[str, Any]) -> bool:
        if not origin:
            return True
        return origin in self.listed or origin in own_origins(environ)

    def __call__(self, origin: str | None, environ: Mapping[str, Any]) -> bool:
        return self.allows(origin, environ)


def guard(blueprint: Blueprint, access: Access) -> None:
    """Put ``blueprint``'s routes under ``access``: no key, no page and no API; a viewer only reads.

    The role is left in the request's environ under :data:`ROLE_KEY`.
    """

    def check() -> Any:
        if request.endpoint in OPEN_ENDPOINTS:
            return None
        role = access.role_for(presented_key(request))
        if role is None:
            if request.endpoint == PAGE_ENDPOINT:
                return render_template("key.html", wrong=bool(request.args.get("key"))), 401
            return jsonify(error="unauthorized: send the key as ?key=, a cookie or Authorization: Bearer"), 401
        if role == "viewer" and request.method not in READ_METHODS:
            return jsonify(error="read-only: the viewer key cannot change values"), 403
        request.environ[ROLE_KEY] = role
        if request.endpoint == PAGE_ENDPOINT and request.args.get("key"):
            # Keep the key out of the address bar and bookmarks: it lives in the cookie now.
            rest = urlencode([(k, v) for k, v in request.args.items(multi=True) if k != "key"])
            response = redirect(f"{request.path}?{rest}" if rest else request.path, code=303)
            set_cookie(response, request.args["key"])
            return response
        return None

    blueprint.before_request(check)


def set_cookie(response: BaseResponse, key: str) -> None:
    # Secure under HTTPS: the browser then never sends the key over plain HTTP.
    response.set_cookie(
        COOKIE, key, max_age=30 * 24 * 3600, httponly=True, samesite="Lax", path="/", secure=request.is_secure
    )


def request_role() -> Role | None:
    """The role :func:`guard` found for the Flask request being served."""
    role: Role | None = request.environ.get(ROLE_KEY)
    return role
