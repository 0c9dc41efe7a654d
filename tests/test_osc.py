"""OSC end to end: real UDP on 127.0.0.1, liblo's oscsend/oscdump, a real server process."""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.config import OscTarget
from bridge.osc import udp
from bridge.osc.udp import UdpTarget
from tests.helpers import DEADLINE, BridgeProcess, Client, free_port, wait_until, write_config
from tests.osc_tools import OscDump, OscPeer, oscsend

Start = Callable[..., BridgeProcess]
Connect = Callable[[str], Client]


def osc_bridge(tmp_path: Path, start: Start, targets: list[str]) -> tuple[BridgeProcess, int]:
    port = free_port(socket.SOCK_DGRAM)
    listed = ", ".join(targets)
    config = write_config(tmp_path, extra=f'[osc]\nlisten = "127.0.0.1:{port}"\ntargets = [{listed}]\n')
    return start(config), port


def test_oscsend_sets_controls_and_clients_see_it(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    proc, port = osc_bridge(tmp_path, bridge_factory, [])
    a = client_factory(proc.url)
    oscsend(port, "/slider1", "i", 30)
    a.wait_value("slider1", 30)
    oscsend(port, "/slider2", "f", 12.4)
    a.wait_value("slider2", 12)  # stepped to the control's grid
    oscsend(port, "/txt1", "s", "from the desk")
    a.wait_value("txt1", "from the desk")
    oscsend(port, "/toggle1", "T")
    a.wait_value("toggle1", 1)
    oscsend(port, "/toggle1", "F")
    a.wait_value("toggle1", 0)
    values = proc.get_json("/api/values")
    assert (values["slider1"], values["slider2"], values["txt1"]) == (30, 12, "from the desk")


def test_socket_change_reaches_oscdump_and_python_osc(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump, peers: Callable[[], OscPeer]
) -> None:
    peer = peers()
    proc, _ = osc_bridge(tmp_path, bridge_factory, [f'"127.0.0.1:{dump.port}"', f'"127.0.0.1:{peer.port}"'])
    a = client_factory(proc.url)
    a.send("slider1", 17)
    dump.wait_for("/slider1 f 17.000000")
    assert peer.wait_for("/slider1") == [17.0]
    a.send("txt1", "hello")
    dump.wait_for('/txt1 s "hello"')
    a.send("toggle1", 1)
    dump.wait_for("/toggle1 i 1")
    assert peer.wait_for("/toggle1") == [1]
    proc.put_json("/api/values/button1", {"value": 1})
    dump.wait_for("/button1 i 1")


def test_no_echo_to_the_sending_peer_but_other_targets_hear_it(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, peers: Callable[[], OscPeer]
) -> None:
    desk, other = peers(), peers()
    proc, port = osc_bridge(tmp_path, bridge_factory, [f'"127.0.0.1:{desk.port}"', f'"127.0.0.1:{other.port}"'])
    a = client_factory(proc.url)
    desk.send(port, "/slider1", 8.0)  # from the port the desk also listens on
    a.wait_value("slider1", 8)
    assert other.wait_for("/slider1") == [8.0]
    a.send("slider2", 3)  # a later change both hear: the echo would have come before it
    desk.wait_for("/slider2")
    other.wait_for("/slider2")
    assert desk.got("/slider1") == []


def test_nested_bundles_and_patterns(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, peers: Callable[[], OscPeer]
) -> None:
    peer = peers()
    proc, port = osc_bridge(tmp_path, bridge_factory, [])
    a = client_factory(proc.url)

    def msg(address: str, arg: object) -> bytes:
        builder = OscMessageBuilder(address=address)
        builder.add_arg(arg)
        return bytes(builder.build().dgram)

    def bundle(*contents: bytes) -> bytes:
        body = b"".join(struct.pack(">i", len(c)) + c for c in contents)
        return b"#bundle\x00" + struct.pack(">q", 1) + body

    inner = bundle(msg("/slider2", 5), msg("/slider1", 6))
    peer.send_raw(port, bundle(msg("/slider1", 1), inner, msg("/txt1", "bundled")))
    a.wait_value("txt1", "bundled")
    values = proc.get_json("/api/values")
    assert (values["slider1"], values["slider2"]) == (6, 5)  # applied in order: the inner 6 came after 1

    oscsend(port, "/slider[12]", "i", 42)
    wait_until(lambda: [proc.get_json("/api/values")[k] for k in ("slider1", "slider2")] == [42, 42], what="pattern")
    oscsend(port, "/{slider1,txt1}", "s", "both?")  # only the text control takes a string
    a.wait_value("txt1", "both?")
    assert proc.get_json("/api/values")["slider1"] == 42


def test_a_pattern_built_to_backtrack_stalls_nothing(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, peers: Callable[[], OscPeer]
) -> None:
    # A regex translated naively from these patterns backtracks for minutes against the test
    # controls' addresses, on the one thread that serves every page: a 64-byte datagram froze the show.
    proc, port = osc_bridge(tmp_path, bridge_factory, [])
    client = client_factory(proc.url)
    client.wait_event("snapshot")
    for pattern in ("/" + "*" * 60 + "x", "/" + "?*" * 30 + "x", "/" + "*s" * 30 + "x"):
        oscsend(port, pattern, "i", 1)
    oscsend(port, "/slider*", "i", 7)  # a pattern that names them still works, right after
    client.wait_value("slider1", 7)
    client.wait_value("slider2", 7)


def test_sync_to_sender_and_to_a_named_address(
    tmp_path: Path, bridge_factory: Start, peers: Callable[[], OscPeer], dump: OscDump
) -> None:
    desk = peers()
    proc, port = osc_bridge(tmp_path, bridge_factory, [])
    proc.put_json("/api/values/slider1", {"value": 11})
    proc.put_json("/api/values/txt1", {"value": "cue 7"})
    desk.send(port, "/bridge/sync")
    assert desk.wait_for("/slider1") == [11.0]
    assert desk.wait_for("/txt1") == ["cue 7"]
    assert desk.wait_for("/toggle1") == [0]
    desk.send(port, "/bridge/sync", f"127.0.0.1:{dump.port}")
    dump.wait_for("/slider1 f 11.000000")
    dump.wait_for('/txt1 s "cue 7"')
    proc.put_json("/api/values/slider1", {"value": 12})
    desk.send(port, "/bridge/sync", f"localhost:{dump.port}")  # a name of the asker's host
    dump.wait_for("/slider1 f 12.000000")
    # Not a reflector: every value to a third host, at a 36-byte datagram's request, is refused.
    desk.send(port, "/bridge/sync", "192.0.2.1:9000")
    wait_until(lambda: "192.0.2.1:9000 is neither the asker's host nor a target" in proc.output())
    # A flood of syncs: 2 a second per destination (bursts of 4), not a message per control each.
    for _ in range(50):
        desk.send(port, "/bridge/sync")
    desk.send(port, "/slider2", 5)  # after the flood, on the same socket: the flood is handled
    wait_until(lambda: proc.get_json("/api/values")["slider2"] == 5, what="the move after the syncs")
    wait_until(lambda: "more than 2 a second to 127.0.0.1; dropped" in proc.output(), what="the syncs dropped, said")
    # The first sync, some of the 50 (all would take 23 s); the answers may still be on their way to the desk.
    wait_until(lambda: len(desk.got("/slider1")) >= 2, what="a sync of the flood answered")
    assert len(desk.got("/slider1")) < 51
    # A new source port for each: the same host's budget (liblo's oscsend sends from a new port each time).
    before = len(dump.messages())
    for _ in range(15):
        oscsend(port, "/bridge/sync", "s", f"127.0.0.1:{dump.port}")
    oscsend(port, "/slider2", "i", 6)
    wait_until(lambda: proc.get_json("/api/values")["slider2"] == 6, what="the move after the syncs")
    assert len(dump.messages()) - before < 15 * 7  # not every sync answered (each sends 7 values)
    assert proc.output().count("sending") < 8  # the line each sync gave is said every 5 s at most


def test_junk_never_stops_the_listener(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, peers: Callable[[], OscPeer]
) -> None:
    peer = peers()
    proc, port = osc_bridge(tmp_path, bridge_factory, [])
    a = client_factory(proc.url)
    good = OscMessageBuilder(address="/slider1")
    good.add_arg(44.0)
    whole = bytes(good.build().dgram)
    rng = __import__("random").Random(1234)
    for i in range(3000):
        kind = i % 4
        if kind == 0:
            data = os.urandom(rng.randrange(1, 200))
        elif kind == 1:
            data = whole[: rng.randrange(0, len(whole))]  # truncated, the float cut off
        elif kind == 2:
            data = b"/slider1\x00\x00\x00\x00,z\x00\x00" + os.urandom(4)  # unknown type tag
        else:
            data = b"/nowhere\x00\x00\x00\x00,i\x00\x00\x00\x00\x00\x01"
        peer.send_raw(port, data)
    peer.send(port, "/slider2", 3)  # handled after every datagram above: one socket, in order
    a.wait_value("slider2", 3)
    assert proc.get_json("/api/values")["slider1"] == 25  # a cut-off float never read as 0.0
    peer.send_raw(port, whole)
    a.wait_value("slider1", 44)
    a.send("slider2", 9)
    wait_until(lambda: proc.get_json("/api/values")["slider2"] == 9, what="sockets still served")
    health = proc.get_json("/healthz")["adapters"]["osc"]
    # The kernel may drop some of a burst; everything that arrived but the two good ones was dropped.
    assert health["received"] > 2 and health["dropped"] == health["received"] - 2
    warnings = [line for line in proc.output().splitlines() if "WARNING" in line and "OSC" in line]
    assert 0 < len(warnings) < 50  # rate-limited per address and reason, not one per datagram


def test_a_sync_to_an_ipv4_address_or_a_name_from_a_dual_stack_listen_arrives(
    tmp_path: Path, bridge_factory: Start, peers: Callable[[], OscPeer], dump: OscDump
) -> None:
    # listen = "[::]:port": the values of a sync to "127.0.0.1:port" went nowhere (an IPv4 address
    # on an IPv6 socket), and one to "localhost:port" failed ("Name or service not known").
    port = free_port(socket.SOCK_DGRAM)
    proc = bridge_factory(write_config(tmp_path, extra=f'[osc]\nlisten = "[::]:{port}"\ntargets = []\n'))
    proc.put_json("/api/values/slider1", {"value": 13})
    desk = peers()
    desk.send(port, "/bridge/sync", f"127.0.0.1:{dump.port}")
    dump.wait_for("/slider1 f 13.000000")
    proc.put_json("/api/values/slider1", {"value": 14})
    desk.send(port, "/bridge/sync", f"localhost:{dump.port}")
    dump.wait_for("/slider1 f 14.000000")


def test_a_type_python_osc_does_not_read_is_said_once_with_what_to_send(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    # An OSC 1.0 symbol (S), sent by liblo here: python-osc wrote "Unhandled parameter type: S" on
    # the root logger for each message, and the bridge added "expected one argument, got 0". Such a
    # packet is now dropped before python-osc reads it, as malformed, with what to send instead.
    proc, port = osc_bridge(tmp_path, bridge_factory, [])
    a = client_factory(proc.url)
    for _ in range(20):
        oscsend(port, "/txt1", "S", "cue")
    oscsend(port, "/txt1", "s", "cue 2")
    a.wait_value("txt1", "cue 2")
    log = proc.output()
    assert 0 < log.count("type tag 'S' is not read (send the value as s, i, f or T/F)") < 20  # every 5 s at most
    assert "Unhandled parameter type" not in log and "expected one argument" not in log


def test_unreachable_and_named_targets_do_not_disturb_the_rest(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump, peers: Callable[[], OscPeer]
) -> None:
    named = peers()
    closed = free_port(socket.SOCK_DGRAM)  # nothing listens: ICMP port unreachable
    proc, _ = osc_bridge(
        tmp_path,
        bridge_factory,
        [f'"127.0.0.1:{closed}"', f'"localhost:{named.port}"', f'"127.0.0.1:{dump.port}"'],
    )
    a = client_factory(proc.url)
    for value in range(1, 6):
        a.send("slider1", value)
        dump.wait_for(f"/slider1 f {value}.000000")
        assert named.wait_for("/slider1", lambda args, v=value: args == [float(v)]) == [float(value)]
    targets = {t["address"]: t for t in proc.get_json("/healthz")["adapters"]["osc"]["targets"]}
    assert targets[f"127.0.0.1:{closed}"]["state"] == "unreachable"
    assert targets[f"localhost:{named.port}"]["state"] == "ok"
    assert proc.output().count(") unreachable: ") == 1, proc.output()  # reported once, not per send


@pytest.mark.unit
def test_a_udp_target_is_reachable_again_only_once_its_datagrams_stop_being_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A UDP send succeeds whether anything listens or not; only the ICMP "port unreachable" that comes
    # back on the target's connected socket tells. With nothing listening, a send after a quiet spell
    # must not make it "reachable again" (with no desk on the default config's 127.0.0.1:9000, the log
    # said "reachable again" and "unreachable" at each gesture after a pause).
    monkeypatch.setattr(udp, "RECOVERY_QUIET", 0.0)  # the quiet spell, without waiting for it
    port = free_port(socket.SOCK_DGRAM)
    target = UdpTarget(OscTarget("127.0.0.1", port))
    assert target.resolve() and target.sock is not None
    builder = OscMessageBuilder(address="/slider1")
    builder.add_arg(1.0)
    packet = bytes(builder.build().dgram)

    def refused() -> bool:
        # As the adapter's receive loop reads a target's socket: the refusal is an error on it.
        if select.select([target.sock], [], [], 0.05)[0]:
            try:
                target.sock.recv(65536, socket.MSG_DONTWAIT)
            except OSError as err:
                target.failed(err)
        return target.state == "unreachable"

    try:
        target.raw(packet)
        wait_until(refused, what="the first refusal")
        errors = target.errors
        target.raw(packet)  # nothing listens still
        assert target.state == "unreachable"
        wait_until(lambda: refused() and target.errors > errors, what="this datagram's refusal")
        assert not target.recovered(time.monotonic())
        assert target.state == "unreachable"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as desk:  # the desk is back
            desk.bind(("127.0.0.1", port))
            desk.settimeout(DEADLINE)
            target.raw(packet)
            assert desk.recv(65536) == packet
            assert target.recovered(time.monotonic())
            assert target.state == "ok"
    finally:
        target.close()


def test_per_target_type_and_prefix(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    target = f'{{ address = "127.0.0.1:{dump.port}", type = "int", prefix = "/stage" }}'
    proc, _ = osc_bridge(tmp_path, bridge_factory, [target])
    a = client_factory(proc.url)
    a.send("slider1", 33)
    dump.wait_for("/stage/slider1 i 33")
    a.send("toggle1", 1)
    dump.wait_for("/stage/toggle1 i 1")


def test_listen_port_in_use_is_said_clearly(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.helpers import ROOT

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        config = write_config(tmp_path, extra=f'[osc]\nlisten = "127.0.0.1:{port}"\n')
        result = subprocess.run(
            [sys.executable, "-m", "bridge", "--config", str(config), "--port", str(free_port())],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot listen for OSC on 127.0.0.1:{port}" in result.stderr and "[osc] listen" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_target_on_a_socket_of_its_own_never_stops_the_input(tmp_path: Path, bridge_factory: Start) -> None:
    """An IPv6 desk beside an IPv4 ``listen``: its own socket (the listening one cannot reach it).
    Its answer read, the input must go on: the reader once waited on that socket for ever (a
    blocking socket under gevent waits instead of saying it is empty), and no OSC came in again."""
    desk = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    desk.bind(("::1", 0))
    desk.settimeout(DEADLINE)
    try:
        proc, port = osc_bridge(tmp_path, bridge_factory, [f'"[::1]:{desk.getsockname()[1]}"'])
        (target,) = proc.get_json("/healthz")["adapters"]["osc"]["targets"]
        assert target["from_port"] != port, target  # a port of its own
        proc.put_json("/api/values/slider1", {"value": 7})
        data, sender = desk.recvfrom(65536)
        assert data.startswith(b"/slider1\x00"), data
        answer = OscMessageBuilder(address="/slider2")
        answer.add_arg(9.0)
        desk.sendto(answer.build().dgram, sender)  # the desk answers the port it was sent from
        wait_until(lambda: proc.get_json("/api/values")["slider2"] == 9, what="the desk's answer applied")
        for value in (11, 12):
            oscsend(port, "/slider1", "i", value)  # and the listening port still heard
            wait_until(lambda v=value: proc.get_json("/api/values")["slider1"] == v, what=f"slider1 = {value}")
    finally:
        desk.close()


def test_a_target_that_is_the_bridge_itself_is_named_and_never_loops(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    """A config mistake: the bridge's own listen address among its targets. What it sends there comes
    straight back; it is dropped, and the log says what to fix."""
    port = free_port(socket.SOCK_DGRAM)
    osc = f'[osc]\nlisten = "0.0.0.0:{port}"\ntargets = ["127.0.0.1:{port}"]\n'
    proc = bridge_factory(write_config(tmp_path, extra=osc))
    page = client_factory(proc.url)
    assert f"OSC target 127.0.0.1:{port} is this bridge's own OSC input" in proc.output()
    for value in (1, 2, 3):
        page.send("slider1", value)
    wait_until(lambda: proc.get_json("/healthz")["adapters"]["osc"]["echoes"] == 3, what="three come back, dropped")
    health = proc.get_json("/healthz")["adapters"]["osc"]
    assert health["received"] == 3 and health["targets"][0]["sent"] == 3, health
    assert proc.get_json("/api/values")["slider1"] == 3
