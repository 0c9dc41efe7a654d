"""The few errors the bridge raises, each with the bad value in its message."""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error raised on purpose by the bridge."""


class ConfigError(BridgeError):
    """The config file is unreadable or breaks a rule.

    ``str(err)`` is one line naming the file, the key and what is expected.
    """

    def __init__(self, path: str, key: str, expected: str) -> None:
        self.path = path
        self.key = key
        self.expected = expected
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {expected}")


class UnknownControl(BridgeError):
    """A change named a control id that the config does not define."""

    def __init__(self, control_id: object) -> None:
        self.control_id = control_id
        super().__init__(f"unknown control {control_id!r}")


class InvalidValue(BridgeError):
    """A value does not fit its control (wrong type, not finite, ...)."""

    def __init__(self, control_id: str, value: object, reason: str) -> None:
        self.control_id = control_id
        self.value = value
        self.reason = reason
        super().__init__(f"{control_id}: {reason} (got {value!r})")
