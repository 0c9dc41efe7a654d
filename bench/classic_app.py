"""The classic Flask-SocketIO slider recipe, kept as the reference the bench compares against.

Store the value, ``emit(..., broadcast=True)`` for every message, nothing else.
``python -m bench.classic_app PORT [ASYNC_MODE]``.
"""

from __future__ import annotations

import sys

from flask import Flask
from flask_socketio import SocketIO, emit

app = Flask(__name__)
mode = sys.argv[2] if len(sys.argv) > 2 else "threading"
socketio = SocketIO(app, async_mode=mode)
values: dict[str, object] = {"fader": 0, "cc": 0}


@app.get("/healthz")
def healthz() -> str:
    return "ok"


@socketio.on("value changed")
def value_changed(message: dict[str, object]) -> None:
    values[str(message["who"])] = message["data"]
    emit("update value", message, broadcast=True, include_self=False)


if __name__ == "__main__":
    socketio.run(app, host="127.0.0.1", port=int(sys.argv[1]), allow_unsafe_werkzeug=True, log_output=False)
