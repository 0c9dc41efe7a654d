"""MIDI learn from the page and the HTTP API.

Socket.IO events from a browser with the control role, each answered through
the event's acknowledgement (``{"ok": true, ...}`` or ``{"ok": false,
"error": "..."}``):

* ``midi learn`` ``{"who": id}``: the next knob, fader or pad moved on the
  hardware is bound to that control;
* ``midi learn cancel``: stop waiting;
* ``midi unlearn`` ``{"who": id}``: remove the control's binding.

What follows is pushed by the bindings to every page: ``midi learning``
(which control waits), ``midi bindings`` (every binding) and ``midi learned``
(what was bound or removed, and what it was moved from).

HTTP: ``GET /api/midi/bindings`` and ``DELETE /api/midi/bindings/<id>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, jsonify

from bridge.auth import Access, guard
from bridge.errors import LearnRefused, UnknownControl
from bridge.midi.adapter import MidiAdapter
from bridge.web.adapter import READ_ONLY, WebAdapter

#: What learning says when the config switches MIDI off.
MIDI_OFF = "MIDI is off: the config has no [midi] table"

Answer = dict[str, Any]


def register(app: Flask, web: WebAdapter, access: Access, adapter: Callable[[], MidiAdapter | None]) -> None:
    """Attach the learn events and routes; ``adapter()`` is the MIDI adapter of now (None without [midi])."""

    def refused(sid: str) -> Answer | None:
        midi = adapter()
        if web.role(sid) != "control":
            return {"ok": False, "error": READ_ONLY}
        if midi is None:
            return {"ok": False, "error": MIDI_OFF}
        return None

    def who(message: object) -> object:
        return message.get("who") if isinstance(message, dict) else None

    def on_learn(sid: str, message: object = None) -> Answer:
        midi = adapter()
        no = refused(sid)
        if no is not None or midi is None:
            return no or {"ok": False, "error": MIDI_OFF}
        try:
            control = midi.bindings.learn(who(message), midi.on)
        except (UnknownControl, LearnRefused) as err:
            return {"ok": False, "error": str(err)}
        return {"ok": True, "who": control.id}

    def on_cancel(sid: str, message: object = None) -> Answer:
        midi = adapter()
        no = refused(sid)
        if no is not None or midi is None:
            return no or {"ok": False, "error": MIDI_OFF}
        return {"ok": True, "who": midi.bindings.cancel_learn()}

    def on_unlearn(sid: str, message: object = None) -> Answer:
        midi = adapter()
        no = refused(sid)
        if no is not None or midi is None:
            return no or {"ok": False, "error": MIDI_OFF}
        try:
            removed = midi.bindings.unbind(who(message))
        except UnknownControl as err:
            return {"ok": False, "error": str(err)}
        return {"ok": True, "who": who(message), "removed": removed}

    web.on("midi learn", on_learn)
    web.on("midi learn cancel", on_cancel)
    web.on("midi unlearn", on_unlearn)

    bp = Blueprint("midi_learn", __name__)
    guard(bp, access)

    @bp.get("/api/midi/bindings")
    def get_bindings() -> Any:
        midi = adapter()
        if midi is None:
            return jsonify(error=MIDI_OFF), 404
        bindings = midi.bindings
        return jsonify(
            bindings=bindings.described(), takeover=bindings.takeover_modes(), learning=bindings.learner.target
        )

    @bp.delete("/api/midi/bindings/<control_id>")
    def delete_binding(control_id: str) -> Any:
        midi = adapter()
        if midi is None:
            return jsonify(error=MIDI_OFF), 404
        try:
            removed = midi.bindings.unbind(control_id)
        except UnknownControl as err:
            return jsonify(error=str(err)), 404
        return jsonify(id=control_id, binding=None, removed=removed)

    app.register_blueprint(bp)
