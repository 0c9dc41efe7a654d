"""Stage Bridge: browser controls kept in sync and bridged to OSC and MIDI."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Imported lazily: ``python -m bridge`` must monkey-patch the standard
    # library before Flask, sockets or threads are imported.
    if name == "create_app":
        from bridge.app import create_app

        return create_app
    raise AttributeError(name)
