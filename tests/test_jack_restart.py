"""The JACK server stops and starts again under the bridge: MIDI comes back by itself.

Each test has a JACK server of its own (the module-scoped one of the other
MIDI tests must not go away under them), stopped and started again under
the same name. The test's own MIDI ports are closed before each restart:
while any JACK client of a process is open, libjack keeps talking to the
old server, for the test as for the bridge.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import mido
import pytest

from tests.helpers import CONTROLS_TOML, BridgeProcess, Client, unavailable, wait_until, write_config
from tests.jack import JackServer, MidiPeer, jack_available, unique_name
from tests.test_midi import cc, jumping, latest_status, link_up, midi_health, midi_table, states

Start = Callable[..., BridgeProcess]
Connect = Callable[[str], Client]


@pytest.fixture
def own_jack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[JackServer]:
    """A JACK server of this test's own, which the test may stop and start again."""
    reason = jack_available()
    if reason is not None:
        unavailable(reason)
    server = JackServer(tmp_path)
    monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def peers() -> Iterator[list[MidiPeer]]:
    """MIDI peers made by the test (one per JACK server run); each closed afterwards."""
    made: list[MidiPeer] = []
    yield made
    for peer in made:
        peer.close()


def both_ways(
    server: BridgeProcess, client: Client, names: dict[str, str], peers: list[MidiPeer], value: int, out: mido.Message
) -> MidiPeer:
    """Once the bridge's virtual ports are up on the (new) server: a peer on them, a CC in
    moving slider1 to its top, and ``value`` set on the page coming out as ``out``."""
    latest_status(client, ("connected", "connected"))
    peer = MidiPeer()
    peers.append(peer)
    peer.connect(names["input"], names["output"])
    link_up(server, peer)
    peer.send(cc(1, 1, 127))
    client.wait_value("slider1", 50)
    client.send("slider1", value)
    peer.wait_for(out)
    return peer


def restart(jack: JackServer, peer: MidiPeer, how: str) -> None:
    """Stop the server (SIGTERM, or SIGKILL: no goodbye), after closing the test's own clients; start it again."""
    peer.close()
    if how == "kill":
        jack.kill()
    else:
        jack.stop()


@pytest.mark.parametrize("how", ["terminate", "kill"])
def test_named_ports_come_back_with_every_value_after_a_jack_restart(
    how: str,
    own_jack: JackServer,
    peers: list[MidiPeer],
    tmp_path: Path,
    bridge_factory: Start,
    client_factory: Connect,
) -> None:
    device_out, device_in = unique_name("dev-out"), unique_name("dev-in")
    peer = MidiPeer()
    peers.append(peer)
    peer.plug_in(device_out, device_in)
    config = write_config(
        tmp_path, extra=midi_table(device_out, device_in, virtual=False), controls=jumping(CONTROLS_TOML)
    )
    server = bridge_factory(config, env={"JACK_DEFAULT_SERVER": own_jack.name})
    client = client_factory(server.url)
    latest_status(client, ("connected", "connected"))
    link_up(server, peer)

    restart(own_jack, peer, how)
    # Noticed: both ports missing, in /healthz and for the browsers, and said once.
    status = latest_status(client, ("missing", "missing"))
    assert status["input"]["port"] is None and status["output"]["port"] is None
    assert states(midi_health(server)) == ("missing", "missing")
    # The rest of the bridge runs on.
    client.send("slider1", 30)
    wait_until(lambda: server.get_json("/api/values")["slider1"] == 30, what="slider1 set while JACK is away")

    own_jack.start()
    back = time.monotonic()
    peer = MidiPeer()
    peers.append(peer)
    peer.plug_in(device_out, device_in)
    latest_status(client, ("connected", "connected"))
    # Reported, not asserted (speed is measured, not tested): the watcher looks once a second.
    print(f"JACK {how}: MIDI connected again {time.monotonic() - back:.2f} s after the server was ready")
    # Every value, including what changed while JACK was away (30 of 50 -> 76).
    peer.wait_for(cc(1, 1, 76))
    # A CC in and a CC out on the new server.
    peer.send(cc(1, 2, 127))
    client.wait_value("slider2", 50)
    client.send("slider1", 10)
    peer.wait_for(cc(1, 1, 25))

    log = server.output()
    assert log.count("went away") == 1
    assert log.count("is back") == 1
    assert "Traceback" not in log


def test_virtual_ports_are_made_again_after_a_jack_restart(
    own_jack: JackServer, peers: list[MidiPeer], tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    names = {"input": unique_name("sb-in"), "output": unique_name("sb-out")}
    config = write_config(
        tmp_path, extra=midi_table(names["input"], names["output"], virtual=True), controls=jumping(CONTROLS_TOML)
    )
    server = bridge_factory(config, env={"JACK_DEFAULT_SERVER": own_jack.name})
    client = client_factory(server.url)
    peer = MidiPeer()
    peers.append(peer)
    peer.connect(names["input"], names["output"])
    link_up(server, peer)

    for round_ in range(2):  # and again: nothing of the first restart is left behind
        restart(own_jack, peer, "terminate")
        latest_status(client, ("missing", "missing"))
        own_jack.start()
        peer = both_ways(server, client, names, peers, 10 + round_, cc(1, 1, 25 + 3 * round_))
    log = server.output()
    assert log.count("went away") == 2 and log.count("is back") == 2
    assert "Traceback" not in log


def test_a_jack_server_started_after_the_bridge_is_found(
    peers: list[MidiPeer],
    tmp_path: Path,
    bridge_factory: Start,
    client_factory: Connect,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Started in the wrong order on a show day: the bridge first, JACK a little later."""
    reason = jack_available()
    if reason is not None:
        unavailable(reason)
    jack = JackServer(tmp_path)  # not started yet
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack.name)  # for the test's own MIDI ports
    names = {"input": unique_name("sb-in"), "output": unique_name("sb-out")}
    config = write_config(
        tmp_path, extra=midi_table(names["input"], names["output"], virtual=True), controls=jumping(CONTROLS_TOML)
    )
    server = bridge_factory(config, env={"JACK_DEFAULT_SERVER": jack.name})
    try:
        client = client_factory(server.url)
        # Looked for, not given up: both ports missing, said once, and the rest runs.
        latest_status(client, ("missing", "missing"))
        wait_until(lambda: f"no JACK server {jack.name!r} yet" in server.output(), what="the warning")
        client.send("slider1", 30)
        wait_until(lambda: server.get_json("/api/values")["slider1"] == 30, what="slider1 set without JACK")

        jack.start()
        both_ways(server, client, names, peers, 10, cc(1, 1, 25))
        log = server.output()
        assert log.count("no JACK server") == 1 and log.count("is there") == 1
        assert "MIDI is off" not in log and "Traceback" not in log
    finally:
        for peer in peers:
            peer.close()
        peers.clear()
        server.stop()
        jack.stop()
