"""The TOML config, read with :mod:`tomllib` into frozen, checked objects.

Every rule broken raises :class:`ConfigError` naming the file, the key and
what is expected, so that ``python -m bridge`` can print one line and exit 2.
"""

from __future__ import annotations

import importlib.util
import math
import re
import tomllib
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, NoReturn

from bridge.errors import ConfigError
from bridge.mapping import Slot, slots
from bridge.model import CONTROL_TYPES, MAX_TEXT_LENGTH, TAKEOVER_MODES, Control, MidiMapping, Value
from bridge.validation import snap
from bridge.views import View, parse_views

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "default.toml"

_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
# OSC 1.0: printable ASCII, no space, none of the pattern characters.
_OSC_ADDRESS_RE = re.compile(r"^(/[^ #*,?\[\]{}/\x00-\x1f\x7f]+)+$")
_RESERVED_OSC_PREFIX = "/bridge/"


@dataclass(frozen=True)
class ServerConfig:
    host: str = "0.0.0.0"  # noqa: S104 - phones on the LAN must reach the page
    port: int = 5000
    state_file: Path | None = None
    key: str | None = None  # full control; "auto" is replaced by a generated key at start
    viewer_key: str | None = None  # sees everything, changes nothing
    allowed_origins: tuple[str, ...] = ()  # beyond the page's own origin
    max_payload: int = 16_384  # bytes per Socket.IO message or HTTP body
    max_rate: int = 200  # changes per second per browser; beyond it the latest value wins
    max_clients: int = 250


@dataclass(frozen=True)
class OscTarget:
    host: str
    port: int
    arg_type: str = "auto"  # auto | float | int
    prefix: str = ""

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class OscConfig:
    listen_host: str = "0.0.0.0"  # noqa: S104
    listen_port: int = 9001
    targets: tuple[OscTarget, ...] = ()
    allow: tuple[IPv4Network | IPv6Network, ...] = ()  # empty: every source allowed


@dataclass(frozen=True)
class MidiConfig:
    backend: str = "mido.backends.rtmidi"
    input: str = "bridge"
    output: str = "bridge"
    virtual: bool = True
    budget: int = 1000  # messages per second on the output; 0: no limit


@dataclass(frozen=True)
class ClusterConfig:
    """Several bridge processes sharing their values through one Redis."""

    redis: str  # redis://host:port/db, rediss://... or unix:///path
    name: str = "stage-bridge"  # key prefix: several shows can share one Redis


@dataclass(frozen=True)
class OscQueryConfig:
    """The OSCQuery server: HTTP and WebSocket on one port of its own."""

    port: int = 5001
    host: str | None = None  # None: the same interface as [server] host


@dataclass(frozen=True)
class DiscoveryConfig:
    """Zero-config discovery over mDNS; off unless asked for, since it multicasts on every interface."""

    mdns: bool = False
    name: str = "Stage Bridge"


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
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(name, "", "file not found") from None
    except OSError as err:
        raise ConfigError(name, "", f"cannot be read ({err.strerror})") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(name, "", f"is not valid TOML: {err}") from err
    return parse_config(data, path)


def parse_config(data: dict[str, Any], path: Path) -> Config:
    """Check an already parsed TOML document; ``path`` anchors relative paths."""
    reader = _Reader(str(path))
    reader.keys(data, "", {"server", "osc", "midi", "oscquery", "discovery", "cluster", "controls", "views"})
    server = _server(reader, reader.table(data, "server"), path)
    osc = _osc(reader, data["osc"]) if "osc" in data else None
    midi = _midi(reader, reader.table(data, "midi")) if "midi" in data else None
    cluster = _cluster(reader, reader.table(data, "cluster")) if "cluster" in data else None
    raw_controls = data.get("controls")
    if not isinstance(raw_controls, list) or not raw_controls:
        reader.fail("controls", "at least one [[controls]] table")
    controls = tuple(_control(reader, raw, i) for i, raw in enumerate(raw_controls))
    _check_unique(reader, controls)
    oscquery = _oscquery(reader, reader.table(data, "oscquery"), server, osc) if "oscquery" in data else None
    discovery = _discovery(reader, reader.table(data, "discovery"))
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


class _Reader:
    """Typed access to TOML tables that fails with a ConfigError."""

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
            self.fail(where, f"expected {_kind_name(kinds)}, got {value!r}")
        if not isinstance(value, kinds):
            self.fail(where, f"expected {_kind_name(kinds)}, got {value!r}")
        return value


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _host_port(reader: _Reader, text: object, where: str) -> tuple[str, int]:
    if not isinstance(text, str) or ":" not in text:
        reader.fail(where, f'expected "host:port", got {text!r}')
    host, _, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        reader.fail(where, f'expected "host:port" with a port 0-65535, got {text!r}')
    return host, int(port_text)


def _port(reader: _Reader, value: int, where: str) -> int:
    if not 0 <= value <= 65535:
        reader.fail(where, f"expected a port 0-65535, got {value}")
    return value


_SERVER_KEYS = {
    "host",
    "port",
    "state_file",
    "key",
    "viewer_key",
    "allowed_origins",
    "max_payload",
    "max_rate",
    "max_clients",
}


def _server(reader: _Reader, table: dict[str, Any], path: Path) -> ServerConfig:
    reader.keys(table, "server", _SERVER_KEYS)
    host = reader.get(table, "host", "server.host", str, ServerConfig.host)
    port = _port(reader, reader.get(table, "port", "server.port", int, ServerConfig.port), "server.port")
    state = reader.get(table, "state_file", "server.state_file", str, "state.json")
    state_file = None if state == "" else (path.parent / state).resolve()
    keys: dict[str, str | None] = {}
    for name in ("key", "viewer_key"):
        key = reader.get(table, name, f"server.{name}", str, None)
        if key is not None and key != "auto" and (len(key) < 8 or not key.isprintable() or " " in key):
            reader.fail(f"server.{name}", 'expected "auto" or at least 8 printable characters without spaces')
        keys[name] = key or None
    if keys["viewer_key"] and not keys["key"]:
        reader.fail("server.viewer_key", "needs server.key too: without a key everyone already has full control")
    if keys["key"] and keys["key"] != "auto" and keys["key"] == keys["viewer_key"]:
        reader.fail("server.viewer_key", "must differ from server.key")
    origins = reader.get(table, "allowed_origins", "server.allowed_origins", list, [])
    for i, origin in enumerate(origins):
        if not isinstance(origin, str) or not re.match(r"^https?://[^/\s]+$", origin):
            reader.fail(
                f"server.allowed_origins[{i}]", f'expected an origin such as "http://192.168.1.20:8080", got {origin!r}'
            )
    limits = {}
    for name, low in (("max_payload", 1024), ("max_rate", 1), ("max_clients", 1)):
        value = reader.get(table, name, f"server.{name}", int, getattr(ServerConfig, name))
        if value < low:
            reader.fail(f"server.{name}", f"expected at least {low}, got {value}")
        limits[name] = value
    return ServerConfig(
        host=host,
        port=port,
        state_file=state_file,
        key=keys["key"],
        viewer_key=keys["viewer_key"],
        allowed_origins=tuple(origins),
        **limits,
    )


def _osc(reader: _Reader, table: dict[str, Any]) -> OscConfig:
    if not isinstance(table, dict):
        reader.fail("osc", "must be a table")
    reader.keys(table, "osc", {"listen", "targets", "allow"})
    allow = []
    for i, item in enumerate(reader.get(table, "allow", "osc.allow", list, [])):
        try:
            allow.append(ip_network(item, strict=False))
        except (TypeError, ValueError):
            reader.fail(f"osc.allow[{i}]", f'expected an address or network such as "192.168.1.0/24", got {item!r}')
    listen = reader.get(table, "listen", "osc.listen", str, "0.0.0.0:9001")
    host, port = _host_port(reader, listen, "osc.listen")
    targets = []
    for i, raw in enumerate(reader.get(table, "targets", "osc.targets", list, [])):
        where = f"osc.targets[{i}]"
        if isinstance(raw, str):
            t_host, t_port = _host_port(reader, raw, where)
            targets.append(OscTarget(t_host, t_port))
            continue
        if not isinstance(raw, dict):
            reader.fail(where, f'expected "host:port" or a table {{address = "host:port", type, prefix}}, got {raw!r}')
        reader.keys(raw, where, {"address", "type", "prefix"})
        t_host, t_port = _host_port(reader, raw.get("address"), f"{where}.address")
        arg_type = reader.get(raw, "type", f"{where}.type", str, "auto")
        if arg_type not in ("auto", "float", "int"):
            reader.fail(f"{where}.type", f'expected "auto", "float" or "int", got {arg_type!r}')
        prefix = reader.get(raw, "prefix", f"{where}.prefix", str, "").rstrip("/")
        if prefix and not _OSC_ADDRESS_RE.match(prefix):
            reader.fail(f"{where}.prefix", f'expected an OSC address such as "/stage", got {prefix!r}')
        targets.append(OscTarget(t_host, t_port, arg_type, prefix))
    return OscConfig(listen_host=host, listen_port=port, targets=tuple(targets), allow=tuple(allow))


def _midi(reader: _Reader, table: dict[str, Any]) -> MidiConfig:
    reader.keys(table, "midi", {"backend", "input", "output", "virtual", "budget"})
    budget = reader.get(table, "budget", "midi.budget", int, MidiConfig.budget)
    if budget < 0:
        reader.fail("midi.budget", f"expected 0 (no limit) or messages per second, got {budget}")
    return MidiConfig(
        budget=budget,
        backend=reader.get(table, "backend", "midi.backend", str, MidiConfig.backend),
        input=reader.get(table, "input", "midi.input", str, MidiConfig.input),
        output=reader.get(table, "output", "midi.output", str, MidiConfig.output),
        virtual=reader.get(table, "virtual", "midi.virtual", bool, MidiConfig.virtual),
    )


def _cluster(reader: _Reader, table: dict[str, Any]) -> ClusterConfig:
    reader.keys(table, "cluster", {"redis", "name"})
    url = reader.get(table, "redis", "cluster.redis", str, None)
    if url is None or not re.match(r"^(rediss?://[^\s]+|unix:///[^\s]+)$", url):
        reader.fail("cluster.redis", f'expected a Redis URL such as "redis://127.0.0.1:6379/0", got {url!r}')
    name = reader.get(table, "name", "cluster.name", str, ClusterConfig.name)
    if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", name):
        reader.fail("cluster.name", f"expected 1-64 letters, digits, _, . or -, got {name!r}")
    if importlib.util.find_spec("redis") is None:
        reader.fail("cluster", "needs the Python package redis: pip install 'stage-bridge[cluster]'")
    return ClusterConfig(redis=url, name=name)


def _oscquery(reader: _Reader, table: dict[str, Any], server: ServerConfig, osc: OscConfig | None) -> OscQueryConfig:
    reader.keys(table, "oscquery", {"port", "host"})
    if osc is None:
        reader.fail("oscquery", "needs an [osc] table too: OSCQuery clients send their values to its listen port")
    port = _port(reader, reader.get(table, "port", "oscquery.port", int, OscQueryConfig.port), "oscquery.port")
    host = reader.get(table, "host", "oscquery.host", str, None)
    if host == "":
        reader.fail("oscquery.host", 'expected an interface such as "0.0.0.0", or leave it out for [server] host')
    if port != 0 and port == server.port and (host is None or host == server.host):
        reader.fail("oscquery.port", f"must differ from server.port ({server.port}): OSCQuery has a port of its own")
    return OscQueryConfig(port=port, host=host)


def _discovery(reader: _Reader, table: dict[str, Any]) -> DiscoveryConfig:
    reader.keys(table, "discovery", {"mdns", "name"})
    name = reader.get(table, "name", "discovery.name", str, DiscoveryConfig.name)
    # An mDNS instance name is one DNS label: at most 63 bytes.
    if not name.strip() or not name.isprintable() or len(name.encode("utf-8")) > 63:
        reader.fail("discovery.name", f"expected 1-63 bytes of printable text, got {name!r}")
    return DiscoveryConfig(mdns=reader.get(table, "mdns", "discovery.mdns", bool, DiscoveryConfig.mdns), name=name)


_CONTROL_KEYS = {
    "id",
    "type",
    "label",
    "min",
    "max",
    "step",
    "value",
    "osc",
    "midi",
    "group",
    "unit",
    "decimals",
    "scene",
    "takeover",
}
_NUMBER = (int, float)


def _control(reader: _Reader, raw: object, index: int) -> Control:
    where = f"controls[{index}]"
    if not isinstance(raw, dict):
        reader.fail(where, "must be a table")
    cid = reader.get(raw, "id", f"{where}.id", str, None)
    if cid is None or not _ID_RE.match(cid):
        reader.fail(f"{where}.id", f"expected an id of letters, digits, _ or -, starting with a letter, got {cid!r}")
    where = f"controls[{index}] ({cid})"
    reader.keys(raw, where, _CONTROL_KEYS)
    ctype = reader.get(raw, "type", f"{where}.type", str, None)
    if ctype not in CONTROL_TYPES:
        reader.fail(f"{where}.type", f"expected one of {', '.join(CONTROL_TYPES)}, got {ctype!r}")
    label = reader.get(raw, "label", f"{where}.label", str, cid)
    osc = reader.get(raw, "osc", f"{where}.osc", str, f"/{cid}")
    if not _OSC_ADDRESS_RE.match(osc):
        reader.fail(f"{where}.osc", f'expected an OSC address such as "/{cid}" (no spaces or #*,?[]{{}}), got {osc!r}')
    if osc.startswith(_RESERVED_OSC_PREFIX) or osc == "/bridge":
        reader.fail(f"{where}.osc", f"addresses under /bridge are the bridge's own, got {osc!r}")
    group = reader.get(raw, "group", f"{where}.group", str, "")
    unit = reader.get(raw, "unit", f"{where}.unit", str, "")
    decimals = reader.get(raw, "decimals", f"{where}.decimals", int, None)
    if decimals is not None and not 0 <= decimals <= 6:
        reader.fail(f"{where}.decimals", f"expected 0-6, got {decimals}")
    scene = reader.get(raw, "scene", f"{where}.scene", bool, True)
    if ctype == "text" and "midi" in raw:
        reader.fail(f"{where}.midi", "a text control has no MIDI form; remove this key")
    midi = _midi_mapping(reader, raw["midi"], f"{where}.midi", ctype) if "midi" in raw else None
    takeover = reader.get(raw, "takeover", f"{where}.takeover", str, None)
    if takeover is not None and takeover not in TAKEOVER_MODES:
        reader.fail(f"{where}.takeover", f'expected "jump" or "pickup", got {takeover!r}')
    if takeover is not None and ctype != "range":
        reader.fail(f"{where}.takeover", f"only a range has takeover; this control is a {ctype}")

    if ctype == "range":
        lo = float(reader.get(raw, "min", f"{where}.min", _NUMBER, 0.0))
        hi = float(reader.get(raw, "max", f"{where}.max", _NUMBER, 1.0))
        step = float(reader.get(raw, "step", f"{where}.step", _NUMBER, 0.0))
        for key, number in (("min", lo), ("max", hi), ("step", step)):
            if not math.isfinite(number):
                reader.fail(f"{where}.{key}", f"expected a finite number, got {number}")
        if lo >= hi:
            reader.fail(f"{where}.min", f"must be less than max (got min={_num(lo)}, max={_num(hi)})")
        if step < 0 or step > hi - lo:
            reader.fail(f"{where}.step", f"expected 0 (continuous) up to max-min={_num(hi - lo)}, got {_num(step)}")
        if 0 < step < (hi - lo) * 1e-9:
            reader.fail(f"{where}.step", f"expected 0 (continuous) or at least a billionth of max-min, got {step}")
        default = reader.get(raw, "value", f"{where}.value", _NUMBER, lo)
        if not lo <= default <= hi:
            reader.fail(
                f"{where}.value", f"default must lie within min-max ({_num(lo)}-{_num(hi)}), got {_num(default)}"
            )
        control = Control(
            cid, "range", label, 0, osc, lo, hi, step, midi, group, unit, decimals, scene=scene, takeover=takeover
        )
        return _with_default(control, snap(control, float(default)))
    for key in ("min", "max", "step"):
        if key in raw:
            reader.fail(f"{where}.{key}", f"only a range has {key}; this control is a {ctype}")
    if ctype == "text":
        default_text = reader.get(raw, "value", f"{where}.value", str, "")
        if len(default_text) > MAX_TEXT_LENGTH:
            reader.fail(f"{where}.value", f"at most {MAX_TEXT_LENGTH} characters")
        return Control(cid, "text", label, default_text, osc, midi=midi, group=group, unit=unit, scene=scene)
    default_switch = reader.get(raw, "value", f"{where}.value", (int, bool), 0)
    if default_switch not in (0, 1):
        reader.fail(f"{where}.value", f"expected 0 or 1 (or true/false), got {default_switch!r}")
    return Control(cid, ctype, label, int(default_switch), osc, 0.0, 1.0, 1.0, midi, group, unit, scene=scene)


def _with_default(control: Control, default: Value) -> Control:
    from dataclasses import replace

    return replace(control, default=default)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def parse_midi_mapping(raw: object, where: str, ctype: str, name: str) -> MidiMapping:
    """A ``midi`` table as the config writes it, checked by the config's rules.

    Raises :class:`ConfigError` naming ``name`` (the file it came from) and ``where``.
    """
    return _midi_mapping(_Reader(name), raw, where, ctype)


def _midi_mapping(reader: _Reader, raw: object, where: str, ctype: str) -> MidiMapping:
    if not isinstance(raw, dict):
        reader.fail(where, "expected a table such as { channel = 1, cc = 7 }")
    reader.keys(raw, where, {"channel", "cc", "hires", "note", "pitchbend", "feedback"})
    channel = reader.get(raw, "channel", f"{where}.channel", int, 1)
    if not 1 <= channel <= 16:
        reader.fail(f"{where}.channel", f"expected 1-16, got {channel}")
    chosen = [k for k in ("cc", "note", "pitchbend") if k in raw]
    if len(chosen) != 1:
        reader.fail(where, "expected exactly one of cc = N, note = N or pitchbend = true")
    kind = chosen[0]
    hires = reader.get(raw, "hires", f"{where}.hires", bool, False)
    if hires and kind != "cc":
        reader.fail(f"{where}.hires", "only applies to cc")
    number = 0
    if kind == "pitchbend":
        if reader.get(raw, "pitchbend", f"{where}.pitchbend", bool, True) is not True:
            reader.fail(f"{where}.pitchbend", "expected true (or leave it out)")
    else:
        number = reader.get(raw, kind, f"{where}.{kind}", int, 0)
        top = 31 if hires else 127
        if not 0 <= number <= top:
            extra = " (a 14-bit cc uses N and N+32)" if hires else ""
            reader.fail(f"{where}.{kind}", f"expected 0-{top}{extra}, got {number}")
    feedback_default = kind == "note" and ctype in ("toggle", "button")
    feedback = reader.get(raw, "feedback", f"{where}.feedback", bool, feedback_default)
    final_kind = "cc14" if hires else kind
    return MidiMapping(channel=channel, kind=final_kind, number=number, feedback=feedback)  # type: ignore[arg-type]


def _check_unique(reader: _Reader, controls: tuple[Control, ...]) -> None:
    ids: dict[str, int] = {}
    oscs: dict[str, str] = {}
    midis: dict[Slot, str] = {}
    for i, control in enumerate(controls):
        if control.id in ids:
            reader.fail(f"controls[{i}].id", f"duplicate id {control.id!r} (also controls[{ids[control.id]}])")
        ids[control.id] = i
        if control.osc in oscs:
            reader.fail(
                f"controls[{i}] ({control.id}).osc",
                f"OSC address {control.osc!r} is already used by {oscs[control.osc]!r}",
            )
        oscs[control.osc] = control.id
        if control.midi is None:
            continue
        for slot, _part in slots(control.midi):
            if slot in midis:
                reader.fail(
                    f"controls[{i}] ({control.id}).midi",
                    f"{describe_slot(slot)} is already used by {midis[slot]!r}",
                )
            midis[slot] = control.id


def describe_slot(slot: Slot) -> str:
    kind, channel, number = slot
    if kind == "pitchbend":
        return f"MIDI channel {channel} pitch bend"
    return f"MIDI channel {channel} {kind} {number}"
