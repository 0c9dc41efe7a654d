"""The config's tables other than the controls: ``[server]``, ``[osc]``, ``[midi]``, ``[cluster]``,
``[oscquery]`` and ``[discovery]``, each read into a frozen dataclass."""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, Literal

from bridge.config.reader import OSC_ADDRESS_RE, Reader

#: The page's looks: dark (the default, for a dark stage), light (daylight), contrast (strongest text).
THEMES = ("dark", "light", "contrast")


@dataclass(frozen=True)
class TlsConfig:
    """HTTPS for the page and Socket.IO: a certificate and its key, made by the bridge when ``auto``."""

    cert: Path
    key: Path
    auto: bool = False


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
    tls: TlsConfig | None = None
    theme: str = "dark"

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"


#: One OSC message written in the config: its address and arguments.
OscCall = tuple[str, tuple[int | float | str | bool, ...]]


@dataclass(frozen=True)
class OscTarget:
    host: str
    port: int
    arg_type: str = "auto"  # auto | float | int
    prefix: str = ""
    transport: Literal["udp", "tcp"] = "udp"
    framing: Literal["slip", "length"] = "slip"  # TCP only
    on_connect: tuple[OscCall, ...] = ()  # sent when a TCP target connects (at start for UDP)
    keepalive: tuple[OscCall, ...] = ()  # sent every `every` seconds while the bridge runs
    every: float = 0.0
    answer_within: float = 0.0  # a desk that sends nothing back for this long is taken for gone (0: never)
    answer: str = ""  # UDP: only messages at this address (or under it) count as the desk's answer
    query_on_connect: bool = False  # every control's address with no argument: the desk answers its values

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}" + ("/tcp" if self.transport == "tcp" else "")


@dataclass(frozen=True)
class OscConfig:
    listen_host: str = "0.0.0.0"  # noqa: S104
    listen_port: int = 9001
    targets: tuple[OscTarget, ...] = ()
    allow: tuple[IPv4Network | IPv6Network, ...] = ()  # empty: every source allowed
    listen_tcp: tuple[str, int] | None = None  # TCP OSC clients, each a source and a target
    listen_tcp_framing: Literal["slip", "length"] | None = None  # None: each client's own, from its first byte


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
    "tls",
    "theme",
}


#: The configs shipped inside an installed package (``stage-bridge`` with no ``--config`` serves one).
SHIPPED = Path(__file__).resolve().parent.parent / "shipped"


def home_of(path: Path) -> Path:
    """The folder a config's relative files (state, scenes, keys, certificate) go in: the config's own, but
    for one shipped inside an installed package, whose folder may be read-only and is replaced at every
    upgrade: the user's state folder (``$XDG_STATE_HOME/stage-bridge``, ``~/.local/state/stage-bridge``)."""
    folder = path.resolve().parent
    if folder != SHIPPED and SHIPPED not in folder.parents:
        return folder
    home = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "stage-bridge"
    home.mkdir(parents=True, exist_ok=True)
    return home


def server(reader: Reader, table: dict[str, Any], path: Path) -> ServerConfig:
    reader.keys(table, "server", _SERVER_KEYS)
    host = reader.host(reader.get(table, "host", "server.host", str, ServerConfig.host), "server.host")
    # (0 would be "any free port": no one could open the page at an address known beforehand)
    port = reader.port(reader.get(table, "port", "server.port", int, ServerConfig.port), "server.port", lowest=1)
    state = reader.get(table, "state_file", "server.state_file", str, "state.json")
    state_file = None if state == "" else (home_of(path) / state).resolve()
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
    theme = reader.get(table, "theme", "server.theme", str, ServerConfig.theme)
    if theme not in THEMES:
        reader.fail("server.theme", f'expected "dark", "light" or "contrast", got {theme!r}')
    return ServerConfig(
        host=host,
        port=port,
        state_file=state_file,
        tls=_tls(reader, table.get("tls"), path, state_file) if "tls" in table else None,
        theme=theme,
        key=keys["key"],
        viewer_key=keys["viewer_key"],
        allowed_origins=tuple(origins),
        **limits,
    )


def _tls(reader: Reader, raw: object, path: Path, state_file: Path | None) -> TlsConfig:
    """``"auto"`` (a self-signed certificate kept beside the state file) or ``{cert, key}`` files."""
    if raw == "auto":
        # Beside the state file, named after it; without one, beside the config file.
        anchor = state_file if state_file is not None else home_of(path) / path.name
        return TlsConfig(anchor.with_name(f"{anchor.stem}.cert.pem"), anchor.with_name(f"{anchor.stem}.key.pem"), True)
    if not isinstance(raw, dict):
        reader.fail("server.tls", f'expected "auto" or a table {{ cert = "cert.pem", key = "key.pem" }}, got {raw!r}')
    reader.keys(raw, "server.tls", {"cert", "key"})
    given: dict[str, str] = {}
    for name in ("cert", "key"):
        given[name] = reader.get(raw, name, f"server.tls.{name}", str, "")
        if not given[name]:
            reader.fail(f"server.tls.{name}", f'expected the path of a PEM file, e.g. {name} = "{name}.pem"')
    files = {name: (path.parent / text).resolve() for name, text in given.items()}
    for name, found in files.items():
        if not found.is_file():
            reader.fail(f"server.tls.{name}", f"file not found: {found}")
    return TlsConfig(files["cert"], files["key"])


_TARGET_KEYS = {"address", "type", "prefix", "transport", "framing", "on_connect", "keepalive", "query_on_connect"}
#: The shortest keepalive period: a desk needs one every few seconds, not a flood.
MIN_KEEPALIVE = 0.1


def osc(reader: Reader, table: dict[str, Any]) -> OscConfig:
    if not isinstance(table, dict):
        reader.fail("osc", "must be a table")
    reader.keys(table, "osc", {"listen", "targets", "allow", "listen_tcp", "listen_tcp_framing"})
    allow = []
    for i, item in enumerate(reader.get(table, "allow", "osc.allow", list, [])):
        try:
            allow.append(ip_network(item, strict=False))
        except (TypeError, ValueError):
            reader.fail(f"osc.allow[{i}]", f'expected an address or network such as "192.168.1.0/24", got {item!r}')
    listen = reader.get(table, "listen", "osc.listen", str, "0.0.0.0:9001")
    host, port = reader.host_port(listen, "osc.listen")
    targets = [
        _target(reader, raw, f"osc.targets[{i}]")
        for i, raw in enumerate(reader.get(table, "targets", "osc.targets", list, []))
    ]
    listen_tcp = None
    if "listen_tcp" in table:
        listen_tcp = reader.host_port(reader.get(table, "listen_tcp", "osc.listen_tcp", str, ""), "osc.listen_tcp")
    framing = reader.get(table, "listen_tcp_framing", "osc.listen_tcp_framing", str, None)
    if framing is not None and framing not in ("slip", "length"):
        reader.fail(
            "osc.listen_tcp_framing",
            f'expected "slip" or "length" (or leave it out: each client\'s own), got {framing!r}',
        )
    if framing is not None and listen_tcp is None:
        reader.fail("osc.listen_tcp_framing", "needs osc.listen_tcp, the TCP port to listen on")
    return OscConfig(
        listen_host=host,
        listen_port=port,
        targets=tuple(targets),
        allow=tuple(allow),
        listen_tcp=listen_tcp,
        listen_tcp_framing=framing,
    )


def _target(reader: Reader, raw: object, where: str) -> OscTarget:
    if isinstance(raw, str):
        t_host, t_port = reader.host_port(raw, where, lowest=1)
        return OscTarget(t_host, t_port)
    if not isinstance(raw, dict):
        reader.fail(where, f'expected "host:port" or a table {{address = "host:port", transport, ...}}, got {raw!r}')
    reader.keys(raw, where, _TARGET_KEYS)
    t_host, t_port = reader.host_port(raw.get("address"), f"{where}.address", lowest=1)
    arg_type = reader.get(raw, "type", f"{where}.type", str, "auto")
    if arg_type not in ("auto", "float", "int"):
        reader.fail(f"{where}.type", f'expected "auto", "float" or "int", got {arg_type!r}')
    prefix = reader.get(raw, "prefix", f"{where}.prefix", str, "").rstrip("/")
    if prefix and not OSC_ADDRESS_RE.match(prefix):
        reader.fail(f"{where}.prefix", f'expected an OSC address such as "/stage", got {prefix!r}')
    transport = reader.get(raw, "transport", f"{where}.transport", str, "udp")
    if transport not in ("udp", "tcp"):
        reader.fail(f"{where}.transport", f'expected "udp" or "tcp", got {transport!r}')
    framing = reader.get(raw, "framing", f"{where}.framing", str, None)
    if framing is not None and transport == "udp":
        reader.fail(f"{where}.framing", 'only a TCP target has framing: add transport = "tcp", or remove framing')
    if framing is not None and framing not in ("slip", "length"):
        reader.fail(f"{where}.framing", f'expected "slip" (OSC 1.1) or "length" (OSC 1.0), got {framing!r}')
    on_connect = tuple(
        _call(reader, item, f"{where}.on_connect[{i}]")
        for i, item in enumerate(reader.get(raw, "on_connect", f"{where}.on_connect", list, []))
    )
    keepalive: tuple[OscCall, ...] = ()
    every = answer_within = 0.0
    answer = ""
    if "keepalive" in raw:
        table = reader.get(raw, "keepalive", f"{where}.keepalive", dict, {})
        reader.keys(table, f"{where}.keepalive", {"message", "every", "answer_within", "answer"})
        said = table.get("message")
        several = isinstance(said, list) and bool(said) and all(isinstance(m, list) for m in said)
        calls = said if several else [said]
        keepalive = tuple(_call(reader, m, f"{where}.keepalive.message") for m in calls)  # type: ignore[union-attr]
        every = float(reader.get(table, "every", f"{where}.keepalive.every", (int, float), 0.0))
        if not MIN_KEEPALIVE <= every <= 3600:
            reader.fail(f"{where}.keepalive.every", f"expected {MIN_KEEPALIVE}-3600 seconds, got {every:g}")
        if "answer_within" in table:
            key = f"{where}.keepalive.answer_within"
            answer_within = float(reader.get(table, "answer_within", key, (int, float), 0.0))
            if not every < answer_within <= 3600:
                reader.fail(key, f"expected more than every ({every:g}), at most 3600 seconds; got {answer_within:g}")
        if "answer" in table:
            key = f"{where}.keepalive.answer"
            answer = str(reader.get(table, "answer", key, str, ""))
            if not answer_within or not answer.startswith("/"):
                reader.fail(key, 'expected an OSC address ("/eos/out/ping"), with answer_within')
    return OscTarget(
        t_host,
        t_port,
        arg_type,
        prefix,
        transport=transport,
        framing=framing or "slip",
        on_connect=on_connect,
        keepalive=keepalive,
        every=every,
        answer_within=answer_within,
        answer=answer.rstrip("/"),
        query_on_connect=reader.get(raw, "query_on_connect", f"{where}.query_on_connect", bool, False),
    )


def _call(reader: Reader, raw: object, where: str) -> OscCall:
    """``["/address", arg, ...]``: one message to send as it is."""
    if not isinstance(raw, list) or not raw or not isinstance(raw[0], str) or not OSC_ADDRESS_RE.match(raw[0]):
        reader.fail(
            where, f'expected ["/address", arguments...], e.g. ["/xremote"] or ["/alwaysReply", 1], got {raw!r}'
        )
    for arg in raw[1:]:
        if not isinstance(arg, bool | int | float | str):
            reader.fail(where, f"expected numbers, strings or true/false as arguments, got {arg!r}")
    return raw[0], tuple(raw[1:])


def midi(reader: Reader, table: dict[str, Any]) -> MidiConfig:
    reader.keys(table, "midi", {"backend", "input", "output", "virtual", "budget"})
    budget = reader.get(table, "budget", "midi.budget", int, MidiConfig.budget)
    if budget < 0:
        reader.fail("midi.budget", f"expected 0 (no limit) or messages per second, got {budget}")
    backend = reader.get(table, "backend", "midi.backend", str, MidiConfig.backend)
    module = backend.split("/", 1)[0]
    if not module.startswith("mido.backends.") or importlib.util.find_spec(module) is None:
        reader.fail(
            "midi.backend",
            f'expected a mido backend such as "mido.backends.rtmidi" (or "mido.backends.rtmidi/UNIX_JACK"), '
            f"got {backend!r}",
        )
    return MidiConfig(
        budget=budget,
        backend=backend,
        input=reader.get(table, "input", "midi.input", str, MidiConfig.input),
        output=reader.get(table, "output", "midi.output", str, MidiConfig.output),
        virtual=reader.get(table, "virtual", "midi.virtual", bool, MidiConfig.virtual),
    )


def cluster(reader: Reader, table: dict[str, Any]) -> ClusterConfig:
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


def oscquery(reader: Reader, table: dict[str, Any], server: ServerConfig, osc: OscConfig | None) -> OscQueryConfig:
    reader.keys(table, "oscquery", {"port", "host"})
    if osc is None:
        reader.fail("oscquery", "needs an [osc] table too: OSCQuery clients send their values to its listen port")
    port = reader.port(reader.get(table, "port", "oscquery.port", int, OscQueryConfig.port), "oscquery.port")
    host = reader.get(table, "host", "oscquery.host", str, None)
    if host == "":
        reader.fail("oscquery.host", 'expected an interface such as "0.0.0.0", or leave it out for [server] host')
    if port != 0 and port == server.port and (host is None or host == server.host):
        reader.fail("oscquery.port", f"must differ from server.port ({server.port}): OSCQuery has a port of its own")
    return OscQueryConfig(port=port, host=host)


def discovery(reader: Reader, table: dict[str, Any]) -> DiscoveryConfig:
    reader.keys(table, "discovery", {"mdns", "name"})
    name = reader.get(table, "name", "discovery.name", str, DiscoveryConfig.name)
    # An mDNS instance name is one DNS label: at most 63 bytes.
    if not name.strip() or not name.isprintable() or len(name.encode("utf-8")) > 63:
        reader.fail("discovery.name", f"expected 1-63 bytes of printable text, got {name!r}")
    return DiscoveryConfig(mdns=reader.get(table, "mdns", "discovery.mdns", bool, DiscoveryConfig.mdns), name=name)
