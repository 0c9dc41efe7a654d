"""The MIDI adapter on real MIDI ports: a JACK server with its dummy driver.

The bridge runs as a subprocess on the test's own JACK server; the test
plays the controller with python-rtmidi ports of its own, and watches the
browsers with real Socket.IO clients.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mido
import pytest
import rtmidi

from bridge.config import MidiConfig
from bridge.echoes import WINDOW
from bridge.errors import AmbiguousPort
from bridge.hub import Hub
from bridge.midi.adapter import MidiAdapter
from bridge.midi.system import Inlet, MidiSystem, _RtmidiInlet, match_port
from tests.helpers import CONTROLS_TOML, DEADLINE, BridgeProcess, Client, wait_until, write_config
from tests.jack import BACKEND, JackServer, MidiPeer, unique_name

Start = Callable[..., BridgeProcess]
Connect = Callable[[str], Client]

# A range on a note takes the velocity: a drum pad.
PAD_TOML = """
[[controls]]
id = "pad"
type = "range"
label = "Pad"
min = 0
max = 1
value = 0
midi = { channel = 10, note = 36 }
"""


def jumping(controls: str) -> str:
    """``controls`` with every range set to follow the hardware at once.

    These tests are about the MIDI path itself, so their CC faders jump
    rather than wait to be picked up (tests/test_learn.py covers that).
    """
    return controls.replace('type = "range"\n', 'type = "range"\ntakeover = "jump"\n')


def midi_table(input_name: str, output_name: str, virtual: bool, backend: str = BACKEND) -> str:
    return (
        f'[midi]\nbackend = "{backend}"\ninput = "{input_name}"\noutput = "{output_name}"\n'
        f"virtual = {'true' if virtual else 'false'}\n"
    )


def cc(channel: int, number: int, value: int) -> mido.Message:
    """A Control Change on ``channel`` 1-16, as the config writes channels."""
    return mido.Message("control_change", channel=channel - 1, control=number, value=value)


def note_on(channel: int, note: int, velocity: int) -> mido.Message:
    return mido.Message("note_on", channel=channel - 1, note=note, velocity=velocity)


def note_off(channel: int, note: int) -> mido.Message:
    return mido.Message("note_off", channel=channel - 1, note=note, velocity=0)


def bend(channel: int, pitch: int) -> mido.Message:
    return mido.Message("pitchwheel", channel=channel - 1, pitch=pitch)


def midi_health(server: BridgeProcess) -> dict[str, Any]:
    health: dict[str, Any] = server.get_json("/healthz")["adapters"]["midi"]
    return health


def states(status: dict[str, Any]) -> tuple[str, str]:
    return status["input"]["state"], status["output"]["state"]


def latest_status(client: Client, wanted: tuple[str, str]) -> dict[str, Any]:
    """Wait until the newest ``midi status`` a client got has both ports in ``wanted`` states."""

    def newest() -> dict[str, Any] | None:
        pushed = client.of("midi status")
        return pushed[-1] if pushed and states(pushed[-1]) == wanted else None

    result: dict[str, Any] = wait_until(newest, what=f"midi status {wanted}")
    return result


# -- fixtures ------------------------------------------------------------------------
def virtual_midi_bridge(
    jack: JackServer, peer: MidiPeer, tmp_path: Path, bridge_factory: Start, controls: str, extra: str = ""
) -> tuple[BridgeProcess, dict[str, str]]:
    """A bridge on ``jack`` with virtual ports of its own and ``controls``, the peer connected to them and
    MIDI flowing both ways (slider2, which ``controls`` must have on CC 2, left at 0); the ports' names."""
    names = {"input": unique_name("sb-in"), "output": unique_name("sb-out")}
    config = write_config(
        tmp_path, extra=midi_table(names["input"], names["output"], virtual=True) + extra, controls=controls
    )
    server = bridge_factory(config, env={"JACK_DEFAULT_SERVER": jack.name})
    peer.connect(names["input"], names["output"])
    link_up(server, peer)
    return server, names


@pytest.fixture
def virtual_bridge(
    jack: JackServer, peer: MidiPeer, tmp_path: Path, bridge_factory: Start
) -> tuple[BridgeProcess, dict[str, str]]:
    """A bridge with virtual ports of its own, and the peer connected to them."""
    return virtual_midi_bridge(jack, peer, tmp_path, bridge_factory, jumping(CONTROLS_TOML + PAD_TOML))


def link_up(server: BridgeProcess, peer: MidiPeer) -> None:
    """Wait until MIDI flows both ways, leaving slider2 at its default 0.

    A JACK connection takes effect a cycle or more after it is made; what is
    sent before is dropped. So send until something arrives.
    """
    sent = 0

    def bridge_to_peer() -> bool:
        nonlocal sent
        sent += 1
        server.put_json("/api/values/slider2", {"value": 1 + sent % 2})
        return any(m.type == "control_change" and m.control == 2 for m in peer.received())

    def peer_to_bridge() -> bool:
        peer.send(cc(1, 2, 0))
        return bool(server.get_json("/api/values")["slider2"] == 0)

    wait_until(bridge_to_peer, what="MIDI from the bridge")
    wait_until(peer_to_bridge, what="MIDI to the bridge")
    peer.clear()


# -- messages in -----------------------------------------------------------------------
def test_messages_in_move_the_right_controls_by_the_scaled_amount(
    virtual_bridge: tuple[BridgeProcess, dict[str, str]], peer: MidiPeer, client_factory: Connect
) -> None:
    server, names = virtual_bridge
    client = client_factory(server.url)
    status = latest_status(client, ("connected", "connected"))
    assert status == {
        "input": {"name": names["input"], "port": names["input"], "state": "connected"},
        "output": {"name": names["output"], "port": names["output"], "state": "connected"},
    }

    peer.send(cc(1, 1, 102))  # 102/127 of 0-50, on step 1
    client.wait_value("slider1", 40)
    peer.send(cc(1, 1, 127))
    client.wait_value("slider1", 50)
    peer.send(cc(2, 7, 95), cc(2, 39, 127))  # 14-bit: MSB then LSB, 12287 of 16383
    client.wait_value("fine", -1.0 + 2.0 * 12287 / 16383)
    peer.send(cc(2, 7, 0), cc(2, 39, 0))
    client.wait_value("fine", -1.0)
    peer.send(bend(3, 8191))
    client.wait_value("bend", 1.0)
    peer.send(bend(3, 0))  # the wheel at rest: 8192 of 16383
    client.wait_value("bend", 8192 / 16383)
    peer.send(note_on(10, 36, 127))  # a range on a note takes the velocity
    client.wait_value("pad", 1.0)

    peer.send(note_on(1, 60, 100))  # toggle: a press flips it
    client.wait_value("toggle1", 1)
    peer.send(note_off(1, 60), note_on(1, 60, 0))  # releases leave it
    peer.send(note_on(1, 61, 90))  # button: pressed is 1
    client.wait_value("button1", 1)
    assert server.get_json("/api/values")["toggle1"] == 1
    peer.send(note_on(1, 60, 64))
    client.wait_value("toggle1", 0)
    peer.send(note_on(1, 61, 0))  # velocity 0 is a release
    client.wait_value("button1", 0)

    values = server.get_json("/api/values")
    assert values | {"txt1": ""} == {
        "slider1": 50,
        "slider2": 0,
        "fine": -1.0,
        "bend": 8192 / 16383,
        "txt1": "",
        "toggle1": 0,
        "button1": 0,
        "pad": 1.0,
    }


# -- changes out -----------------------------------------------------------------------
def test_socket_and_http_changes_come_out_scaled(
    virtual_bridge: tuple[BridgeProcess, dict[str, str]], peer: MidiPeer, client_factory: Connect
) -> None:
    server, _ = virtual_bridge
    client = client_factory(server.url)
    client.wait_event("snapshot")

    client.send("slider1", 10)  # 10/50 of 127 = 25.4
    peer.wait_for(cc(1, 1, 25))
    assert server.put_json("/api/values/slider2", {"value": 50})[0] == 200
    peer.wait_for(cc(1, 2, 127))
    client.send("fine", 0.5)  # 12287 = MSB 95, LSB 127, in that order
    peer.wait_for(cc(2, 7, 95), cc(2, 39, 127))
    client.send("bend", 0.25)  # 4096 of 16383, centred on 8192
    peer.wait_for(bend(3, 4096 - 8192))
    client.send("toggle1", 1)
    peer.wait_for(note_on(1, 60, 127))
    client.send("toggle1", 0)
    peer.wait_for(note_off(1, 60))
    client.send("pad", 0.5)
    peer.wait_for(note_on(10, 36, 64))


def test_midi_born_changes_are_not_echoed_and_the_same_midi_value_is_not_resent(
    virtual_bridge: tuple[BridgeProcess, dict[str, str]], peer: MidiPeer, client_factory: Connect
) -> None:
    server, _ = virtual_bridge
    client = client_factory(server.url)
    client.wait_event("snapshot")

    peer.send(cc(1, 1, 102), cc(2, 7, 64), cc(2, 39, 1))  # (8193: 8192 is the number fine's 0 goes out as)
    client.wait_value("slider1", 40)
    client.wait_value("fine", -1.0 + 2.0 * 8193 / 16383)
    # A marker sent after them: had they been echoed, they would have come first.
    server.put_json("/api/values/slider2", {"value": 20})
    peer.wait_for(cc(1, 2, 51))
    assert [m for m in peer.received() if m.type == "control_change" and m.control in (1, 7, 39)] == []

    # The bridge sends 99; the controller moves back to 102; a browser asking
    # for 99 again must be sent, though 99 was the last number the bridge sent.
    server.put_json("/api/values/slider1", {"value": 39})
    peer.wait_for(cc(1, 1, 99))
    peer.send(cc(1, 1, 102))
    wait_until(lambda: server.get_json("/api/values")["slider1"] == 40, what="slider1 back at 40")
    peer.clear()
    server.put_json("/api/values/slider1", {"value": 39})
    peer.wait_for(cc(1, 1, 99))

    peer.clear()
    client.send("fine", 0.5)
    peer.wait_for(cc(2, 7, 95), cc(2, 39, 127))
    # 0.50001 is a new value but the same 14-bit number (12287): not sent again.
    assert server.put_json("/api/values/fine", {"value": 0.50001}) == (200, {"id": "fine", "value": 0.50001})
    server.put_json("/api/values/slider2", {"value": 0})
    peer.wait_for(cc(1, 2, 0))
    assert [m.bytes() for m in peer.received() if m.type == "control_change" and m.channel == 1] == [
        cc(2, 7, 95).bytes(),
        cc(2, 39, 127).bytes(),
    ]


def test_a_control_renamed_in_the_editor_keeps_the_motor_fader_where_it_is(
    virtual_bridge: tuple[BridgeProcess, dict[str, str]], peer: MidiPeer
) -> None:
    """The rename made a new control at its default and the reload sent that to the device (CC 1 to 64, its
    default 25: a motor fader thrown there, a synth's level jumping) before the value was carried over to it
    and sent again."""
    server, _ = virtual_bridge
    assert server.put_json("/api/values/slider1", {"value": 40})[0] == 200
    peer.wait_for(cc(1, 1, 102))
    peer.clear()
    version = server.request_json("GET", "/api/config")[1]["version"]
    status, answer = server.request_json(
        "PATCH", "/api/config/controls/slider1", {"id": "lead"}, headers={"If-Match": version}
    )
    assert status == 200, answer
    assert server.get_json("/api/values")["lead"] == 40
    server.put_json("/api/values/slider2", {"value": 20})  # a marker: what the rename sent came before it
    peer.wait_for(cc(1, 2, 51))
    assert [m.value for m in peer.received() if m.type == "control_change" and m.control == 1] in ([], [102])


def test_a_motor_fader_reporting_back_the_number_it_was_sent_changes_nothing(
    virtual_bridge: tuple[BridgeProcess, dict[str, str]], peer: MidiPeer, client_factory: Connect
) -> None:
    """0.3 goes out as 14-bit 12287 + ...; a motor fader that reports that number back set 0.29997 (what the
    number stands for): the pages and the desk saw the value creep, and a value kept from before a reload was
    taken as moved. The same number as the value's is no news."""
    server, _ = virtual_bridge
    client = client_factory(server.url)
    assert server.put_json("/api/values/fine", {"value": 0.3})[0] == 200
    peer.wait_for(cc(2, 7, 83), cc(2, 39, 25))  # 0.3 of -1..1 is 10649 of 16383: MSB 83, LSB 25
    client.wait_value("fine", 0.3)  # (the page has it: nothing of it is on its way)
    client.clear()
    heard = time.monotonic()
    wait_until(lambda: time.monotonic() - heard > 2 * WINDOW, what="past the echo window (the motor's travel)")
    peer.send(cc(2, 7, 83), cc(2, 39, 25))  # reported back, later than any echo
    peer.send(cc(1, 2, 7))  # a marker behind it: slider2 to 7 * 50 / 127 = 2.76 -> 3
    client.wait_value("slider2", 3)
    peer.send(cc(2, 7, 83))  # and again, its LSB a read later (a DIN cable: a millisecond a message)
    peer.send(cc(1, 2, 6))  # (a marker: 2.36 -> 2)
    client.wait_value("slider2", 2)
    peer.send(cc(2, 39, 25))
    peer.send(cc(1, 2, 7))
    client.wait_value("slider2", 3)
    assert server.get_json("/api/values")["fine"] == 0.3
    assert [e for e in client.of("update value") if e["who"] == "fine"] == []


def test_notes_on_toggles_and_buttons_light_the_controller(
    virtual_bridge: tuple[BridgeProcess, dict[str, str]], peer: MidiPeer, client_factory: Connect
) -> None:
    server, _ = virtual_bridge
    client = client_factory(server.url)
    client.wait_event("snapshot")

    peer.send(note_on(1, 60, 100))
    peer.wait_for(note_on(1, 60, 127))  # the toggle is on: LED on
    peer.send(note_off(1, 60), note_on(1, 60, 100))
    peer.wait_for(note_on(1, 60, 127), note_off(1, 60))  # flipped off: LED off
    peer.send(note_on(1, 61, 30))
    peer.wait_for(note_on(1, 61, 127))  # a button lights while held
    client.wait_value("button1", 1)  # and browsers show it held
    peer.send(note_off(1, 61))
    peer.wait_for(note_off(1, 61))
    client.wait_value("button1", 0)


# -- ports that come and go ------------------------------------------------------------------
def test_device_unplugged_and_plugged_back_is_picked_up_with_every_value(
    jack: JackServer, peer: MidiPeer, tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    device_out, device_in = unique_name("device-out"), unique_name("device-in")
    peer.plug_in(device_out, device_in)
    config = write_config(
        tmp_path, extra=midi_table(device_out, device_in, virtual=False), controls=jumping(CONTROLS_TOML)
    )
    server = bridge_factory(config, env={"JACK_DEFAULT_SERVER": jack.name})
    client, other = client_factory(server.url), client_factory(server.url)

    status = latest_status(client, ("connected", "connected"))
    assert device_out in status["input"]["port"] and device_in in status["output"]["port"]
    # Opened: the controller is sent every value at once (slider1 25 of 50 -> 64).
    peer.wait_for(cc(1, 1, 64), cc(1, 2, 0), note_off(1, 60), note_off(1, 61))
    peer.send(cc(1, 2, 127))
    other.wait_value("slider2", 50)

    peer.unplug()
    latest_status(client, ("missing", "missing"))
    assert states(midi_health(server)) == ("missing", "missing")
    # Nothing else stops meanwhile.
    client.send("slider1", 30)
    other.wait_value("slider1", 30)
    assert server.put_json("/api/values/toggle1", {"value": 1})[0] == 200
    client.wait_value("toggle1", 1)

    peer.clear()
    peer.plug_in(device_out, device_in)
    latest_status(client, ("connected", "connected"))
    # Back: motorized faders and LEDs match what changed while it was away.
    peer.wait_for(cc(1, 1, 76), cc(1, 2, 127), note_on(1, 60, 127))
    peer.send(cc(1, 2, 0))
    other.wait_value("slider2", 0)
    log = server.output()
    # At start the log lists the ports found and the ones opened.
    assert f"inputs found: ['{status['input']['port']}'" in log
    assert f"MIDI input: opened {status['input']['port']!r}" in log
    assert log.count(f"MIDI input {status['input']['port']!r} disappeared") == 1
    assert log.count(f"MIDI output {status['output']['port']!r} disappeared") == 1


def test_named_device_missing_at_start_is_logged_once_and_found_later(
    jack: JackServer, peer: MidiPeer, tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    device_out, device_in = unique_name("late-out"), unique_name("late-in")
    config = write_config(tmp_path, extra=midi_table(device_out, device_in, virtual=False))
    server = bridge_factory(config, env={"JACK_DEFAULT_SERVER": jack.name})
    client = client_factory(server.url)

    status = latest_status(client, ("missing", "missing"))
    assert status["input"] == {"name": device_out, "port": None, "state": "missing"}
    # It keeps looking, and says so once, not once a look.
    wait_until(lambda: midi_health(server)["scans"] >= 3, what="three looks for the ports")
    log = server.output()
    assert log.count(f"MIDI input {device_out!r} not found") == 1
    assert log.count(f"MIDI output {device_in!r} not found") == 1
    client.send("slider1", 5)
    wait_until(lambda: server.get_json("/api/values")["slider1"] == 5, what="slider1 stored")

    # Two ports that both contain the name: neither is taken, and the log says which.
    decoys = [peer.backend.open_output(f"{device_out}-{n}", virtual=True) for n in ("a", "b")]
    try:
        wait_until(lambda: f"MIDI input: {device_out!r} matches 2 ports" in server.output(), what="ambiguity logged")
        assert f"{device_out}-a, " in server.output() and f"{device_out}-b" in server.output()
        assert states(midi_health(server)) == ("missing", "missing")
    finally:
        for decoy in decoys:
            decoy.close()

    peer.plug_in(device_out, device_in)
    latest_status(client, ("connected", "connected"))
    peer.wait_for(cc(1, 1, 13))  # 5/50 of 127 = 12.7
    peer.send(note_on(1, 61, 100))
    client.wait_value("button1", 1)


#: A backend no machine has: MIDI is off (a JACK backend without its server is looked for instead).
NO_SUCH_BACKEND = "mido.backends.rtmidi/NO_SUCH_API"


def test_without_a_midi_system_midi_is_off_and_the_rest_runs(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    config = write_config(tmp_path, extra=midi_table("bridge", "bridge", virtual=True, backend=NO_SUCH_BACKEND))
    server = bridge_factory(config)
    client, other = client_factory(server.url), client_factory(server.url)

    status = latest_status(client, ("off", "off"))
    assert status["input"] == {"name": "bridge", "port": None, "state": "off"}
    assert midi_health(server) == {
        "backend": NO_SUCH_BACKEND,
        "virtual": True,
        "scans": 0,
        "budget": 1000,
        "held_out": 0,
        "received": 0,
        "sent": 0,
        "echoes": 0,
        "input": {"name": "bridge", "port": None, "state": "off"},
        "output": {"name": "bridge", "port": None, "state": "off"},
    }
    client.send("slider1", 33)
    other.wait_value("slider1", 33)
    assert server.put_json("/api/values/toggle1", {"value": 1}) == (200, {"id": "toggle1", "value": 1})
    assert server.output().count("MIDI is off") == 1


@pytest.mark.unit
@pytest.mark.parametrize("backend", ["mido.backends.nonesuch", "mido.backends.rtmidi/NO_SUCH_API"])
def test_an_unusable_backend_turns_midi_off_with_one_warning(
    hub: Hub, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    pushed: list[tuple[str, Any]] = []
    adapter = MidiAdapter(hub, MidiConfig(backend=backend), push=lambda event, payload: pushed.append((event, payload)))
    adapter.start()
    try:
        off = {"name": "bridge", "port": None, "state": "off"}
        assert [p for p in pushed if p[0] == "midi status"] == [("midi status", {"input": off, "output": off})]
        assert states(adapter.describe()) == ("off", "off")
        assert [r.levelname for r in caplog.records if "MIDI is off" in r.getMessage()] == ["WARNING"]
        assert backend in caplog.text
    finally:
        adapter.stop()


# -- port names, without ports ----------------------------------------------------------------
ALSA_NAMES = [
    "Midi Through:Midi Through Port-0 14:0",
    "nanoKONTROL2:nanoKONTROL2 MIDI 1 20:0",
    "X-Touch:X-Touch MIDI 1 24:0",
    "X-Touch Extender:X-Touch Extender MIDI 1 28:0",
    "RtMidiOut Client:RtMidi output 130:0",
]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("wanted", "found"),
    [
        ("X-Touch:X-Touch MIDI 1 24:0", "X-Touch:X-Touch MIDI 1 24:0"),  # exact
        ("nanoKONTROL2", "nanoKONTROL2:nanoKONTROL2 MIDI 1 20:0"),  # a unique part
        ("nanokontrol", "nanoKONTROL2:nanoKONTROL2 MIDI 1 20:0"),  # in any case
        ("Extender", "X-Touch Extender:X-Touch Extender MIDI 1 28:0"),
        ("Launchpad", None),
        ("RtMidi", None),  # rtmidi's own connection ports are never a device
    ],
)
def test_port_names_match_exactly_or_by_a_unique_part(wanted: str, found: str | None) -> None:
    assert match_port(wanted, ALSA_NAMES) == found


@pytest.mark.unit
def test_an_ambiguous_port_name_lists_the_candidates() -> None:
    with pytest.raises(AmbiguousPort) as err:
        match_port("x-touch", ALSA_NAMES)
    assert err.value.candidates == ALSA_NAMES[2:4]
    assert str(err.value) == (
        "'x-touch' matches 2 ports: X-Touch:X-Touch MIDI 1 24:0, X-Touch Extender:X-Touch Extender MIDI 1 28:0"
    )


def test_output_budget_sends_the_latest_value_per_control_and_always_the_last(
    jack: JackServer, peer: MidiPeer, tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    server, _ = virtual_midi_bridge(jack, peer, tmp_path, bridge_factory, jumping(CONTROLS_TOML), "budget = 50\n")
    browser = client_factory(server.url)
    for value in range(1, 51):  # a fast sweep: 50 changes at once, 5 messages of budget at hand
        browser.send("slider1", value)
    peer.wait_for(cc(1, 1, 127))  # slider1 at 50 of 0-50: the last value always goes out
    sent = [m.value for m in peer.received() if m.type == "control_change" and m.control == 1]
    assert sent[-1] == 127 and len(sent) < 50  # in-between values gave way to newer ones
    assert midi_health(server)["held_out"] > 0
    assert midi_health(server)["budget"] == 50


def test_a_small_budget_still_sends_a_change_of_several_messages(
    jack: JackServer, peer: MidiPeer, tmp_path: Path, bridge_factory: Start
) -> None:
    """budget = 30 made a burst of 3 messages: an NRPN (4) never went, nor anything after it, for good, and
    nothing said so (a reviewer's case). A burst holds one change's messages at least."""
    nrpn = '\n[[controls]]\nid = "cut"\ntype = "range"\nmidi = { channel = 3, nrpn = 1234 }\ntakeover = "jump"\n'
    controls = jumping(CONTROLS_TOML) + nrpn
    server, _ = virtual_midi_bridge(jack, peer, tmp_path, bridge_factory, controls, "budget = 30\n")
    assert server.put_json("/api/values/cut", {"value": 1})[0] == 200
    assert server.put_json("/api/values/slider2", {"value": 50})[0] == 200
    peer.wait_for(cc(3, 99, 1234 >> 7), cc(3, 98, 1234 & 0x7F), cc(3, 6, 127), cc(3, 38, 127), cc(1, 2, 127))


# -- the surface's types on MIDI -----------------------------------------------------------
SURFACE_MIDI = """
[[controls]]
id = "slider2"
type = "range"
min = 0
max = 50
step = 1
midi = { channel = 1, cc = 2 }
takeover = "jump"

[[controls]]
id = "pan"
type = "knob"
min = -1
max = 1
takeover = "jump"
midi = { channel = 1, cc = 20 }

[[controls]]
id = "list"
type = "select"
options = ["Main", "Sound", "Video"]
midi = { channel = 1, cc = 21 }

[[controls]]
id = "rec"
type = "led"
midi = { channel = 1, note = 40, feedback = true }

[[controls]]
id = "go"
type = "button"
mode = "trigger"
midi = { channel = 1, note = 41 }

[[controls]]
id = "send"
type = "range"
takeover = "jump"
midi = { channel = 1, cc = 23, range = [0, 100] }

[[controls]]
id = "colour"
type = "button"
on = 5
off = 1
midi = { channel = 1, note = 42 }
"""


def test_knobs_selects_leds_triggers_and_midi_ranges_both_ways(
    jack: JackServer, peer: MidiPeer, tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    server, _ = virtual_midi_bridge(jack, peer, tmp_path, bridge_factory, SURFACE_MIDI)
    client = client_factory(server.url)
    client.wait_event("snapshot")

    peer.send(cc(1, 20, 127))  # a knob is a range
    client.wait_value("pan", 1.0)
    peer.send(cc(1, 21, 64))  # a select: its options share the range
    client.wait_value("list", "Sound")
    server.put_values(list="Video")
    peer.wait_for(cc(1, 21, 127))
    server.put_values(rec=1)  # an LED lights the controller's pad
    peer.wait_for(note_on(1, 40, 127))
    peer.send(note_on(1, 41, 100))  # a trigger pad fires
    client.wait_event("update value", lambda e: e == {"who": "go", "data": 1})
    assert server.get_json("/api/values")["go"] == 0  # and stores nothing
    server.put_values(send=1)  # a MIDI range of 0-100
    peer.wait_for(cc(1, 23, 100))
    peer.send(cc(1, 23, 50))
    client.wait_value("send", 0.5)
    server.put_values(colour=1)  # numeric on/off are the velocities (a pad's colours)
    peer.wait_for(note_on(1, 42, 5))
    server.put_values(colour=0)
    peer.wait_for(note_on(1, 42, 1))


def test_a_trigger_pad_goes_out_as_a_hit_at_every_press(
    jack: JackServer, peer: MidiPeer, tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    # A GO is an event: the same press twice is two presses, and a note must not hang on a synth.
    server, _ = virtual_midi_bridge(jack, peer, tmp_path, bridge_factory, SURFACE_MIDI)
    client = client_factory(server.url)
    client.wait_event("snapshot")

    hit = (note_on(1, 41, 127), note_off(1, 41))
    for _ in range(3):
        server.put_values(go=1)
    peer.wait_for(*hit, *hit, *hit)
    peer.send(note_on(1, 41, 100))  # the pad itself: its light goes out again (feedback)
    client.wait_event("update value", lambda e: e == {"who": "go", "data": 1})
    peer.wait_for(*hit, *hit, *hit, *hit)
    peer.clear()
    client.send("go", 1)  # and a press on the page after it still goes out
    peer.wait_for(*hit)
    assert [m for m in peer.received() if m.type == "note_on" and m.note == 41] == [note_on(1, 41, 127)]


def _read_all(inlet: Inlet, count: int) -> list[mido.Message]:
    got: list[mido.Message] = []

    def done() -> bool:
        got.extend(inlet.pending())
        return len(got) >= count

    wait_until(done, what=f"{count} messages from {inlet.name!r}")
    return got


def test_a_jack_input_leaves_its_messages_in_rtmidis_queue_no_python_on_the_jack_thread(
    jack: JackServer, peer: MidiPeer
) -> None:
    # A callback would run on the JACK process thread and wait there for the GIL (bench/jack_gil.py):
    # the bridge's JACK input sets none, and rtmidi keeps each message in its own queue.
    system = MidiSystem(BACKEND)
    name = unique_name("queued")
    inlet = system.open_input(name, virtual=True)
    try:
        assert not inlet.wakes
        sink = wait_until(lambda: next((s for s in peer.sinks() if s.endswith(f":{name}")), None), what="the port")
        peer.output = peer.backend.open_output(sink)
        sent = [cc(1, 7, v) for v in range(128)]
        peer.send(*sent)
        # The first straight from rtmidi's queue (with a callback set, rtmidi would hand it to the callback).
        first = wait_until(inlet._rt.get_message, what="a message in rtmidi's queue")
        assert first[0] == sent[0].bytes()
        assert [m.bytes() for m in _read_all(inlet, len(sent) - 1)] == [m.bytes() for m in sent[1:]]
    finally:
        inlet.close()
        system.close()


def test_an_input_that_wakes_its_reader_hands_every_message_over_in_order(jack: JackServer, peer: MidiPeer) -> None:
    # The way ALSA, CoreMIDI and Windows inputs are read (their callbacks run on a thread of the MIDI
    # system's own, which may wait): a callback appends and wakes the reader. JACK is the MIDI system
    # this machine has, so the same rtmidi callback runs here on JACK's thread.
    import rtmidi

    name = unique_name("woken")
    inlet = _RtmidiInlet(rtmidi, rtmidi.API_UNIX_JACK, name, virtual=True, wake=True)
    try:
        assert inlet.wakes
        sink = wait_until(lambda: next((s for s in peer.sinks() if s.endswith(f":{name}")), None), what="the port")
        peer.output = peer.backend.open_output(sink)
        woken = threading.Event()

        def reader() -> None:
            inlet.wait(3600)  # returns when the first message writes to the pipe, or never
            woken.set()

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        sent = [cc(2, 1, v % 128) for v in range(1000)]
        peer.send(*sent)
        assert woken.wait(DEADLINE), "the reader was not woken by the messages"
        assert [m.bytes() for m in _read_all(inlet, len(sent))] == [m.bytes() for m in sent]
    finally:
        inlet.close()


ECHOED_SHOW = """
[[controls]]
id = "tog"
type = "toggle"
midi = { channel = 1, note = 60 }

[[controls]]
id = "pick"
type = "range"
min = 0
max = 100
takeover = "jump"
midi = { channel = 1, cc = 1 }

[[repeat]]
n = 20

[[repeat.controls]]
id = "k{n}"
type = "range"
takeover = "jump"
midi = { channel = 2, cc = "{n}" }
"""


def test_a_device_that_echoes_keeps_the_saved_values_and_every_value_sent_keeps_the_budget(
    jack: JackServer, peer: MidiPeer, tmp_path: Path, bridge_factory: Start
) -> None:
    """A controller with MIDI echo on (it sends back all it gets), found at start with values saved:
    the toggle was turned off by its own note-on and the fader set to its 7-bit echo (19.685 for 20),
    and the 22 values went out in one burst, past a budget of 10 a second (a DIN interface, a slow
    motorized surface)."""
    device_out, device_in = unique_name("echo-out"), unique_name("echo-in")
    peer.plug_in(device_out, device_in)
    output = peer.output
    peer.input.set_callback(lambda event, _data: output.send(mido.Message.from_bytes(event[0])))  # its MIDI echo
    try:
        (tmp_path / "state.json").write_text(json.dumps({"values": {"tog": 1, "pick": 20}}), encoding="utf-8")
        midi = midi_table(device_out, device_in, virtual=False) + "budget = 10\n"
        server = bridge_factory(
            write_config(tmp_path, extra=midi, controls=ECHOED_SHOW), env={"JACK_DEFAULT_SERVER": jack.name}
        )
        wait_until(lambda: midi_health(server)["echoes"] >= 22, what="every value sent, and its echo known")
        assert server.get_json("/api/values")["tog"] == 1  # not turned off by its own note-on
        assert server.get_json("/api/values")["pick"] == 20  # not its 7-bit echo
        assert midi_health(server)["held_out"] > 0  # 22 at once, over a budget of 10 a second: some waited
    finally:
        peer.input.cancel_callback()


def test_a_device_gone_and_back_between_two_looks_is_connected_again(
    jack: JackServer, peer: MidiPeer, tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    """A soft synth or a controller's app restarted in a blink: its ports went and came back, under the
    same names, between two of the bridge's looks (one a second). JACK dropped the bridge's connections
    with the old ports; the bridge saw the same names and said "connected", deaf and mute for good."""
    device_out, device_in = unique_name("blink-out"), unique_name("blink-in")
    peer.plug_in(device_out, device_in)
    config = write_config(
        tmp_path, extra=midi_table(device_out, device_in, virtual=False), controls=jumping(CONTROLS_TOML)
    )
    server = bridge_factory(config, env={"JACK_DEFAULT_SERVER": jack.name})
    client = client_factory(server.url)
    latest_status(client, ("connected", "connected"))
    peer.wait_for(cc(1, 1, 64))  # every value sent at once
    peer.unplug()
    peer.plug_in(device_out, device_in)  # back at once, the same names
    # ... and a session manager puts back a patch of its own on it: the port is not left unconnected.
    daw = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="daw")
    daw.open_virtual_port("daw-in")
    try:
        source = next(p for p in peer.sources() if p.endswith(":" + device_out))
        sink = wait_until(lambda: next((p for p in peer.sinks() if p.endswith(":daw-in")), None), what="daw-in")
        subprocess.run(
            ["jack_connect", source, sink], check=True, timeout=10, env={**os.environ, "JACK_DEFAULT_SERVER": jack.name}
        )
        peer.clear()
        server.put_json("/api/values/slider1", {"value": 10})
        peer.wait_for(cc(1, 1, 25))  # heard again: connected anew (and sent every value)

        def heard_from() -> bool:  # (its input may be connected a moment after its output: a knob turned on)
            peer.send(cc(1, 2, 127))
            return any(u == {"who": "slider2", "data": 50} for u in client.of("update value"))

        wait_until(heard_from, what="slider2 == 50 from the device")  # and heard from
    finally:
        daw.close_port()
        daw.delete()
