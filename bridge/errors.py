"""The errors the bridge raises on purpose, each with the bad value in its message.

Third-party errors are turned into these once, where they enter: python-osc's
parse errors in :mod:`bridge.osc.codec`, rtmidi's and mido's in
:mod:`bridge.midi.ports`, Redis's in :mod:`bridge.cluster.store`.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error raised on purpose by the bridge."""


#: A bad value is shown in a message up to this many characters: a 15 KB id makes no log line.
SHOWN = 80


def shown(value: object) -> str:
    """``repr(value)``, cut to :data:`SHOWN` characters (a huge number is named by its size)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"<a number of {value.bit_length()} bits>"  # (its repr alone can take long, or fail)
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


class ConfigError(BridgeError):
    """The config file is unreadable or breaks a rule.

    ``str(err)`` is one line naming the file, the key and what is expected.
    """

    def __init__(self, path: str, key: str, expected: str, line: int | None = None) -> None:
        self.path = path
        self.key = key
        self.expected = expected
        self.line = line
        where = f"{path}:{line}" if line else path
        where = f"{where}: {key}" if key else where
        super().__init__(f"{where}: {expected}")

    def at_line(self, line: int | None) -> ConfigError:
        """The same error, naming the line of the file it is on."""
        return ConfigError(self.path, self.key, self.expected, line)


class UnknownControl(BridgeError):
    """A change named a control id that the config does not define."""

    def __init__(self, control_id: object) -> None:
        self.control_id = control_id
        super().__init__(f"unknown control {shown(control_id)}")


class InvalidValue(BridgeError):
    """A value does not fit its control (wrong type, not finite, ...)."""

    def __init__(self, control_id: str, value: object, reason: str) -> None:
        self.control_id = control_id
        self.value = value
        self.reason = reason
        super().__init__(f"{control_id}: {reason} (got {shown(value)})")


class MalformedPacket(BridgeError):
    """Bytes that are not a whole, well-formed OSC packet (or an unreadable address pattern)."""


class MidiPortError(BridgeError):
    """The MIDI system cannot do what was asked: no such system, no such port, a port gone."""


class AmbiguousPort(BridgeError):
    """A configured port name matches more than one port."""

    def __init__(self, wanted: str, candidates: list[str]) -> None:
        self.wanted = wanted
        self.candidates = candidates
        super().__init__(f"{wanted!r} matches {len(candidates)} ports: {', '.join(candidates)}")


class LearnRefused(BridgeError):
    """A MIDI learn or unbind that cannot be done; the message says why, for the page."""


class SceneError(BridgeError):
    """A scene request that cannot be served; ``status`` is its HTTP status."""

    status = 400


class UnknownScene(SceneError):
    status = 404

    def __init__(self, name: object) -> None:
        self.name = name
        super().__init__(f"unknown scene {name!r}")


class StateInUse(BridgeError):
    """Another bridge runs with this state file: two shows writing one file lose each other's values."""


class ClusterRefused(BridgeError):
    """Redis holds another set of controls, and processes with them are running."""
