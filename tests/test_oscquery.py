"""OSCQuery end to end: the namespace over HTTP, live values over WebSocket, a real server process.

The HTTP answers are checked against the rules of the OSCQuery proposal
(Vidvox/OSCQueryProposal); python-oscquery, a client we did not write,
browses the same namespace; websocket-client plays the WebSocket peer.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websocket
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.config import DEFAULT_CONFIG, load_config
from bridge.errors import ConfigError
from bridge.hub import Hub
from bridge.model import Origin
from bridge.osc.codec import values_for
from bridge.oscquery.namespace import Namespace, frame, json_value, type_string
from tests.helpers import CONTROLS_TOML, BridgeProcess, Client, free_port, wait_until, write_config
from tests.jack import MidiPeer, unique_name
from tests.osc_tools import OscPeer, oscsend
from tests.oscquery_tools import WsPeer, osc_message, oscquery_health, wait_listening
from tests.test_midi import cc, jumping, link_up, midi_table

Start = Callable[..., BridgeProcess]
Connect = Callable[[str], Client]

# A control below a container, with a unit: /mixer is a container, /mixer/gain a method.
GAIN_TOML = """
[[controls]]
id = "gain"
type = "range"
label = "Gain"
min = -60
max = 6
value = 0
unit = "dB"
osc = "/mixer/gain"
"""
CONTROL_KEY = "control-key-1"
VIEWER_KEY = "viewer-key-1"


@dataclass
class QueryBridge:
    proc: BridgeProcess
    osc_port: int
    port: int  # OSCQuery

    def get(self, path: str, key: str | None = None, method: str = "GET") -> tuple[int, Any]:
        """Status and decoded JSON (None for an empty body) of an OSCQuery request."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                body = resp.read()
                status = resp.status
        except urllib.error.HTTPError as err:
            body, status = err.read(), err.code
        return status, json.loads(body) if body else None


def oscquery_toml(osc_port: int, port: int, targets: str = "", server: str = "") -> str:
    """Lines for the [server] table (``server``), then [osc] and [oscquery]."""
    return f'{server}[osc]\nlisten = "127.0.0.1:{osc_port}"\ntargets = [{targets}]\n[oscquery]\nport = {port}\n'


@pytest.fixture
def start_bridge(tmp_path: Path, bridge_factory: Start) -> Callable[..., QueryBridge]:
    def start(targets: str = "", server: str = "", midi: str = "", more: str = "") -> QueryBridge:
        osc_port, port = free_port(socket.SOCK_DGRAM), free_port()
        extra = oscquery_toml(osc_port, port, targets, server) + midi
        controls = CONTROLS_TOML + GAIN_TOML + more
        if midi:
            controls = jumping(controls)  # about the path to listeners, not soft takeover
        proc = bridge_factory(write_config(tmp_path, extra=extra, controls=controls))
        return QueryBridge(proc, osc_port, port)

    return start


@pytest.fixture
def bridge(start_bridge: Callable[..., QueryBridge]) -> QueryBridge:
    return start_bridge()


@pytest.fixture
def ws_peers() -> Iterator[Callable[..., WsPeer]]:
    made: list[WsPeer] = []

    def make(port: int, **kwargs: Any) -> WsPeer:
        peer = WsPeer(port, **kwargs)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


# -- config --------------------------------------------------------------------------
@pytest.mark.unit
def test_oscquery_and_discovery_config(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, extra=oscquery_toml(9001, 5001)))
    assert config.oscquery is not None
    assert (config.oscquery.port, config.oscquery.host) == (5001, None)
    assert (config.discovery.mdns, config.discovery.name) == (False, "Stage Bridge")
    config = load_config(write_config(tmp_path, extra='[discovery]\nmdns = true\nname = "Rig A"'))
    assert config.oscquery is None
    assert (config.discovery.mdns, config.discovery.name) == (True, "Rig A")
    default = load_config(DEFAULT_CONFIG)
    assert default.oscquery is not None and default.oscquery.port == 5001
    assert default.discovery.mdns is False  # no multicast unless asked for


@pytest.mark.unit
@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        (oscquery_toml(9001, 5001) + "colour = 1\n", "oscquery.colour", "unknown key"),
        ("[oscquery]\nport = 5001\n", "oscquery", "needs an [osc] table"),
        (oscquery_toml(9001, 70000), "oscquery.port", "0-65535"),
        (oscquery_toml(9001, 5000), "oscquery.port", "must differ from server.port"),
        (oscquery_toml(9001, 5001) + 'host = ""\n', "oscquery.host", "expected an interface"),
        ('[discovery]\nmdns = "yes"\n', "discovery.mdns", "true or false"),
        ('[discovery]\nname = ""\n', "discovery.name", "1-63 bytes"),
        ('[discovery]\nname = "' + "x" * 64 + '"\n', "discovery.name", "1-63 bytes"),
        ("[discovery]\nport = 1\n", "discovery.port", "unknown key"),
    ],
)
def test_bad_oscquery_config_names_the_key(tmp_path: Path, extra: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, extra=extra))
    assert info.value.key == key
    assert words in str(info.value)


@pytest.mark.unit
def test_namespace_tree_from_addresses(tmp_path: Path) -> None:
    both = '[[controls]]\nid = "mix"\ntype = "range"\nosc = "/mixer"\n'
    config = load_config(write_config(tmp_path, controls=GAIN_TOML + both))
    namespace = Namespace(config.controls, "Rig")
    assert set(namespace.nodes) == {"/", "/mixer", "/mixer/gain"}
    assert namespace.find("/mixer/") is namespace.nodes["/mixer"]
    assert namespace.find("/mixer/nope") is None
    # /mixer is a control and a container at once: both show.
    node = namespace.describe(namespace.nodes["/mixer"], {"gain": -6, "mix": 0.5}, "control")
    assert node["TYPE"] == "f" and node["VALUE"] == [0.5]
    assert node["CONTENTS"]["gain"]["VALUE"] == [-6.0]


# -- HTTP ------------------------------------------------------------------------------
def check_node(node: dict[str, Any], path: str) -> None:
    """The proposal's rules for one node and, recursively, its contents."""
    assert node["FULL_PATH"] == path
    assert node["ACCESS"] in (0, 1, 2, 3)
    if "DESCRIPTION" in node:
        assert isinstance(node["DESCRIPTION"], str)
    if "CONTENTS" in node:
        for name, child in node["CONTENTS"].items():
            check_node(child, ("" if path == "/" else path) + "/" + name)
    if "TYPE" not in node:
        assert node["ACCESS"] == 0 and "VALUE" not in node and "CONTENTS" in node
        return
    tags = node["TYPE"]
    assert tags and set(tags) <= set("ifsTFN")
    assert len(node["VALUE"]) == len(tags)  # one item per type tag
    for tag, value in zip(tags, node["VALUE"], strict=True):
        expected = {"i": int, "f": float, "s": str, "T": bool, "F": bool, "N": type(None)}[tag]
        assert type(value) is expected, (path, tag, value)
    for ranged in node.get("RANGE", []):
        if ranged is None:  # an argument with no range (the proposal's null)
            continue
        assert set(ranged) <= {"MIN", "MAX", "VALS"} and ranged
        if "MIN" in ranged and "MAX" in ranged:
            assert ranged["MIN"] <= ranged["MAX"]
    for attribute in ("RANGE", "CLIPMODE", "UNIT"):
        if attribute in node:
            assert len(node[attribute]) == len(tags)
    assert set(node.get("CLIPMODE", [])) <= {"none", "low", "high", "both"}


def test_namespace_has_every_control_with_the_proposals_fields(bridge: QueryBridge) -> None:
    status, root = bridge.get("/")
    assert status == 200
    check_node(root, "/")
    assert root["ACCESS"] == 0 and root["DESCRIPTION"] == "Stage Bridge"
    contents = root["CONTENTS"]
    assert set(contents) == {"slider1", "slider2", "fine", "bend", "txt1", "toggle1", "button1", "mixer"}
    assert contents["slider1"] == {
        "FULL_PATH": "/slider1",
        "DESCRIPTION": "Slider 1",
        "ACCESS": 3,
        "TYPE": "f",
        "VALUE": [25.0],
        "RANGE": [{"MIN": 0, "MAX": 50}],
        "CLIPMODE": ["both"],
    }
    assert contents["txt1"] == {"FULL_PATH": "/txt1", "DESCRIPTION": "Text", "ACCESS": 3, "TYPE": "s", "VALUE": [""]}
    assert contents["toggle1"] == {
        "FULL_PATH": "/toggle1",
        "DESCRIPTION": "Toggle",
        "ACCESS": 3,
        "TYPE": "T",
        "VALUE": [False],
    }
    assert contents["button1"] == {
        "FULL_PATH": "/button1",
        "DESCRIPTION": "Button",
        "ACCESS": 3,
        "TYPE": "i",
        "VALUE": [0],
        "RANGE": [{"MIN": 0, "MAX": 1}],
    }
    assert contents["mixer"] == {
        "FULL_PATH": "/mixer",
        "ACCESS": 0,
        "CONTENTS": {
            "gain": {
                "FULL_PATH": "/mixer/gain",
                "DESCRIPTION": "Gain",
                "ACCESS": 3,
                "TYPE": "f",
                "VALUE": [0.0],
                "RANGE": [{"MIN": -60, "MAX": 6}],
                "CLIPMODE": ["both"],
                "UNIT": ["dB"],
            }
        },
    }
    # A method on its own, and a container with its subtree.
    assert bridge.get("/slider1") == (200, contents["slider1"])
    assert bridge.get("/mixer/") == (200, contents["mixer"])


def test_attribute_queries_read_the_live_store(bridge: QueryBridge) -> None:
    assert bridge.get("/slider1?VALUE") == (200, {"VALUE": [25.0]})
    for attribute, expected in [
        ("TYPE", "f"),
        ("RANGE", [{"MIN": 0, "MAX": 50}]),
        ("ACCESS", 3),
        ("DESCRIPTION", "Slider 1"),
        ("CLIPMODE", ["both"]),
        ("FULL_PATH", "/slider1"),
    ]:
        assert bridge.get(f"/slider1?{attribute}") == (200, {attribute: expected})
    assert bridge.get("/mixer/gain?UNIT") == (200, {"UNIT": ["dB"]})
    assert bridge.get("/toggle1?VALUE") == (200, {"VALUE": [False]})
    # A container: no value (204), no type (an empty object), its contents.
    assert bridge.get("/mixer?VALUE") == (204, None)
    assert bridge.get("/mixer?TYPE") == (200, {})
    assert bridge.get("/mixer?CONTENTS")[1]["CONTENTS"]["gain"]["FULL_PATH"] == "/mixer/gain"
    assert bridge.get("/slider1?UNIT") == (200, {})  # no unit configured
    status, body = bridge.get("/slider1?BOGUS")
    assert status == 400 and "BOGUS" in body["error"]

    # One store: whatever sets a value, OSCQuery reads it at once.
    bridge.proc.put_json("/api/values/slider1", {"value": 40})
    assert bridge.get("/slider1?VALUE") == (200, {"VALUE": [40.0]})
    oscsend(bridge.osc_port, "/mixer/gain", "f", -12.5)
    wait_until(lambda: bridge.get("/mixer/gain?VALUE")[1] == {"VALUE": [-12.5]}, what="OSC in read over OSCQuery")
    oscsend(bridge.osc_port, "/toggle1", "T")
    wait_until(lambda: bridge.get("/toggle1?VALUE")[1] == {"VALUE": [True]}, what="the toggle on")
    assert bridge.proc.get_json("/api/values")["gain"] == -12.5


def test_host_info(bridge: QueryBridge) -> None:
    status, info = bridge.get("/?HOST_INFO")
    assert status == 200
    assert info["NAME"] == "Stage Bridge"
    assert (info["OSC_IP"], info["OSC_PORT"], info["OSC_TRANSPORT"]) == ("127.0.0.1", bridge.osc_port, "UDP")
    assert info["WS_PORT"] == bridge.port
    extensions = info["EXTENSIONS"]
    for attribute in ("ACCESS", "VALUE", "RANGE", "DESCRIPTION", "UNIT", "CLIPMODE", "LISTEN"):
        assert extensions[attribute] is True
    # A config reload changes the namespace, and listeners are told (tests/test_live_config.py).
    assert (extensions["PATH_ADDED"], extensions["PATH_REMOVED"], extensions["PATH_CHANGED"]) == (True, True, True)
    assert extensions["PATH_RENAMED"] is False  # a renamed control is one path removed and one added
    assert bridge.get("/slider1?HOST_INFO") == (200, info)  # the path is irrelevant to HOST_INFO


def test_unknown_paths_are_404(bridge: QueryBridge) -> None:
    for path in ("/nope", "/slider1/more", "/mixer/nope", "/nope?VALUE", "/Slider1"):
        status, body = bridge.get(path)
        assert status == 404, path
        assert "no OSC node" in body["error"]
    assert bridge.get("/slider1", method="POST")[0] == 405


def test_python_oscquery_browses_the_namespace(bridge: QueryBridge) -> None:
    """python-oscquery's client, pointed at us by hand (the mDNS test finds us by itself)."""
    from pythonoscquery.osc_query_client import OSCQueryClient
    from zeroconf import ServiceInfo

    info = ServiceInfo(
        "_oscjson._tcp.local.",
        "Stage Bridge._oscjson._tcp.local.",
        port=bridge.port,
        addresses=[socket.inet_aton("127.0.0.1")],
    )
    client = OSCQueryClient(info)
    host = client.get_host_info()
    assert host is not None
    assert (host.name, host.osc_port, host.osc_transport) == ("Stage Bridge", bridge.osc_port, "UDP")
    root = client.query_node("/")
    assert root is not None
    nodes = {node.full_path: node for node in root}
    assert {"/slider1", "/txt1", "/toggle1", "/button1", "/mixer", "/mixer/gain"} <= set(nodes)
    assert nodes["/slider1"].value == [25.0]
    assert nodes["/slider1"].description == "Slider 1"
    assert int(nodes["/slider1"].access) == 3
    assert nodes["/mixer"].is_container
    assert client.query_node("/nope") is None  # our 404, as the client reads it


# -- WebSocket ---------------------------------------------------------------------------
def test_listener_gets_every_change_as_osc(
    start_bridge: Callable[..., QueryBridge], client_factory: Connect, ws_peers: Callable[..., WsPeer]
) -> None:
    bridge = start_bridge()
    listener = ws_peers(bridge.port)
    listener.command("LISTEN", "/slider1")
    listener.command("LISTEN", "/toggle1")
    listener.command("LISTEN", "/button1")
    listener.command("LISTEN", "/txt1")
    wait_listening(bridge.proc, "/txt1", 1)

    browser = client_factory(bridge.proc.url)
    browser.send("slider1", 12)  # a Socket.IO client
    listener.wait_for("/slider1", [12.0])
    oscsend(bridge.osc_port, "/slider1", "f", 33.0)  # liblo's oscsend
    listener.wait_for("/slider1", [33.0])
    bridge.proc.put_json("/api/values/slider1", {"value": 8})  # the HTTP API
    listener.wait_for("/slider1", [8.0])
    assert listener.got("/slider1") == [[12.0], [33.0], [8.0]]

    # Typed as TYPE says: a toggle as T/F, a button as an int, text as a string.
    browser.send("toggle1", 1)
    listener.wait_for("/toggle1", [True])
    browser.send("toggle1", 0)
    listener.wait_for("/toggle1", [False])
    browser.send("button1", 1)
    listener.wait_for("/button1", [1])
    browser.send("txt1", "cue 12")
    listener.wait_for("/txt1", ["cue 12"])
    assert listener.got("/slider2") == []  # only what it listens to


def test_ignore_stops_the_stream(bridge: QueryBridge, ws_peers: Callable[..., WsPeer]) -> None:
    listener = ws_peers(bridge.port)
    listener.command("LISTEN", "/slider1")
    listener.command("LISTEN", "/slider2")
    wait_listening(bridge.proc, "/slider2", 1)
    bridge.proc.put_json("/api/values/slider1", {"value": 1})
    listener.wait_for("/slider1", [1.0])

    listener.command("IGNORE", "/slider1")
    wait_listening(bridge.proc, "/slider1", 0)
    bridge.proc.put_json("/api/values/slider1", {"value": 2})
    bridge.proc.put_json("/api/values/slider2", {"value": 3})
    # Frames keep the order of the changes: once slider2's is in, slider1's would be too.
    listener.wait_for("/slider2", [3.0])
    assert listener.got("/slider1") == [[1.0]]


def test_osc_frame_from_a_client_sets_the_value_without_echo(
    start_bridge: Callable[..., QueryBridge], client_factory: Connect, ws_peers: Callable[..., WsPeer]
) -> None:
    target = OscPeer()
    try:
        bridge = start_bridge(targets=f'"127.0.0.1:{target.port}"')
        browser = client_factory(bridge.proc.url)
        sender, other = ws_peers(bridge.port), ws_peers(bridge.port)
        for peer in (sender, other):
            peer.command("LISTEN", "/slider1")
        wait_listening(bridge.proc, "/slider1", 2)

        sender.send_osc("/slider1", 30.0)
        other.wait_for("/slider1", [30.0])  # the other listener
        browser.wait_value("slider1", 30)  # browsers
        target.wait_for("/slider1", lambda args: args == [30.0])  # OSC targets
        assert bridge.proc.get_json("/api/values")["slider1"] == 30

        bridge.proc.put_json("/api/values/slider1", {"value": 31})
        sender.wait_for("/slider1", [31.0])
        assert sender.got("/slider1") == [[31.0]]  # its own 30 never came back

        # A value out of range is clamped; the sender is told what is stored.
        sender.send_osc("/slider1", 70.0)
        sender.wait_for("/slider1", [50.0])
        other.wait_for("/slider1", [50.0])

        # Patterns, bundles and T/F, as over UDP.
        sender.send_osc("/slider[12]", 5)
        wait_until(lambda: bridge.proc.get_json("/api/values")["slider2"] == 5, what="a pattern over WebSocket")
        sender.send_osc("/toggle1", True)
        browser.wait_value("toggle1", 1)
        assert oscquery_health(bridge.proc)["dropped"] == 0
    finally:
        target.close()


def test_bad_frames_and_commands_are_dropped_and_the_connection_lives(
    bridge: QueryBridge, ws_peers: Callable[..., WsPeer]
) -> None:
    peer = ws_peers(bridge.port)
    peer.send_raw(b"\x00\x01\x02")  # not OSC
    peer.send_raw(b"/slider1\x00\x00\x00\x00,f\x00\x00\x3f")  # a float cut short
    peer.send_osc("/nope", 1.0)  # no such control
    peer.send_osc("/slider1", "loud")  # a string for a range
    peer.ws.send("not json")
    peer.command("LISTEN", "/nope")
    peer.command("SHOUT", "/slider1")
    wait_until(lambda: oscquery_health(bridge.proc)["dropped"] == 7, what="7 drops counted")
    assert bridge.proc.get_json("/api/values")["slider1"] == 25
    peer.command("LISTEN", "/slider1")
    wait_listening(bridge.proc, "/slider1", 1)
    bridge.proc.put_json("/api/values/slider1", {"value": 9})
    peer.wait_for("/slider1", [9.0])
    assert "malformed OSC dropped" in bridge.proc.output()
    # A client naming a new path each time: a line per path was 5,000 lines for 5,000 paths.
    for n in range(200):
        peer.command("LISTEN", f"/nope/{n}")
        peer.send_osc(f"/nope/{n}", 1.0)
    wait_until(lambda: oscquery_health(bridge.proc)["dropped"] == 7 + 400, what="400 more drops counted")
    assert bridge.proc.output().count("no control at this address") < 40  # a line per client and kind every 5 s


def test_a_listener_that_stops_reading_holds_up_no_one(
    tmp_path: Path, bridge_factory: Start, ws_peers: Callable[..., WsPeer]
) -> None:
    count = 64
    texts = "".join(f'[[controls]]\nid = "t{i}"\ntype = "text"\n' for i in range(count))
    osc_port, port = free_port(socket.SOCK_DGRAM), free_port()
    extra = oscquery_toml(osc_port, port, server="max_payload = 262144\n")
    proc = bridge_factory(write_config(tmp_path, extra=extra, controls=texts))
    stuck = ws_peers(port, read=False, small_buffer=True)
    sender, reader = ws_peers(port), ws_peers(port)
    for i in range(count):
        stuck.command("LISTEN", f"/t{i}")
    reader.command("LISTEN", f"/t{count - 1}")
    wait_listening(proc, f"/t{count - 1}", 2)
    # Bundles of 64 changes of 1 kB, each one seen by the reader before the next:
    # 5 MB toward a client that reads nothing, more than any socket buffer holds.
    for round_ in range(80):
        bundle = OscBundleBuilder(IMMEDIATELY)
        for i in range(count):
            bundle.add_content(osc_message(f"/t{i}", f"{round_:04d}" + "x" * 1000))
        sender.send_raw(bundle.build().dgram)
        reader.wait_for(f"/t{count - 1}", [f"{round_:04d}" + "x" * 1000])
    # The stuck client's writer is blocked on its socket with values waiting;
    # the hub went on all along, and still does.
    health = oscquery_health(proc)
    assert health["behind"] == 1, health
    proc.put_json(f"/api/values/t{count - 1}", {"value": "after"})
    reader.wait_for(f"/t{count - 1}", ["after"])
    # It reads again: every frame it gets is whole (a frame written in part
    # would break the stream) and it ends on every latest value.
    stuck.resume()
    for i in range(count - 1):
        stuck.wait_for(f"/t{i}", ["0079" + "x" * 1000])
    stuck.wait_for(f"/t{count - 1}", ["after"])


def test_keys_viewer_reads_only(start_bridge: Callable[..., QueryBridge], ws_peers: Callable[..., WsPeer]) -> None:
    bridge = start_bridge(server=f'key = "{CONTROL_KEY}"\nviewer_key = "{VIEWER_KEY}"\n')
    assert bridge.get("/")[0] == 401
    assert bridge.get("/?HOST_INFO")[0] == 401
    assert bridge.get("/slider1?ACCESS", key=CONTROL_KEY) == (200, {"ACCESS": 3})
    assert bridge.get("/slider1?ACCESS", key=VIEWER_KEY) == (200, {"ACCESS": 1})
    assert bridge.get(f"/slider1?ACCESS&key={VIEWER_KEY}") == (200, {"ACCESS": 1})
    assert bridge.get("/", key=VIEWER_KEY)[1]["CONTENTS"]["mixer"]["CONTENTS"]["gain"]["ACCESS"] == 1

    viewer = ws_peers(bridge.port, key=VIEWER_KEY)
    viewer.command("LISTEN", "/slider1")
    wait_listening(bridge.proc, "/slider1", 1)
    viewer.send_osc("/slider1", 1.0)  # refused: read only
    wait_until(lambda: oscquery_health(bridge.proc)["refused"] == 1, what="the viewer's frame refused")
    controller = ws_peers(bridge.port, key=CONTROL_KEY)
    controller.send_osc("/slider1", 2.0)
    viewer.wait_for("/slider1", [2.0])
    assert viewer.got("/slider1") == [[2.0]]
    with pytest.raises(Exception, match="401"):
        WsPeer(bridge.port)


# -- MIDI --------------------------------------------------------------------------------
def test_midi_change_reaches_a_listener(
    start_bridge: Callable[..., QueryBridge], peer: MidiPeer, ws_peers: Callable[..., WsPeer]
) -> None:
    names = {"input": unique_name("oq-in"), "output": unique_name("oq-out")}
    bridge = start_bridge(midi=midi_table(names["input"], names["output"], virtual=True))
    peer.connect(names["input"], names["output"])
    link_up(bridge.proc, peer)
    listener = ws_peers(bridge.port)
    listener.command("LISTEN", "/slider1")
    wait_listening(bridge.proc, "/slider1", 1)
    peer.send(cc(1, 1, 102))  # 102/127 of 0-50, on step 1
    listener.wait_for("/slider1", [40.0])
    peer.send(cc(1, 1, 127))
    listener.wait_for("/slider1", [50.0])


SURFACE_TOML = """
[[controls]]
id = "cue_name"
type = "label"
value = "Preshow"
[[controls]]
id = "level"
type = "meter"
min = -60
max = 6
unit = "dB"
[[controls]]
id = "rec"
type = "led"
[[controls]]
id = "list"
type = "select"
options = ["Main", "Sound", "Video"]
[[controls]]
id = "steps"
type = "select"
options = [1, 2, 3]
[[controls]]
id = "pan"
type = "knob"
min = -1
max = 1
[[controls]]
id = "go"
type = "button"
mode = "trigger"
on = []
[[controls]]
id = "cue5"
type = "range"
max = 100
osc = { address = "/eos/cue", args = ["fire", 5, "{value}"] }
"""


def test_every_new_type_has_its_type_range_and_access(start_bridge: Callable[..., QueryBridge]) -> None:
    bridge = start_bridge(more=SURFACE_TOML)
    status, root = bridge.get("/")
    assert status == 200
    check_node(root, "/")
    nodes = root["CONTENTS"]
    expected = {
        "cue_name": ("s", 1, ["Preshow"], None),
        "level": ("f", 1, [-60.0], [{"MIN": -60.0, "MAX": 6.0}]),
        "rec": ("i", 1, [0], [{"MIN": 0, "MAX": 1}]),
        "list": ("s", 3, ["Main"], [{"VALS": ["Main", "Sound", "Video"]}]),
        "steps": ("i", 3, [1], [{"VALS": [1, 2, 3]}]),
        "pan": ("f", 3, [-1.0], [{"MIN": -1.0, "MAX": 1.0}]),
        "go": ("N", 3, [None], None),
    }
    for name, (tag, access, value, ranges) in expected.items():
        node = nodes[name]
        assert (node["TYPE"], node["ACCESS"], node["VALUE"], node.get("RANGE")) == (tag, access, value, ranges), name
    assert nodes["level"]["UNIT"] == ["dB"] and nodes["level"]["CLIPMODE"] == ["both"]
    cue = nodes["eos"]["CONTENTS"]["cue"]
    assert cue["TYPE"] == "sif" and cue["VALUE"] == ["fire", 5, 0.0]
    assert cue["RANGE"] == [{"VALS": ["fire"]}, {"VALS": [5]}, {"MIN": 0.0, "MAX": 100.0}]
    # The viewer key reads the displays as read only, like everything else.
    status, access = bridge.get("/level?ACCESS")
    assert status == 200 and access == {"ACCESS": 1}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("osc", "type_tag", "item", "arg"),
    [
        ('"/mute"', "T", True, True),  # an OSC boolean by default
        ('{ address = "/mute", types = "i" }', "i", 1, 1),  # the desk wants an int: TYPE, VALUE and the frame agree
        ('{ address = "/mute", types = "f" }', "f", 1.0, 1.0),
    ],
)
def test_a_toggles_type_value_and_frame_agree(
    tmp_path: Path, osc: str, type_tag: str, item: object, arg: object
) -> None:
    path = tmp_path / "t.toml"
    path.write_text(f'[[controls]]\nid = "mute"\ntype = "toggle"\nosc = {osc}\n', encoding="utf-8")
    control = load_config(path).control("mute")
    assert type_string(control) == type_tag
    assert json_value(control, True) == item and type(json_value(control, True)) is type(item)
    message = OscMessage(frame(control, True))
    assert message.params == [arg] and type(message.params[0]) is type(arg)


WIRE_TOML = """
[[controls]]
id = "fader"
type = "range"
min = -90
max = 10
osc = { address = "/ch/01/mix/fader", curve = [[-90, 0.0], [-60, 0.0625], [-30, 0.25], [-10, 0.5], [10, 1.0]] }
[[controls]]
id = "k"
type = "knob"
osc = { address = "/k", range = [0, 127], types = "i" }
[[controls]]
id = "mixed"
type = "select"
options = [1, 2.5]
[[controls]]
id = "level"
type = "label"
value = 0
[[controls]]
id = "bang"
type = "button"
mode = "trigger"
on = []
"""


@pytest.mark.unit
def test_type_value_range_and_frame_say_the_same_in_the_wires_terms(tmp_path: Path) -> None:
    # A client that followed RANGE and VALUE set an X32 fader to -90 dB: they were the page's dB while
    # frames and messages in are the wire's 0-1. TYPE now names what frames carry, VALUE loses nothing.
    path = tmp_path / "t.toml"
    path.write_text(f'[osc]\nlisten = "127.0.0.1:0"\n{WIRE_TOML}', encoding="utf-8")
    config = load_config(path)
    space = Namespace(list(config.controls), "show")
    values = {"fader": 0.0, "k": 0.7, "mixed": 1, "level": 2.5, "bang": 0}
    nodes = space.describe(space.root, values, "control")["CONTENTS"]
    fader = nodes["ch"]["CONTENTS"]["01"]["CONTENTS"]["mix"]["CONTENTS"]["fader"]
    assert fader["RANGE"] == [{"MIN": 0.0, "MAX": 1.0}] and fader["VALUE"] == [0.75]  # 0 dB on the X32 law
    assert OscMessage(frame(config.control("fader"), 0.0)).params == [0.75]
    assert (nodes["k"]["TYPE"], nodes["k"]["VALUE"], nodes["k"]["RANGE"]) == ("i", [89], [{"MIN": 0.0, "MAX": 127.0}])
    assert OscMessage(frame(config.control("k"), 0.7)).params == [89]
    assert (nodes["mixed"]["TYPE"], nodes["mixed"]["VALUE"]) == ("f", [1.0])
    assert OscMessage(frame(config.control("mixed"), 1)).params == [1.0]  # as TYPE says, not ,i
    assert (nodes["level"]["TYPE"], nodes["level"]["VALUE"]) == ("f", [2.5])  # not cut to 2
    assert OscMessage(frame(config.control("level"), 2.5)).params == [2.5]
    assert nodes["bang"]["TYPE"] == "N"
    # And a message typed as TYPE says sets the control: OSC's nil fires the bare trigger.
    nil = OscMessageBuilder("/bang")
    nil.add_arg(None, "N")
    found, problems = values_for("/bang", list(OscMessage(nil.build().dgram).params), space.table)
    assert [(c.id, v) for c, v in found] == [("bang", 1)] and not problems


@pytest.mark.unit
def test_a_wire_value_beyond_a_curves_range_is_clamped_and_said_to_be(tmp_path: Path) -> None:
    """A client that sent 2.0 to an X32-law fader (RANGE 0-1) got +10 dB and was never corrected: the curve
    clamped the wire before the hub saw it, so nothing counted as clamped (a reviewer's case)."""
    path = tmp_path / "t.toml"
    path.write_text(f'[osc]\nlisten = "127.0.0.1:0"\n{WIRE_TOML}', encoding="utf-8")
    config = load_config(path)
    hub, space = Hub(config.controls), Namespace(list(config.controls), "show")
    for wire, stored, clamped in ((2.0, 10, True), (-1.0, -90, True), (0.75, 0, False)):
        (control, raw), *_ = values_for("/ch/01/mix/fader", [wire], space.table)[0]
        applied = hub.set(control.id, raw, Origin("oscquery", "client"))
        assert (applied.value, applied.adjusted) == (stored, clamped), wire


SHARED_TOML = """
[[controls]]
id = "go"
type = "button"
mode = "trigger"
[[controls]]
id = "cue5"
type = "range"
max = 100
osc = { address = "/eos/cue", args = ["fire", 5, "{value}"] }
[[controls]]
id = "cue6"
type = "range"
max = 100
osc = { address = "/eos/cue", args = ["fire", 6, "{value}"] }
"""


def test_a_listener_gets_every_press_and_every_control_at_a_shared_address(
    start_bridge: Callable[..., QueryBridge], ws_peers: Callable[..., WsPeer]
) -> None:
    # The listener's outbox kept one frame per path: two GOs back to back were one, and of two
    # controls at one address set in one bundle, only the last reached it.
    bridge = start_bridge(more=SHARED_TOML)
    listener = ws_peers(bridge.port)
    for path in ("/go", "/eos/cue"):
        listener.command("LISTEN", path)
        wait_listening(bridge.proc, path, 1)
    for _ in range(5):
        bundle = OscBundleBuilder(IMMEDIATELY)
        bundle.add_content(osc_message("/go"))
        bundle.add_content(osc_message("/go"))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.sendto(bundle.build().dgram, ("127.0.0.1", bridge.osc_port))
        sock.close()
    wait_until(lambda: len(listener.got("/go")) == 10, what="ten presses at the listener")
    for n in range(1, 6):
        bundle = OscBundleBuilder(IMMEDIATELY)
        bundle.add_content(osc_message("/eos/cue", "fire", 5, float(n)))
        bundle.add_content(osc_message("/eos/cue", "fire", 6, float(n + 50)))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.sendto(bundle.build().dgram, ("127.0.0.1", bridge.osc_port))
        sock.close()
        listener.wait_for("/eos/cue", ["fire", 5, float(n)])
        listener.wait_for("/eos/cue", ["fire", 6, float(n + 50)])


def test_another_sites_page_and_a_key_no_longer_valid_cannot_drive_the_show(
    start_bridge: Callable[..., QueryBridge], ws_peers: Callable[..., WsPeer]
) -> None:
    bridge = start_bridge(server=f'key = "{CONTROL_KEY}"\n')
    # A page of another site open in a phone's browser: refused, as Socket.IO refuses it.
    with pytest.raises(websocket.WebSocketBadStatusException, match="403"):
        websocket.create_connection(
            f"ws://127.0.0.1:{bridge.port}/?key={CONTROL_KEY}", origin="http://evil.example", timeout=10
        )
    # The keys change while a client is connected with the old one: it is let go.
    client = ws_peers(bridge.port, key=CONTROL_KEY)
    client.send_osc("/slider1", 3.0)
    wait_until(lambda: bridge.proc.get_json("/api/values", key=CONTROL_KEY)["slider1"] == 3, what="set")
    config = bridge.proc.config
    config.write_text(config.read_text(encoding="utf-8").replace(CONTROL_KEY, "a-new-key-2"), encoding="utf-8")
    wait_until(lambda: client._thread is not None and not client._thread.is_alive(), what="the old key's client let go")
    assert "its key is no longer valid" in bridge.proc.output()


def test_host_info_follows_a_moved_osc_port_and_an_added_control_changes_no_other_path(
    start_bridge: Callable[..., QueryBridge], ws_peers: Callable[..., WsPeer]
) -> None:
    bridge = start_bridge()
    listener = ws_peers(bridge.port)
    config = bridge.proc.config
    moved = free_port(socket.SOCK_DGRAM)
    text = config.read_text(encoding="utf-8").replace(f"127.0.0.1:{bridge.osc_port}", f"127.0.0.1:{moved}")
    config.write_text(text, encoding="utf-8")
    wait_until(lambda: bridge.get("/?HOST_INFO")[1]["OSC_PORT"] == moved, what="HOST_INFO's OSC port moved")
    # One control added at the top of the list: one path added, none "changed" (its place in the
    # file moved every other control's, which is no business of a client's).
    at = text.index("[[controls]]")
    config.write_text(text[:at] + '[[controls]]\nid = "first"\ntype = "range"\n\n' + text[at:], encoding="utf-8")
    wait_until(lambda: any(t.get("COMMAND") == "PATH_ADDED" for t in listener.texts), what="PATH_ADDED")
    assert [t for t in listener.texts if t.get("COMMAND") == "PATH_CHANGED"] == []
    assert [t["DATA"] for t in listener.texts if t.get("COMMAND") == "PATH_ADDED"] == ["/first"]


def test_a_client_moving_back_to_a_value_is_not_taken_for_an_echo_of_its_neighbours(
    start_bridge: Callable[..., QueryBridge], ws_peers: Callable[..., WsPeer]
) -> None:
    """Two apps on one laptop, one listening, and a desk on that laptop too: a client's fader goes
    20, 30, 20. Its last 20 is the very frame just sent to its neighbour (and the message just sent
    to the desk), from the same host: it was dropped as their echo, and the value stayed on 30."""
    desk = OscPeer()
    try:
        bridge = start_bridge(targets=f'"127.0.0.1:{desk.port}"')
        mover, listener = ws_peers(bridge.port), ws_peers(bridge.port)
        listener.command("LISTEN", "/slider1")
        wait_listening(bridge.proc, "/slider1", 1)
        for count, value in enumerate((20.0, 30.0, 20.0), start=1):
            mover.send_osc("/slider1", value)
            wait_until(lambda n=count: len(desk.got("/slider1")) == n, what=f"move {count} at the desk")
        wait_until(lambda: len(listener.got("/slider1")) == 3, what="three moves at the listener")
        assert bridge.proc.get_json("/api/values")["slider1"] == 20
        assert desk.got("/slider1") == listener.got("/slider1") == [[20.0], [30.0], [20.0]]
        assert bridge.proc.get_json("/healthz")["adapters"]["oscquery"]["echoes"] == 0
    finally:
        desk.close()
