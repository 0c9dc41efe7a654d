"""Scenes over HTTP and Socket.IO: save, list, recall and delete.

HTTP: ``GET /api/scenes``, ``GET/PUT/DELETE /api/scenes/<name>`` and
``POST /api/scenes/<name>/recall`` with an optional ``{"fade": seconds}``;
``GET /api/scenes/export`` (every scene as one file to download) and
``POST /api/scenes/import`` (such a file back, checked whole).
Socket.IO: ``scene save`` ``{"name"}`` and ``scene recall`` ``{"name", "fade"}``,
each answered through its acknowledgement; every page gets ``scenes``
``{"names", "recalled"}`` whenever the list changes or a scene is recalled.
The same keys guard them as the values: a viewer reads and never writes.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Flask, jsonify, request

from bridge.auth import Access, guard
from bridge.errors import SceneError
from bridge.scenes.engine import Scenes
from bridge.web.adapter import READ_ONLY, WebAdapter
from bridge.web.body import json_body

log = logging.getLogger(__name__)

#: The largest scenes file an import takes (bytes).
MAX_IMPORT = 16 * 1024 * 1024


def register(app: Flask, web: WebAdapter, access: Access, scenes: Scenes) -> None:
    """Attach the scene routes, Socket.IO events and the page's scene names."""
    app.register_blueprint(_blueprint(access, scenes))

    def on_save(sid: str, message: object = None) -> dict[str, Any]:
        if web.role(sid) != "control":
            return {"ok": False, "error": READ_ONLY}
        name = message.get("name") if isinstance(message, dict) else None
        try:
            scene = scenes.save(name)
        except SceneError as err:
            return {"ok": False, "error": str(err)}
        return {"ok": True, "scene": scene.name, "count": len(scene.values)}

    def on_recall(sid: str, message: object = None) -> dict[str, Any]:
        if web.role(sid) != "control":
            return {"ok": False, "error": READ_ONLY}
        if not isinstance(message, dict) or not isinstance(message.get("name"), str):
            return {"ok": False, "error": 'expected {"name": scene, "fade": seconds}'}
        try:
            done = scenes.recall(message["name"], message.get("fade", 0))
        except SceneError as err:
            return {"ok": False, "error": str(err)}
        return {"ok": True, **done.as_dict()}

    web.on("scene save", on_save, limited=True)
    web.on("scene recall", on_recall, limited=True)


def _blueprint(access: Access, scenes: Scenes) -> Blueprint:
    bp = Blueprint("scenes", __name__)
    guard(bp, access)

    @bp.app_context_processor
    def scene_names() -> dict[str, Any]:
        # The page lists the scenes at first paint, before its socket connects.
        return {"scene_names": scenes.names()}

    @bp.errorhandler(SceneError)
    def refused(err: SceneError) -> Any:
        return jsonify(error=str(err)), err.status

    @bp.get("/api/scenes")
    def list_scenes() -> Any:
        return jsonify(scenes={s.name: {"saved_at": s.saved_at, "values": s.values} for s in scenes.all()})

    @bp.get("/api/scenes/export")
    def export_scenes() -> Any:
        # A fixed path wins over /api/scenes/<name>: a scene called "export" is still reached by recall and PUT.
        stamp = time.strftime("%Y%m%d-%H%M%S")
        response = jsonify(scenes.export())
        response.headers["Content-Disposition"] = f'attachment; filename="stage-bridge-scenes-{stamp}.json"'
        return response

    @bp.post("/api/scenes/import")
    def import_scenes() -> Any:
        request.max_content_length = MAX_IMPORT  # a show's scenes are larger than one message
        body = json_body(request, force=True)
        if body is None:
            return jsonify(error="the body is not JSON: send the file GET /api/scenes/export gave"), 400
        return jsonify(scenes.import_scenes(body))

    @bp.get("/api/scenes/<name>")
    def get_scene(name: str) -> Any:
        return jsonify(scenes.get(name).as_dict())

    @bp.put("/api/scenes/<name>")
    def save_scene(name: str) -> Any:
        return jsonify(scenes.save(name).as_dict())

    @bp.delete("/api/scenes/<name>")
    def delete_scene(name: str) -> Any:
        scenes.delete(name)
        return jsonify(deleted=name)

    @bp.post("/api/scenes/<name>/recall")
    def recall_scene(name: str) -> Any:
        fade: object = 0.0
        if request.get_data(cache=True):
            body = json_body(request, force=True)  # curl -d without a Content-Type too
            if not isinstance(body, dict) or set(body) - {"fade"}:
                return jsonify(error='body must be empty or JSON {"fade": seconds}'), 400
            fade = body.get("fade", 0.0)
        return jsonify(scenes.recall(name, fade).as_dict())

    return bp
