"""The config over HTTP: ``POST /api/config/reload`` (control role), the same as saving the file or SIGHUP."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, jsonify

from bridge.auth import Access, guard
from bridge.reload import Reloader


def register(app: Flask, access: Access, reloader: Reloader) -> None:
    bp = Blueprint("config_api", __name__)
    guard(bp, access)

    @bp.post("/api/config/reload")
    def reload_config() -> Any:
        outcome = reloader.reload("asked over HTTP")
        reshaped = outcome.reshaped
        if reshaped is None:  # not taken: the running config stays
            return jsonify(generation=outcome.generation, error=outcome.error), 400
        return jsonify(
            generation=outcome.generation,
            error=outcome.error,  # a table not taken (its port is in use), or null
            added=list(reshaped.added),
            removed=list(reshaped.removed),
            changed=list(reshaped.redefined),
            adjusted={cid: now for cid, (_before, now) in reshaped.adjusted.items()},
        )

    app.register_blueprint(bp)
