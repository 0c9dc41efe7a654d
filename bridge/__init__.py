"""Stage Bridge: browser controls kept in sync and bridged to OSC and MIDI."""

from bridge.app import create_app

__all__ = ["create_app"]
__version__ = "0.1.0"
