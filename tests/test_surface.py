"""The surface and its mapping on the real server: Socket.IO, OSC with liblo's oscsend/oscdump, HTTP.

Labels fed by a desk, trigger buttons, string and empty payloads, selects,
meters, curves over UDP, argument templates, float32 as written, and the
desk's channel names reaching clients that join before and after.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import BridgeProcess, Client, free_port, wait_until, write_config
from tests.osc_tools import OscDump, OscPeer, oscsend

Start = Callable[..., BridgeProcess]
Connect = Callable[[str], Client]

SURFACE = """
[[controls]]
id = "cue_name"
type = "label"
label = "Cue"
value = "Preshow"
osc = "/cue/name"

[[controls]]
id = "go"
type = "button"
mode = "trigger"
osc = "/go"
on = []

[[controls]]
id = "stop"
type = "button"
osc = "/stop"
on = "STOP"
off = "idle"

[[controls]]
id = "list"
type = "select"
options = ["Main", "Sound", { value = 3, label = "Video" }]

[[controls]]
id = "level"
type = "meter"
min = -60
max = 6

[[controls]]
id = "rec"
type = "led"

[[controls]]
id = "pan"
type = "knob"
min = -1
max = 1

[[controls]]
id = "db"
type = "range"
min = -90
max = 10
step = 0.1
value = -90
osc = { address = "/ch/01/mix/fader", curve = [[-90, 0.0], [-60, 0.0625], [-30, 0.25], [-10, 0.5], [10, 1.0]] }

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

[[controls]]
id = "typed"
type = "range"
max = 10
osc = { address = "/typed", args = ["cue", 5, "{value}"], types = "sid" }

[[controls]]
id = "gain"
type = "range"
min = -1000
max = 100000000

[[repeat]]
n = 16

[[repeat.controls]]
id = "fader{n}"
type = "range"
orientation = "vertical"
group = "Ch {n:02}"
osc = "/ch/{n:02}/mix/01/level"
label_from = "/ch/{n:02}/config/name"
color_from = { address = "/ch/{n:02}/config/color", map = { "1" = "#ff3030", "2" = "#30ff30" } }
"""


def surface(tmp_path: Path, start: Start, *targets: int) -> tuple[BridgeProcess, int]:
    port = free_port(socket.SOCK_DGRAM)
    listed = ", ".join(f'"127.0.0.1:{t}"' for t in targets)
    osc = f'[osc]\nlisten = "127.0.0.1:{port}"\ntargets = [{listed}]\n'
    return start(write_config(tmp_path, extra=osc, controls=SURFACE)), port


def test_a_label_set_by_an_osc_string_reaches_every_client_and_a_page_cannot_set_it(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    proc, port = surface(tmp_path, bridge_factory)
    a, b = client_factory(proc.url), client_factory(proc.url)
    oscsend(port, "/cue/name", "s", "Act 2: storm")
    a.wait_value("cue_name", "Act 2: storm")
    b.wait_value("cue_name", "Act 2: storm")
    oscsend(port, "/cue/name", "f", 12.5)  # any argument type: a number shows as a number
    a.wait_value("cue_name", 12.5)
    a.send("cue_name", "from a page")
    rejected = a.wait_event("rejected")
    assert rejected["who"] == "cue_name" and rejected["reason"].startswith("read-only")
    assert proc.get_json("/api/values")["cue_name"] == 12.5
    proc.put_values(cue_name="set over HTTP")  # HTTP may
    b.wait_value("cue_name", "set over HTTP")


def test_a_trigger_fires_on_press_only_and_a_late_joiner_is_not_sent_it(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    proc, _port = surface(tmp_path, bridge_factory, dump.port)
    a, b = client_factory(proc.url), client_factory(proc.url)
    a.send("go", 1)
    b.wait_value("go", 1)  # the other page sees the press
    dump.wait_for("/go")  # no argument
    a.send("go", 0)  # the release
    a.send("stop", 1)
    dump.wait_for('/stop s "STOP"')
    assert dump.messages().count("/go") == 1  # nothing on release
    assert all(not m.startswith("/go ") for m in dump.messages())
    late = client_factory(proc.url)
    snapshot = late.wait_event("snapshot")
    assert snapshot["values"]["go"] == 0  # nothing stored, nothing replayed
    assert proc.get_json("/api/values")["go"] == 0
    a.send("go", 1)
    wait_until(lambda: dump.messages().count("/go") == 2, what="a second press fires again")
    assert not [e for e in late.of("update value") if e["who"] == "go" and e["data"] == 0]


def test_string_and_empty_payloads_go_out_and_come_back(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump, peers: Callable[[], OscPeer]
) -> None:
    proc, port = surface(tmp_path, bridge_factory, dump.port)
    client = client_factory(proc.url)
    # The desk first: on loopback it shares its host with the dump, and the very message the
    # bridge sent there a moment before would be taken for its echo (bridge.echoes).
    desk = peers()
    desk.send(port, "/stop", "STOP")
    client.wait_value("stop", 1)
    desk.send(port, "/go")  # an empty message fires the trigger
    client.wait_event("update value", lambda e: e == {"who": "go", "data": 1})
    client.send("stop", 0)
    dump.wait_for('/stop s "idle"')
    client.send("stop", 1)
    dump.wait_for('/stop s "STOP"')


def test_select_meter_and_led_take_their_own_values_only(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    proc, port = surface(tmp_path, bridge_factory, dump.port)
    client = client_factory(proc.url)
    client.send("list", "Sound")
    dump.wait_for('/list s "Sound"')
    client.send("list", 3)
    dump.wait_for("/list i 3")
    client.send("list", "Lights")
    assert "one of the options" in client.wait_event("rejected", lambda r: r["who"] == "list")["reason"]
    oscsend(port, "/list", "s", "Lights")  # dropped, counted
    wait_until(lambda: proc.get_json("/healthz")["adapters"]["osc"]["dropped"] >= 1, what="the bad option counted")
    assert proc.get_json("/api/values")["list"] == 3
    oscsend(port, "/level", "f", -12.0)
    client.wait_value("level", -12.0)
    oscsend(port, "/level", "s", "loud")  # a string to a meter: nothing stored
    oscsend(port, "/level", "f", 99.0)  # clamped to its max
    client.wait_value("level", 6.0)
    status, body = proc.put_json("/api/values/level", {"value": "loud"})
    assert status == 400 and "expected a number" in body["error"]
    oscsend(port, "/rec", "T")
    client.wait_value("rec", 1)
    client.send("rec", 0)
    assert client.wait_event("rejected", lambda r: r["who"] == "rec")["reason"].startswith("read-only")
    oscsend(port, "/pan", "f", -0.25)
    client.wait_value("pan", -0.25)


def test_curves_templates_and_floats_over_udp(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    proc, port = surface(tmp_path, bridge_factory, dump.port)
    a, b = client_factory(proc.url), client_factory(proc.url)
    a.send("db", -10)
    dump.wait_for("/ch/01/mix/fader f 0.500000")  # -10 dB on the X32 law
    oscsend(port, "/ch/01/mix/fader", "f", 0.25)
    a.wait_value("db", -30.0)
    b.wait_value("db", -30.0)
    a.send("cue5", 40)
    dump.wait_for('/eos/cue sif "fire" 5 40.000000')
    a.send("typed", 2.5)
    dump.wait_for('/typed sid "cue" 5 2.500000')
    oscsend(port, "/eos/cue", "sif", "fire", 6, 70.0)  # only the control whose constants match
    a.wait_value("cue6", 70)
    assert proc.get_json("/api/values")["cue5"] == 40
    oscsend(port, "/eos/cue", "sif", "fire", 9, 1.0)  # no control takes these: dropped and counted
    wait_until(lambda: proc.get_json("/healthz")["adapters"]["osc"]["dropped"] >= 1, what="the stray cue counted")
    for sent, read in (("8.871", 8.871), ("0.1", 0.1), ("1e-7", 1e-7), ("16777217", 16777216.0)):
        oscsend(port, "/gain", "f", sent)
        a.wait_value("gain", read)
        assert proc.get_json("/api/values")["gain"] == read


def test_the_desk_names_and_colours_reach_clients_before_and_after_and_are_never_echoed(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump, peers: Callable[[], OscPeer]
) -> None:
    proc, port = surface(tmp_path, bridge_factory, dump.port)
    early = client_factory(proc.url)
    desk = peers()
    names = {n: f"Singer {n}" for n in range(1, 17)}
    for n, name in names.items():
        desk.send(port, f"/ch/{n:02}/config/name", name)
    desk.send(port, "/ch/03/config/color", 1)
    desk.send(port, "/ch/04/config/color", "#3030FF")  # a colour as the argument

    def looks(client: Client) -> dict[str, dict[str, str]]:
        seen: dict[str, dict[str, str]] = {}
        for look in client.of("update look"):
            seen.setdefault(look["who"], {}).update({k: v for k, v in look.items() if k != "who"})
        return seen

    def all_named(client: Client) -> bool:
        seen = looks(client)
        return all(seen.get(f"fader{n}", {}).get("label") == name for n, name in names.items()) and (
            seen.get("fader3", {}).get("color") == "#ff3030" and seen.get("fader4", {}).get("color") == "#3030ff"
        )

    wait_until(lambda: all_named(early), what="names and colours at the early client")
    late = client_factory(proc.url)
    wait_until(lambda: all_named(late), what="names and colours replayed to the late client")
    page = proc.get_text("/")
    assert "Singer 7" in page and "#ff3030" in page  # the first paint has them too
    # Nothing of it went out again, to any target.
    early.send("fader1", 0.5)
    dump.wait_for("/ch/01/mix/01/level f 0.500000")
    assert not [m for m in dump.messages() if "/config/" in m]
    assert proc.get_json("/healthz")["adapters"]["osc"]["dropped"] == 0


NAMING = """
[[controls]]
id = "name1"
type = "text"
osc = "/ch/01/config/name"

[[controls]]
id = "fader1"
type = "range"
osc = "/ch/01/mix/fader"
label_from = "/ch/01/config/name"
"""


@pytest.mark.parametrize("echoing", [False, True])
def test_a_name_sent_to_the_desk_is_the_label_that_follows_it(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, echoing: bool
) -> None:
    """A page renames channel 1 on the desk (a text control at its name's address); the fader
    labelled from that address shows the new name. An X32 does not report a change to the client
    that made it (Maillot's unofficial X32 OSC protocol), so the name never came back; a desk
    that does sent it back, and that echo was dropped: the label stayed on the old name."""
    desk = OscPeer()
    port = free_port(socket.SOCK_DGRAM)
    osc = f'[osc]\nlisten = "127.0.0.1:{port}"\ntargets = ["127.0.0.1:{desk.port}"]\n'
    proc = bridge_factory(write_config(tmp_path, extra=osc, controls=NAMING))
    page, other = client_factory(proc.url), client_factory(proc.url)
    try:
        desk.send(port, "/ch/01/config/name", "Vox")  # the desk's name at start
        wait_until(lambda: {"who": "fader1", "label": "Vox"} in other.of("update look"), what="Vox")
        page.send("name1", "Kick")
        desk.wait_for("/ch/01/config/name", lambda a: a == ["Kick"])
        if echoing:
            desk.send(port, "/ch/01/config/name", "Kick")
            wait_until(lambda: proc.get_json("/healthz")["adapters"]["osc"]["echoes"] == 1, what="the echo")
        wait_until(lambda: {"who": "fader1", "label": "Kick"} in other.of("update look"), what="Kick at a page")
        assert "Kick" in proc.get_text("/")  # and on a page loaded now
    finally:
        desk.close()


PADS = """
[[controls]]
id = "pad"
type = "button"
osc = "/pad"
"""


def test_a_pad_held_by_a_browser_that_leaves_is_released_unless_another_holds_it(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    """A phone loses its Wi-Fi with a finger on a push pad: the finger lifts where the bridge cannot
    hear. The pad stayed down on the bridge, every page and the state file, for good."""
    proc = bridge_factory(write_config(tmp_path, controls=PADS))
    first, second, watcher = client_factory(proc.url), client_factory(proc.url), client_factory(proc.url)
    first.send("pad", 1)
    watcher.wait_value("pad", 1)
    second.send("pad", 1)  # two hands on it
    wait_until(lambda: proc.get_json("/healthz")["adapters"]["web"]["received"] == 2, what="the second press taken")
    first.close()  # the first phone is gone: the other still holds the pad
    wait_until(lambda: proc.get_json("/healthz")["adapters"]["web"]["clients"] == 2, what="the first one gone")
    second.close()
    watcher.wait_value("pad", 0)
    assert proc.output().count("left holding pad down: released") == 1
    assert proc.get_json("/api/values")["pad"] == 0


def test_a_pad_two_browsers_hold_stays_down_until_both_let_go(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    """The first to let go released it under the other's finger; it is told the pad is still down."""
    proc = bridge_factory(write_config(tmp_path, controls=PADS))
    first, second, watcher = client_factory(proc.url), client_factory(proc.url), client_factory(proc.url)
    first.send("pad", 1)
    watcher.wait_value("pad", 1)
    second.send("pad", 1)
    wait_until(lambda: proc.get_json("/healthz")["adapters"]["web"]["received"] == 2, what="the second press taken")
    first.clear()
    first.send("pad", 0)
    first.wait_value("pad", 1)  # (the bridge's answer: still down)
    assert proc.get_json("/api/values")["pad"] == 1 and watcher.of("update value")[-1]["data"] == 1
    second.send("pad", 0)
    watcher.wait_value("pad", 0)
    first.wait_value("pad", 0)


def test_a_browser_that_leaves_does_not_release_a_pad_released_and_pressed_again_elsewhere(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    """The page's press ended with a release from a desk, and the desk pressed the pad again: the
    page leaving has nothing to let go of. It released the desk's press."""
    port = free_port(socket.SOCK_DGRAM)
    proc = bridge_factory(write_config(tmp_path, extra=f'[osc]\nlisten = "127.0.0.1:{port}"\n', controls=PADS))
    page, watcher = client_factory(proc.url), client_factory(proc.url)
    page.send("pad", 1)
    watcher.wait_value("pad", 1)
    oscsend(port, "/pad", "i", 0)  # the desk releases it
    watcher.wait_value("pad", 0)
    oscsend(port, "/pad", "i", 1)  # and holds it down
    watcher.wait_value("pad", 1)
    page.close()
    wait_until(lambda: proc.get_json("/healthz")["adapters"]["web"]["clients"] == 1, what="the page gone")
    watcher.send("pad", 1)  # (a marker, after the page's leave was handled: the same value, no change)
    wait_until(lambda: proc.get_json("/healthz")["adapters"]["web"]["received"] == 2, what="the marker taken")
    assert "left holding" not in proc.output()
    assert proc.get_json("/api/values")["pad"] == 1
