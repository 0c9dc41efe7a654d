"""Typed access to parsed TOML tables that fails with one clear :class:`ConfigError`."""

from __future__ import annotations

import ipaddress
import re
from typing import Any, NoReturn

from bridge.errors import ConfigError

#: A control id, a view name: goes into element ids and URLs.
ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
#: OSC 1.0: printable ASCII, no space, none of the pattern characters.
OSC_ADDRESS_RE = re.compile(r"^(/[^ #*,?\[\]{}/\x00-\x1f\x7f]+)+$")
NUMBER = (int, float)
_DOTTED = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


class Reader:
    """Reads one config file's tables; every misfit raises a ConfigError naming the file and the key."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, key: str, expected: str) -> NoReturn:
        raise ConfigError(self.name, key, expected)

    def keys(self, table: dict[str, Any], prefix: str, allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                where = f"{prefix}.{key}" if prefix else key
                self.fail(where, f"unknown key; expected one of {', '.join(sorted(allowed))}")

    def table(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.fail(key, "must be a table")
        return value

    def get(self, table: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...], default: Any) -> Any:
        if key not in table:
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # TOML booleans are Python ints; never accept one as a number.
        if isinstance(value, bool) and bool not in kinds:
            self.fail(where, f"expected {kind_name(kinds)}, got {value!r}")
        if not isinstance(value, kinds):
            self.fail(where, f"expected {kind_name(kinds)}, got {value!r}")
        return value

    def host_port(self, text: object, where: str, lowest: int = 0) -> tuple[str, int]:
        """``"host:port"`` split and checked; ``lowest`` 1 where port 0 (any free one) makes no sense."""
        if not isinstance(text, str) or ":" not in text:
            self.fail(where, f'expected "host:port", got {text!r}')
        host, _, port_text = text.rpartition(":")
        host = host.strip("[]")
        if not host or not port_text.isdigit() or not lowest <= int(port_text) <= 65535:
            self.fail(where, f'expected "host:port" with a port {lowest}-65535, got {text!r}')
        return self.host(host, where), int(port_text)

    def host(self, host: str, where: str) -> str:
        """A host name or address; four numbers with dots must be an IPv4 address (256.1.1.1 is none)."""
        if _DOTTED.match(host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                self.fail(where, f"{host!r} is no IPv4 address (each of its four numbers is 0-255)")
        return host

    def port(self, value: int, where: str, lowest: int = 0) -> int:
        if not lowest <= value <= 65535:
            self.fail(where, f"expected a port {lowest}-65535, got {value}")
        return value


def kind_name(kinds: tuple[type, ...]) -> str:
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def number_text(x: float) -> str:
    """A number as a person writes it: 10, not 10.0."""
    return str(int(x)) if float(x).is_integer() else str(x)
