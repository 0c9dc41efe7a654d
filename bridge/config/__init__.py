"""The TOML config, read with :mod:`tomllib` into frozen, checked objects.

Every rule broken raises :class:`ConfigError` naming the file, the key and
what is expected, so that ``python -m bridge`` can print one line and exit 2.
The tables are read by :mod:`bridge.config.sections` and the controls by
:mod:`bridge.config.controls`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.config import sections
from bridge.config.controls import controls as read_controls
from bridge.config.controls import parse_midi_binding
from bridge.config.lines import line_of
from bridge.config.reader import Reader
from bridge.config.sections import (
    ClusterConfig,
    DiscoveryConfig,
    MidiConfig,
    OscConfig,
    OscQueryConfig,
    OscTarget,
    ServerConfig,
    TlsConfig,
)
from bridge.config.text import headers
from bridge.errors import ConfigError
from bridge.model import Control
from bridge.views import View, parse_views

__all__ = [
    "DEFAULT_CONFIG",
    "ClusterConfig",
    "Config",
    "DiscoveryConfig",
    "MidiConfig",
    "OscConfig",
    "OscQueryConfig",
    "OscTarget",
    "ServerConfig",
    "TlsConfig",
    "load_config",
    "parse_config",
    "parse_midi_binding",
]

_CHECKOUT = Path(__file__).resolve().parent.parent.parent
#: The embedded default: config/default.toml in a checkout, its copy inside an installed package.
DEFAULT_CONFIG = (
    _CHECKOUT / "config" / "default.toml"
    if (_CHECKOUT / "pyproject.toml").is_file()
    else Path(__file__).resolve().parent.parent / "shipped" / "default.toml"
)


@dataclass(frozen=True)
class Config:
    """Everything the bridge needs, checked."""

    path: Path
    server: ServerConfig
    controls: tuple[Control, ...]
    osc: OscConfig | None = None
    midi: MidiConfig | None = None
    cluster: ClusterConfig | None = None
    oscquery: OscQueryConfig | None = None
    discovery: DiscoveryConfig = DiscoveryConfig()
    views: tuple[View, ...] = ()

    def control(self, control_id: str) -> Control:
        for control in self.controls:
            if control.id == control_id:
                return control
        raise KeyError(control_id)


def load_config(path: str | Path) -> Config:
    """Read and check the config at ``path``."""
    path = Path(path)
    name = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(name, "", "file not found") from None
    except OSError as err:
        raise ConfigError(name, "", f"cannot be read ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise ConfigError(name, "", f"is not valid TOML: not UTF-8 text ({err.reason} at byte {err.start})") from err
    return parse_text(text, path)


def parse_text(text: str, path: Path) -> Config:
    """Check a config given as its TOML text; ``path`` names it in errors and anchors relative paths.

    A byte order mark in front (Notepad writes one with UTF-8) is no part of the TOML: it is passed over.
    """
    text = text.removeprefix("\ufeff")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # "Illegal character '\n' (at line 6, column 11)": the line goes up front, as with every error.
        message = str(err)
        at = re.search(r"\(at line (\d+), column \d+\)", message)
        raise ConfigError(str(path), "", f"is not valid TOML: {message}", int(at.group(1)) if at else None) from err
    try:
        return parse_config(data, path, table_order(text))
    except ConfigError as err:
        if err.line is None and err.key:
            raise err.at_line(line_of(text, err.key)) from err
        raise


def table_order(text: str) -> list[str]:
    """ "controls" and "repeat" in the order their [[...]] tables follow each other in a config's text
    (as TOML reads it: a header inside a multi-line string is no header)."""
    return [h.names[0] for h in headers(text) if h.array and h.names in (("controls",), ("repeat",))]


def parse_config(data: dict[str, Any], path: Path, order: list[str] | None = None) -> Config:
    """Check an already parsed TOML document; ``path`` anchors relative paths; ``order`` see :func:`table_order`."""
    reader = Reader(str(path))
    reader.keys(data, "", {"server", "osc", "midi", "oscquery", "discovery", "cluster", "controls", "repeat", "views"})
    server = sections.server(reader, reader.table(data, "server"), path)
    osc = sections.osc(reader, data["osc"]) if "osc" in data else None
    midi = sections.midi(reader, reader.table(data, "midi")) if "midi" in data else None
    cluster = sections.cluster(reader, reader.table(data, "cluster")) if "cluster" in data else None
    controls = read_controls(reader, data.get("controls"), data.get("repeat"), order)
    oscquery = sections.oscquery(reader, reader.table(data, "oscquery"), server, osc) if "oscquery" in data else None
    discovery = sections.discovery(reader, reader.table(data, "discovery"))
    views = parse_views(data["views"], controls, reader.fail) if "views" in data else ()
    return Config(
        path=path,
        server=server,
        controls=controls,
        osc=osc,
        midi=midi,
        oscquery=oscquery,
        discovery=discovery,
        views=views,
        cluster=cluster,
    )
