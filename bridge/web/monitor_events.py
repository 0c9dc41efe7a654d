"""The monitor drawer over Socket.IO: ``monitor open``, ``monitor close`` and ``monitor lights``.

``monitor open`` (control role) puts the page in the monitor's room and is
answered with the last messages and the targets' states; from then on the
page gets ``monitor`` ``{entries, skipped}`` and ``monitor status``
``{targets}`` until it says ``monitor close`` or leaves. ``monitor lights``
(control role) puts it in the room of the activity lights, answered with
the lights as they are; ``activity`` ``{osc_in, osc_out, midi_in,
midi_out}`` follows whenever one goes on or off.
"""

from __future__ import annotations

from typing import Any

from bridge.monitor import CONTROL_ROOM, ROOM, Monitor
from bridge.web.adapter import WebAdapter

NOT_CONTROL = "the monitor is for the control role: this browser joined with the viewer key"


def register(web: WebAdapter, monitor: Monitor) -> None:
    """Attach the monitor's Socket.IO events to ``web``'s server."""
    server = web.server

    def on_open(sid: str, message: object = None) -> dict[str, Any]:
        if web.role(sid) != "control":
            return {"ok": False, "error": NOT_CONTROL}
        answer = monitor.open(sid)
        if answer["ok"]:
            server.enter_room(sid, ROOM)
        return answer

    def on_close(sid: str, message: object = None) -> dict[str, Any]:
        server.leave_room(sid, ROOM)
        monitor.close(sid)
        return {"ok": True}

    def on_lights(sid: str, message: object = None) -> dict[str, Any]:
        if web.role(sid) != "control":
            return {"ok": False, "error": NOT_CONTROL}
        server.enter_room(sid, CONTROL_ROOM)
        return {"ok": True, "lights": monitor.lights}

    web.on("monitor open", on_open)
    web.on("monitor close", on_close)
    web.on("monitor lights", on_lights)
