"""The page's editor over HTTP: the config file read, and changed one control at a time (control role only).

``GET /api/config`` gives the file's text, its version, its ``[[controls]]``
tables and the fields the form shows. Every change names the version it
was made on (``If-Match``): a file changed on disk since (a hand edit) is
409 and stays as it is. A change is made to the text
(:mod:`bridge.config.edit`), checked whole by the config loader (400 with
its message, file untouched), written atomically with the previous file
kept as ``FILE.bak``, and applied through the live-config path, so every
page follows at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, jsonify, request

from bridge.auth import Access, guard, request_role
from bridge.concurrency import run_blocking
from bridge.config import edit as editing
from bridge.config import parse_text
from bridge.config.controls import COMMON_KEYS, FIELDS, TYPE_KEYS
from bridge.errors import ConfigError, UnknownControl
from bridge.model import CONTROL_TYPES
from bridge.state import write_atomic
from bridge.web.body import json_body

if TYPE_CHECKING:
    from bridge.app import Bridge

#: A key of an added table's body: the places a removal took it from in [[views]] lists, to put it back.
VIEWS = "$views"
#: The id a new control of each type gets, numbered: fader1, fader2...
ID_BASES = {
    "range": "fader",
    "knob": "knob",
    "toggle": "toggle",
    "button": "button",
    "select": "select",
    "text": "text",
    "label": "label",
    "meter": "meter",
    "led": "led",
}


def register(app: Flask, access: Access, bridge: Bridge) -> None:
    bp = Blueprint("editor_api", __name__)
    guard(bp, access)
    lock = threading.Lock()  # one change of the file at a time

    @bp.before_request
    def control_only() -> Any:
        # The file holds the keys: a viewer may not even read it.
        if request_role() == "viewer":
            return jsonify(error="the editor needs the control key; this browser joined with the viewer key"), 403
        return None

    def path() -> Path:
        return bridge.config.path

    @bp.errorhandler(OSError)
    def unreadable(err: OSError) -> Any:
        # The file moved, deleted or made a folder under the running show: say so, not an HTML 500.
        return jsonify(error=f"config file {path()}: {err.strerror or err}; nothing changed"), 503

    def read() -> tuple[bytes, str]:
        data = path().read_bytes()
        return data, editing.version(data)

    def describe(text: str) -> dict[str, Any]:
        made = [c.id for c in bridge.config.controls if c.where.startswith("repeat[")]
        return {
            "controls": [
                {"table": table, "toml": {k: editing.inline(v) for k, v in table.items()}}
                for table in editing.tables(text)
            ],
            "repeated": made,
            "fields": {key: {"kind": kind, "choices": list(choices)} for key, (kind, choices) in FIELDS.items()},
            "keys": {t: sorted(COMMON_KEYS | TYPE_KEYS[t]) for t in CONTROL_TYPES},
            "types": list(CONTROL_TYPES),
        }

    @bp.get("/api/config")
    def get_config() -> Any:
        data, version = read()
        text = data.decode("utf-8", errors="replace")
        response = jsonify(version=version, toml=text, **describe(text))
        response.headers["ETag"] = f'"{version}"'
        return response

    def change(
        make: Callable[[str], str],
        then: Callable[[], None] | None = None,
        extra: dict[str, Any] | None = None,
        about: str | None = None,
        keys: Iterable[str] = (),
        carried: dict[str, str] | None = None,
    ) -> Any:
        """Make one change to the file, if it is still the version the editor read; ``then`` runs
        once it is in force; ``extra`` (filled in by ``make``, perhaps) goes into the answer;
        ``carried``: a control renamed, new id -> old (its value goes with it)."""
        wanted = (request.headers.get("If-Match") or "").strip().strip('"')
        if not wanted:
            return jsonify(error="send If-Match: the version of the file this change was made on"), 428
        with lock:
            data, version = read()
            if wanted != version:
                return jsonify(
                    error="the file changed on disk since the editor read it: reload it to see the change",
                    version=version,
                ), 409
            text = data.decode("utf-8")
            crlf = text.count("\r\n") * 2 > text.count("\n")  # saved on Windows: its line ends are kept

            def made() -> str:
                fresh = make(text.replace("\r\n", "\n") if crlf else text)
                parse_text(fresh, path())  # the loader's own check, before anything is written
                return fresh

            try:
                # Off the event loop: for a show of a hundred controls the edit and its check take tens
                # of milliseconds, which a fade under way would show as a jump.
                fresh = run_blocking(made)
            except ConfigError as err:
                return jsonify(error=str(err), field=field_of(err.key, about, keys)), 400
            except editing.NoSuchControl as err:
                return jsonify(error=str(err)), 404
            except editing.EditError as err:
                return jsonify(error=str(err), field=err.field), 400
            payload = (fresh.replace("\n", "\r\n") if crlf else fresh).encode("utf-8")
            if path().read_bytes() != data:
                # Saved by hand while this change was checked: that save is not overwritten.
                return jsonify(
                    error="the file changed on disk since the editor read it: reload it to see the change",
                    version=editing.version(path().read_bytes()),
                ), 409
            try:
                write_atomic(path().with_name(path().name + ".bak"), data, like=path())  # readable as the show's
                write_atomic(path(), payload)
            except OSError as err:
                # A full disk, a read-only folder: the file stays as it was (the write is atomic).
                return jsonify(error=f"cannot write {path()}: {err.strerror or err}; nothing changed"), 500
            outcome = bridge.reloader.reload("edited on the page", carried)
            if then is not None and outcome.reshaped is not None:
                then()
        return jsonify(
            version=editing.version(payload), generation=outcome.generation, error=outcome.error, **(extra or {})
        )

    def body() -> dict[str, Any]:
        found = json_body(request)
        if not isinstance(found, dict):
            raise editing.EditError("expected a JSON object")
        return found

    def guarded(act: Callable[[], Any]) -> Any:
        try:
            return act()
        except editing.EditError as err:
            return jsonify(error=str(err)), 400

    @bp.patch("/api/config/controls/<cid>")
    def patch_control(cid: str) -> Any:
        def act() -> Any:
            props = body()
            renamed = props.get("id")
            if not isinstance(renamed, str) or renamed == cid or cid not in bridge.hub.controls:
                return change(lambda text: editing.set_properties(text, cid, props), about=cid, keys=props)

            def carry() -> None:
                # A rename is the same control under a new name: the reload gave it its value (the
                # pages never see it at its default, the desk is told at the new address); what was
                # learned for it and the scenes that hold it go with it too.
                if renamed not in bridge.hub.controls:
                    return
                if bridge.midi is not None:
                    bridge.midi.bindings.rename(cid, renamed)
                bridge.scenes.store.rename_control(cid, renamed)

            return change(
                lambda text: editing.set_properties(text, cid, props),
                then=carry,
                about=renamed,
                keys=props,
                carried={renamed: cid},
            )

        return guarded(lambda: _refuse_repeated(cid) or act())

    @bp.post("/api/config/controls")
    def add_control() -> Any:
        def act() -> Any:
            props = body()
            views = props.pop(VIEWS, None)  # (the undo of a removal: its places in [[views]] lists, back)
            if views is not None and not (
                isinstance(views, dict) and all(isinstance(place, int) for place in views.values())
            ):
                raise editing.EditError(f"{VIEWS}: expected {{view number: place}}, as a removal answered")
            cid = editing.block_id(props)  # a table given whole (the undo of a removal)
            if cid is None:
                if "id" not in props:
                    props = {"id": next_id(props.get("type")), **props}
                cid = props["id"]
            after = request.args.get("after")
            return change(lambda text: editing.add(text, props, after, views), extra={"id": cid})

        return guarded(act)

    @bp.delete("/api/config/controls/<cid>")
    def delete_control(cid: str) -> Any:
        taken: dict[str, Any] = {}

        def remove(text: str) -> str:
            taken["removed"] = editing.removed(text, cid)  # its text, comments and all: what an undo puts back
            taken["views"] = editing.view_places(text, cid)  # and where [[views]] listed it
            return editing.remove(text, cid)

        return guarded(lambda: _refuse_repeated(cid) or change(remove, extra=taken))

    @bp.post("/api/config/order")
    def order() -> Any:
        def act() -> Any:
            ids = body().get("ids")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise editing.EditError('expected {"ids": ["id", ...]}')
            return change(lambda text: editing.reorder(text, ids))

        return guarded(act)

    @bp.post("/api/config/controls/<cid>/test")
    def send_test(cid: str) -> Any:
        outs = [a for a in (bridge.ported.get("osc"), bridge.ported.get("midi")) if a is not None]
        control = bridge.hub.controls.get(cid)
        if control is not None and control.trigger:
            # It stores nothing to send again, and what it sends is a cue fired: not a test.
            return jsonify(error=f"{cid} is a trigger: a test would fire it; press it on the page to fire it"), 400
        try:
            value = bridge.hub.send_test(cid, outs)
        except UnknownControl:
            return jsonify(error=f"no control {cid!r}"), 404
        return jsonify(sent=value, to=[a.name for a in outs])

    def _refuse_repeated(cid: str) -> Response | None:
        control = next((c for c in bridge.config.controls if c.id == cid), None)
        if control is not None and control.where.startswith("repeat["):
            block = control.where.split(" ")[0]
            response = jsonify(error=f"{cid} is made by {block} ([[repeat]]): edit that block in the file")
            response.status_code = 400
            return response
        return None

    def next_id(kind: object) -> str:
        base = ID_BASES.get(kind, "control") if isinstance(kind, str) else "control"
        # Nor the id of a control deleted earlier: its value is kept for it (Hub.parked), and a
        # new control there would start from it, shown on the pages but never sent to the desk.
        taken = {c.id for c in bridge.config.controls} | bridge.hub.parked().keys()
        n = 1
        while f"{base}{n}" in taken:
            n += 1
        return f"{base}{n}"

    app.register_blueprint(bp)


def field_of(key: str, cid: str | None = None, changed: Iterable[str] = ()) -> str | None:
    """The control's key a loader error names: ``controls[3] (x).osc.address`` -> ``osc``.

    With ``cid`` (the control being edited): None when the error is about
    another control, unless it names a key this change set (vocal's osc
    set to drums' address: the error names drums). An error from a hand
    edit elsewhere is then no field's of this one.
    """
    if not key.startswith("controls["):
        return None
    rest = key.split(")", 1)[1] if ")" in key else key.split("]", 1)[1]
    parts = rest.lstrip(".").split(".")
    field = parts[0].split("[")[0] or None
    if cid is not None and f"({cid})" not in key.split(".", 1)[0] and field not in set(changed):
        return None
    return field
