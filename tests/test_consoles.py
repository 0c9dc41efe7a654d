"""Real consoles' ways on loopback: OSC over TCP in both framings, handshakes and keepalives, TCP clients.

The consoles are test peers written from their published behaviour
(tests/console_tools.py says which document each follows); liblo's
``oscsend osc.tcp://`` is a TCP client we did not write.
"""

from __future__ import annotations

import itertools
import json
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.config import load_config
from bridge.errors import ConfigError
from bridge.osc.fire import FIRE_WITHIN
from bridge.osc.tcp import SEND_TIMEOUT
from tests.console_tools import FakeX32, TcpConsole, build, slip
from tests.helpers import DEADLINE, BridgeProcess, Client, free_port, wait_until, write_config
from tests.osc_tools import OscDump, oscsend

Start = Callable[..., BridgeProcess]
Connect = Callable[[str], Client]

CONTROLS = """
[[controls]]
id = "level"
type = "range"
min = 0
max = 100
step = 1
osc = "/eos/sub/1"
[[controls]]
id = "cue"
type = "label"
osc = "/eos/out/active/cue/text"
[[controls]]
id = "txt"
type = "text"
"""


@pytest.fixture
def consoles() -> Iterator[Callable[..., TcpConsole]]:
    made: list[TcpConsole] = []

    def make(framing: str, port: int | None = None, reading: bool = True, **kwargs: Any) -> TcpConsole:
        console = TcpConsole(framing, port, reading, **kwargs).start()
        made.append(console)
        return console

    yield make
    for console in made:
        console.stop()


def bridge_config(tmp_path: Path, osc: str, controls: str = CONTROLS, server: str = "") -> Path:
    port = free_port(socket.SOCK_DGRAM)
    return write_config(tmp_path, extra=f'{server}[osc]\nlisten = "127.0.0.1:{port}"\n{osc}', controls=controls)


def target_state(proc: BridgeProcess) -> str:
    return str(proc.get_json("/healthz")["adapters"]["osc"]["targets"][0]["state"])


@pytest.mark.parametrize("framing", ["slip", "length"])
def test_a_tcp_target_gets_values_answers_and_survives_its_restart(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, consoles: Callable[..., TcpConsole], framing: str
) -> None:
    desk = consoles(framing)
    osc = (
        f'[[osc.targets]]\naddress = "127.0.0.1:{desk.port}"\ntransport = "tcp"\nframing = "{framing}"\n'
        'on_connect = [["/eos/subscribe", 1]]\n'
    )
    proc = bridge_factory(bridge_config(tmp_path, osc))
    client = client_factory(proc.url)
    desk.wait_connected()
    desk.wait_for("/eos/subscribe", [1])
    wait_until(lambda: target_state(proc) == "connected", what="the target connected in /healthz")
    client.send("level", 40)
    desk.wait_for("/eos/sub/1", [40.0])
    desk.send("/eos/out/active/cue/text", "1/5 Storm 0:05")  # what the desk says comes in as OSC
    client.wait_value("cue", "1/5 Storm 0:05")
    assert desk.got("/eos/out/active/cue/text") == []  # and is not sent back to it

    # The desk restarts: changes made meanwhile wait, the latest per control, and go out once, in order.
    desk.stop()
    wait_until(lambda: target_state(proc) == "down", what="the target down in /healthz")
    client.wait_event("osc status", lambda status: status["targets"][0]["state"] == "down")  # the page says so
    for value in (41, 55, 70):
        client.send("level", value)
    client.send("txt", "while away")
    before = len(desk.messages())
    back = consoles(framing, port=desk.port)
    back.wait_connected()
    back.wait_for("/eos/sub/1", [70.0])
    back.wait_for("/txt", ["while away"])
    assert back.messages()[0] == ("/eos/subscribe", [1])  # the hello first
    assert back.got("/eos/sub/1") == [[70.0]]  # the latest only: nothing older after it, nothing twice
    assert len(desk.messages()) == before
    wait_until(lambda: target_state(proc) == "connected", what="connected again")
    assert proc.get_json("/healthz")["adapters"]["osc"]["targets"][0]["connects"] == 2


def test_a_value_that_waited_for_a_tcp_desk_is_not_undone_by_its_answer_to_the_query(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, consoles: Callable[..., TcpConsole]
) -> None:
    """A desk down while a page moved a fader, then back: it was asked for that fader's value before
    being sent the newer one, and its answer (its value from before) was applied after: the page
    showed 0 and the desk 40, for good."""
    desk = consoles("slip", answers={"/eos/sub/1": 0.0, "/eos/out/active/cue/text": "1/1"})
    osc = f'[[osc.targets]]\naddress = "127.0.0.1:{desk.port}"\ntransport = "tcp"\nquery_on_connect = true\n'
    proc = bridge_factory(bridge_config(tmp_path, osc))
    client = client_factory(proc.url)
    client.wait_value("cue", "1/1")  # answered to the queries at start
    desk.stop()
    wait_until(lambda: target_state(proc) == "down", what="the desk down")
    client.send("level", 40)
    back = consoles("slip", port=desk.port, answers={"/eos/sub/1": 0.0, "/eos/out/active/cue/text": "1/2"})
    client.wait_value("cue", "1/2")  # asked again, answered
    back.wait_for("/eos/sub/1", [40.0])
    assert back.got("/eos/sub/1") == [[40.0]]  # not asked for the value that was on its way
    assert proc.get_json("/api/values")["level"] == 40


BUTTONS = """
[[controls]]
id = "bump"
type = "button"
osc = "/eos/sub/2/bump"
[[controls]]
id = "go"
type = "button"
mode = "trigger"
osc = "/eos/key/go_0"
"""


def test_a_tcp_desk_gets_every_press_and_release_and_no_cue_fired_late(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, consoles: Callable[..., TcpConsole]
) -> None:
    desk = consoles("slip")
    osc = f'targets = [{{ address = "127.0.0.1:{desk.port}", transport = "tcp" }}]\n'
    config = bridge_config(tmp_path, osc, CONTROLS + BUTTONS)
    proc = bridge_factory(config)
    client = client_factory(proc.url)
    desk.wait_connected()
    wait_until(lambda: target_state(proc) == "connected", what="the target connected in /healthz")
    # A tap in one bundle (a sub's bump on an Eos: press, release) is two messages, in order.
    bundle = OscBundleBuilder(IMMEDIATELY)
    for value in (1, 0):
        builder = OscMessageBuilder("/eos/sub/2/bump")
        builder.add_arg(value)
        bundle.add_content(builder.build())
    listen = load_config(config).osc
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        udp.sendto(bundle.build().dgram, (listen.listen_host, listen.listen_port))
    finally:
        udp.close()
    wait_until(lambda: len(desk.got("/eos/sub/2/bump")) == 2, what="press and release at the desk")
    assert desk.got("/eos/sub/2/bump") == [[1.0], [0.0]]
    for _ in range(3):
        client.send("go", 1)  # three GOs are three cues
    wait_until(lambda: len(desk.got("/eos/key/go_0")) == 3, what="three GOs at the desk")

    # A GO pressed while the desk is away is not fired when it is back: a cue fired late is worse.
    desk.stop()
    wait_until(lambda: target_state(proc) == "down", what="the target down in /healthz")
    client.send("go", 1)
    client.send("level", 33)
    # Taken before the desk is back (a page's events are applied in order): else the GO could
    # meet the new connection on a loaded machine, and the test would check nothing.
    wait_until(lambda: proc.get_json("/api/values")["level"] == 33, what="the GO and the level taken")
    back = consoles("slip", port=desk.port)
    back.wait_for("/eos/sub/1", [33.0])
    client.send("level", 34)
    back.wait_for("/eos/sub/1", [34.0])
    assert back.got("/eos/key/go_0") == []


def test_a_tcp_desk_that_asks_for_a_sync_gets_every_value(
    tmp_path: Path, bridge_factory: Start, consoles: Callable[..., TcpConsole]
) -> None:
    """The answer went to an outbox nobody emptied (the log said it was sent): a desk restarting asks once."""
    desk = consoles("length")
    osc = f'targets = [{{ address = "127.0.0.1:{desk.port}", transport = "tcp", framing = "length" }}]\n'
    proc = bridge_factory(bridge_config(tmp_path, osc))
    proc.put_values(level=42)
    desk.wait_for("/eos/sub/1", [42.0])
    desk.send("/bridge/sync")
    wait_until(lambda: len(desk.got("/eos/sub/1")) == 2, what="the sync's answer at the desk")
    assert desk.got("/eos/sub/1") == [[42.0], [42.0]]


def test_a_desk_under_a_prefix_is_asked_answers_and_is_synced_in_its_own_namespace(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, consoles: Callable[..., TcpConsole]
) -> None:
    desk = consoles("slip")
    dump = OscDump()
    try:
        osc = (
            f'targets = [{{ address = "127.0.0.1:{desk.port}", transport = "tcp", prefix = "/desk", '
            "query_on_connect = true }, "
            f'{{ address = "localhost:{dump.port}", prefix = "/stage", type = "int" }}]\n'
        )
        config = bridge_config(tmp_path, osc)
        proc = bridge_factory(config)
        client = client_factory(proc.url)
        client.wait_event("snapshot")
        desk.wait_for("/desk/eos/sub/1", [])  # asked under its prefix
        desk.send("/desk/eos/sub/1", 42.0)  # and answers under it: that is the control at /eos/sub/1
        client.wait_value("level", 42)
        # /bridge/sync to the second target as the config names it: its prefix and type.
        listen = load_config(config).osc
        oscsend(listen.listen_port, "/bridge/sync", "s", f"localhost:{dump.port}")
        dump.wait_for("/stage/eos/sub/1 i 42")
        assert "no control at this address" not in proc.output()
    finally:
        dump.close()


TEXTS = "".join(f'[[controls]]\nid = "t{i}"\ntype = "text"\n' for i in range(100))


def fill(proc: BridgeProcess, sender: Client, dump: OscDump, target: int) -> None:
    """Send 100 KB of text at a time (100 controls of ``TEXTS``: the latest of each goes out) until the kernel's
    buffers toward the desk that stopped reading (some MB) are full and its writer waits: a round taken in (the
    UDP target ``dump`` heard its last value), and nothing sent to ``target`` since the round before."""
    text = "x" * 1000
    rounds = itertools.count()

    def health() -> dict[str, Any]:
        return dict(proc.get_json("/healthz")["adapters"]["osc"]["targets"][target])

    def writer_waits() -> bool:
        before = health()["sent"]
        n = next(rounds)
        for i in range(100):
            sender.send(f"t{i}", f"{n} {text}")
        sender.send("level", 1 + n % 98)  # (the level at start is 0; 100 comes last)
        dump.wait_for(f"/eos/sub/1 f {1 + n % 98}.000000")
        after = health()
        return bool(after["sent"] == before and after["waiting"])

    wait_until(writer_waits, timeout=3 * DEADLINE, what="the stuck desk's writer waiting")


def test_a_go_that_waited_for_a_desk_that_stopped_reading_is_not_fired_when_it_reads_again(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, consoles: Callable[..., TcpConsole]
) -> None:
    """A desk froze (it takes nothing) with the chip still showing it connected; a GO pressed then waited
    for it, and fired when the desk came back (or, after a drop, on its new connection) seconds later."""
    stuck = consoles("slip", reading=False)
    dump = OscDump()
    try:
        osc = f'targets = ["127.0.0.1:{dump.port}", {{ address = "127.0.0.1:{stuck.port}", transport = "tcp" }}]\n'
        proc = bridge_factory(bridge_config(tmp_path, osc, CONTROLS + BUTTONS + TEXTS, server="max_rate = 100000\n"))
        sender = client_factory(proc.url)
        stuck.wait_connected()
        fill(proc, sender, dump, 1)
        sender.send("go", 1)
        wait_until(lambda: any(m.startswith("/eos/key/go_0") for m in dump.messages()), what="the GO out")
        pressed = time.monotonic()
        wait_until(lambda: time.monotonic() - pressed > FIRE_WITHIN, what="the GO older than a cue may be late")
        stuck.reading = True  # the desk is back
        sender.send("level", 99)
        stuck.wait_for("/eos/sub/1", [99.0])
        assert stuck.got("/eos/key/go_0") == []
        assert "not sent (a cue fired late is worse than none)" in proc.output()
    finally:
        dump.close()


def test_a_target_that_stops_reading_stalls_nobody_and_is_dropped(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, consoles: Callable[..., TcpConsole]
) -> None:
    stuck = consoles("slip", reading=False)
    dump = OscDump()
    try:
        keepalive = 'keepalive = { message = ["/ping"], every = 0.1 }'
        stuck_target = f'{{ address = "127.0.0.1:{stuck.port}", transport = "tcp", {keepalive} }}'
        osc = f'targets = ["127.0.0.1:{dump.port}", {stuck_target}]\n'
        proc = bridge_factory(bridge_config(tmp_path, osc, CONTROLS + TEXTS, server="max_rate = 100000\n"))
        sender, watcher = client_factory(proc.url), client_factory(proc.url)
        stuck.wait_connected()

        def stuck_target_health() -> dict[str, Any]:
            return dict(proc.get_json("/healthz")["adapters"]["osc"]["targets"][1])

        fill(proc, sender, dump, 1)
        sender.send("level", 100)  # a value the flood never sent
        watcher.wait_value("level", 100)
        dump.wait_for("/eos/sub/1 f 100.000000")
        assert proc.get_json("/healthz")["status"] == "ok"

        # A desk that takes nothing for SEND_TIMEOUT is dropped and connected again (its kernel takes
        # the new connection); meanwhile what waits for it is the latest per control and one keepalive.
        waiting: list[int] = []

        def reconnected() -> bool:
            target = stuck_target_health()
            waiting.append(target["waiting"])
            return bool(target["connects"] >= 2)

        wait_until(reconnected, timeout=SEND_TIMEOUT + DEADLINE, what="the stuck desk dropped and connected again")
        assert max(waiting) <= 102, waiting  # the latest of each control and one keepalive
        assert "took nothing for 10 s; connection dropped" in proc.output()  # the log says why
    finally:
        dump.close()


def test_tcp_clients_see_each_other_and_a_browser_never_their_own_echo(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    tcp_port = free_port()
    proc = bridge_factory(bridge_config(tmp_path, f'listen_tcp = "127.0.0.1:{tcp_port}"\n'))
    browser = client_factory(proc.url)
    slip_client = socket.create_connection(("127.0.0.1", tcp_port))
    length_client = socket.create_connection(("127.0.0.1", tcp_port))
    try:
        wait_until(lambda: proc.get_json("/healthz")["adapters"]["osc"]["tcp"]["clients"] == 2, what="2 clients")
        slip_client.sendall(slip(build("/eos/sub/1", 25.0)))
        browser.wait_value("level", 25)
        packet = build("/txt", "from length")
        length_client.sendall(struct.pack(">i", len(packet)) + packet)
        browser.wait_value("txt", "from length")
        browser.send("level", 60)
        heard_slip = read_slip(slip_client, lambda messages: ("/eos/sub/1", [60.0]) in messages)
        heard_length = read_length(length_client, lambda messages: ("/eos/sub/1", [60.0]) in messages)
        assert ("/txt", ["from length"]) in heard_slip  # each hears the other
        assert ("/eos/sub/1", [25.0]) in heard_length
        assert ("/eos/sub/1", [25.0]) not in heard_slip  # never its own change back
        assert ("/txt", ["from length"]) not in heard_length
        # liblo's oscsend speaks length-prefixed OSC over TCP: a client we did not write.
        subprocess.run(["oscsend", f"osc.tcp://127.0.0.1:{tcp_port}", "/txt", "s", "liblo"], check=True, timeout=10)
        browser.wait_value("txt", "liblo")
    finally:
        slip_client.close()
        length_client.close()


def test_a_tcp_client_streaming_flat_out_stalls_nobody(tmp_path: Path, bridge_factory: Start) -> None:
    # Reading a TCP stream that always has more waiting never waits: a reader that never let the
    # rest of the bridge run froze the pages, HTTP, UDP and MIDI for as long as the client sent.
    tcp_port = free_port()
    proc = bridge_factory(bridge_config(tmp_path, f'listen_tcp = "127.0.0.1:{tcp_port}"\n'))
    client = socket.create_connection(("127.0.0.1", tcp_port))
    packet = build("/eos/sub/1", 25.0)
    chunk = (struct.pack(">i", len(packet)) + packet) * 4096  # 90 KB of small messages
    stop = threading.Event()
    sent = [0]
    streaming = threading.Event()

    def stream() -> None:  # flat out, for at most a minute
        end = time.monotonic() + 60
        try:
            while not stop.is_set() and time.monotonic() < end:
                client.sendall(chunk)
                sent[0] += len(chunk)
                if sent[0] > 4_000_000:
                    streaming.set()  # more than the kernel's buffers: the bridge is reading it
        except OSError:
            pass
        finally:
            streaming.set()

    streamer = threading.Thread(target=stream, daemon=True)
    streamer.start()
    try:
        assert streaming.wait(DEADLINE)
        assert streamer.is_alive(), "the client stopped streaming before the check"
        with urllib.request.urlopen(proc.url + "/healthz", timeout=120) as resp:
            health = json.loads(resp.read())
        answered_while_streaming = streamer.is_alive()
        assert health["status"] == "ok"
        assert answered_while_streaming, "/healthz was answered only once the client stopped sending"
    finally:
        stop.set()
        streamer.join(timeout=DEADLINE)
        client.close()


def test_a_sync_over_tcp_sends_every_control_of_a_shared_address(tmp_path: Path, bridge_factory: Start) -> None:
    # Two Eos cue faders on /eos/cue, told apart by their constants (docs/mapping.md): a sync asked
    # over TCP sent only the last, as a client's unread answers were kept per address.
    cues = "".join(
        f'[[controls]]\nid = "cue{n}"\ntype = "range"\nmin = 0\nmax = 100\nvalue = {n}0\n'
        f'osc = {{ address = "/eos/cue", args = ["fire", {n}, "{{value}}"] }}\n\n'
        for n in (5, 6)
    )
    tcp_port = free_port()
    proc = bridge_factory(bridge_config(tmp_path, f'listen_tcp = "127.0.0.1:{tcp_port}"\n', controls=CONTROLS + cues))
    client = socket.create_connection(("127.0.0.1", tcp_port))
    try:
        client.sendall(slip(build("/bridge/sync")))
        both = [("/eos/cue", ["fire", 5, 50.0]), ("/eos/cue", ["fire", 6, 60.0])]
        heard = read_slip(client, lambda messages: all(cue in messages for cue in both))  # (times out at 15 s)
        assert all(cue in heard for cue in both), heard
    finally:
        client.close()
        assert proc.stop() == 0


def test_a_tcp_client_silent_at_first_gets_slip_until_it_speaks_and_its_own_framing_after(
    tmp_path: Path, bridge_factory: Start
) -> None:
    """A surface nobody touched for a second was sent SLIP (OSC 1.1's default) for the rest of its connection,
    though it then spoke OSC 1.0 (length-prefixed), which it cannot read (a reviewer's case)."""
    tcp_port = free_port()
    proc = bridge_factory(bridge_config(tmp_path, f'listen_tcp = "127.0.0.1:{tcp_port}"\n'))
    with socket.create_connection(("127.0.0.1", tcp_port), timeout=DEADLINE) as client:
        wait_until(lambda: proc.get_json("/healthz")["adapters"]["osc"]["tcp"]["clients"] == 1, what="connected")
        proc.put_values(level=5)
        assert client.recv(65536).startswith(b"\xc0")  # SLIP, once the second without a word passed
        packet = build("/eos/sub/1", 7.0)
        client.sendall(struct.pack(">i", len(packet)) + packet)
        wait_until(lambda: proc.get_json("/api/values")["level"] == 7, what="its move taken")
        proc.put_values(level=9)
        data = b""
        while build("/eos/sub/1", 9.0) not in data:
            data += client.recv(65536)
        # Length-framed, every message from its move on (its own 7 first: it crossed the 5 sent to it).
        framed = [build("/eos/sub/1", value) for value in (7.0, 9.0)]
        assert data == b"".join(struct.pack(">i", len(packet)) + packet for packet in framed)


def test_tcp_clients_beyond_16_from_a_host_or_64_in_all_are_refused_and_said(
    tmp_path: Path, bridge_factory: Start
) -> None:
    # 1,100 idle connections took every descriptor: HTTP and the pages went down, a traceback a second;
    # and one host holding the 64 places must not lock out the desk on another.
    tcp_port = free_port()
    proc = bridge_factory(bridge_config(tmp_path, f'listen_tcp = "127.0.0.1:{tcp_port}"\n'))

    def connect(host: str) -> socket.socket:  # from another loopback address: another host
        return socket.create_connection(("127.0.0.1", tcp_port), timeout=DEADLINE, source_address=(host, 0))

    def tcp() -> dict[str, int]:
        return dict(proc.get_json("/healthz")["adapters"]["osc"]["tcp"])

    def refused(sock: socket.socket) -> bool:
        closed = sock.recv(1) == b""  # closed by the bridge at once
        sock.close()
        return closed

    held = [connect("127.0.0.2") for _ in range(16)]
    try:
        wait_until(lambda: tcp()["clients"] == 16, what="16 clients from one host")
        assert refused(connect("127.0.0.2"))
        assert "OSC over TCP: 16 clients from that host already; 127.0.0.2 refused" in proc.output()
        held += [connect(f"127.0.0.{n}") for n in (3, 4, 5) for _ in range(16)]
        wait_until(lambda: tcp()["clients"] == 64, what="64 clients")
        assert all(refused(connect("127.0.0.6")) for _ in range(5))
        assert (tcp()["clients"], tcp()["refused"]) == (64, 6)
        assert proc.output().count("OSC over TCP: 64 clients already") == 1  # once per host every 5 s
        held.pop().close()  # one leaves: the next one is taken
        wait_until(lambda: tcp()["clients"] == 63, what="one gone")
        held.append(connect("127.0.0.6"))
        wait_until(lambda: tcp()["accepted"] == 65, what="taken")
        assert proc.output().count("connected over TCP") < 20  # a line per host every 5 s, not one per connection
    finally:
        for sock in held:
            sock.close()


def read_slip(
    sock: socket.socket, done: Callable[[list[tuple[str, list[object]]]], bool]
) -> list[tuple[str, list[object]]]:
    from pythonosc.osc_message import OscMessage

    from tests.console_tools import unslip

    buffer = bytearray()
    messages: list[tuple[str, list[object]]] = []
    sock.settimeout(15)
    while not done(messages):
        buffer += sock.recv(65536)
        messages += [(m.address, list(m.params)) for m in map(OscMessage, unslip(buffer))]
    return messages


def read_length(
    sock: socket.socket, done: Callable[[list[tuple[str, list[object]]]], bool]
) -> list[tuple[str, list[object]]]:
    from pythonosc.osc_message import OscMessage

    buffer = bytearray()
    messages: list[tuple[str, list[object]]] = []
    sock.settimeout(15)
    while not done(messages):
        buffer += sock.recv(65536)
        while len(buffer) >= 4 and len(buffer) >= 4 + struct.unpack(">i", buffer[:4])[0]:
            size = struct.unpack(">i", buffer[:4])[0]
            message = OscMessage(bytes(buffer[4 : 4 + size]))
            messages.append((message.address, list(message.params)))
            del buffer[: 4 + size]
    return messages


def test_garbage_on_tcp_closes_that_connection_only(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    tcp_port = free_port()
    proc = bridge_factory(bridge_config(tmp_path, f'listen_tcp = "127.0.0.1:{tcp_port}"\n'))
    browser = client_factory(proc.url)
    good = socket.create_connection(("127.0.0.1", tcp_port))
    bad = [socket.create_connection(("127.0.0.1", tcp_port)) for _ in range(3)]
    try:
        # A good message, then a SLIP frame that is no OSC, in one write: the message before the garbage is taken.
        bad[0].sendall(slip(build("/eos/sub/1", 12.0)) + bytes([0xC0]) + b"/not osc at all" + bytes([0xC0]))
        bad[1].sendall(struct.pack(">i", 10_000_000) + b"xxxx")  # a length over the limit
        bad[2].sendall(bytes([0xC0]) + b"/x" * 40_000)  # a SLIP packet that never ends
        for sock in bad:
            sock.settimeout(15)
            assert sock.recv(10) == b""  # closed by the bridge
        health = wait_until(
            lambda: (tcp := proc.get_json("/healthz")["adapters"]["osc"]["tcp"])["closed_garbage"] == 3 and tcp,
            what="three connections closed and counted",
        )
        assert health["clients"] == 1
        browser.wait_value("level", 12)
        good.sendall(slip(build("/eos/sub/1", 33.0)))
        browser.wait_value("level", 33)
    finally:
        for sock in (good, *bad):
            sock.close()


def test_an_x32_keeps_reporting_because_of_the_keepalive_and_answers_the_queries(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    # The X32 scaled down: a 3 s subscription renewed every 1.5 s (a real one forgets a client after 10 s;
    # config/examples/x32-monitor.toml renews it every 9 s).
    desk = FakeX32({"/ch/01/mix/fader": 0.75, "/ch/01/config/name": "Vox", "/ch/01/mix/on": 1}, subscription=3.0)
    controls = """
[[controls]]
id = "fader1"
type = "range"
min = -90
max = 10
step = 0.1
osc = { address = "/ch/01/mix/fader", curve = [[-90, 0.0], [-60, 0.0625], [-30, 0.25], [-10, 0.5], [10, 1.0]] }
label_from = "/ch/01/config/name"
[[controls]]
id = "on1"
type = "toggle"
osc = "/ch/01/mix/on"
"""
    try:
        osc = (
            f'[[osc.targets]]\naddress = "127.0.0.1:{desk.port}"\non_connect = [["/xremote"]]\n'
            'keepalive = { message = ["/xremote"], every = 1.5 }\nquery_on_connect = true\n'
        )
        proc = bridge_factory(bridge_config(tmp_path, osc, controls))
        client = client_factory(proc.url)
        client.wait_value("fader1", 0.0)  # 0.75 on the X32 law: 0 dB, answered to the query
        client.wait_value("on1", 1)
        client.wait_event("update look", lambda look: look == {"who": "fader1", "label": "Vox"})
        assert set(desk.queries) >= {"/ch/01/mix/fader", "/ch/01/mix/on", "/ch/01/config/name"}
        # Past two keepalive periods (an /xremote at start and every 1.5 s after, the desk's subscription
        # 3 s long): the desk still reports a change made on it.
        wait_until(lambda: desk.xremotes >= 4, what="three keepalives after the first /xremote")
        desk.change("/ch/01/mix/fader", 0.5)
        client.wait_value("fader1", -10.0)
        client.send("on1", 0)
        wait_until(lambda: desk.values["/ch/01/mix/on"] == 0, what="the desk switched off by the page")
    finally:
        desk.close()


def test_an_x32_switched_on_after_the_bridge_is_greeted_and_asked_when_it_answers(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    # A desk that boots after the bridge (or reboots mid-show) needs its on_connect and the queries
    # again: at start they went to a closed port. The bridge sees it back once the keepalives it sends
    # stop being refused for 5 s (docs/osc.md), and greets it then.
    port = free_port(socket.SOCK_DGRAM)
    osc = (
        f'[[osc.targets]]\naddress = "127.0.0.1:{port}"\non_connect = [["/xremote"]]\n'
        'keepalive = { message = ["/xremote"], every = 1.0 }\nquery_on_connect = true\n'
    )
    controls = """
[[controls]]
id = "on1"
type = "toggle"
osc = "/ch/01/mix/on"
label_from = "/ch/01/config/name"
"""
    proc = bridge_factory(bridge_config(tmp_path, osc, controls))
    client = client_factory(proc.url)
    wait_until(lambda: target_state(proc) == "unreachable", what="no desk yet")
    said = proc.get_json("/healthz")["adapters"]["osc"]["targets"][0]["error"]
    assert said == "Connection refused: nothing listens there"  # (the chip's title, and the monitor's)
    desk = FakeX32({"/ch/01/mix/on": 1, "/ch/01/config/name": "Vox"}, port=port)
    try:
        client.wait_value("on1", 1, timeout=DEADLINE + 5)  # answered to the query sent once it was back
        client.wait_event("update look", lambda look: look == {"who": "on1", "label": "Vox"})
        assert target_state(proc) == "ok"
        assert {"/ch/01/mix/on", "/ch/01/config/name"} <= set(desk.queries)
    finally:
        desk.close()


X32_SCENES = """
[[controls]]
id = "on1"
type = "toggle"
osc = "/ch/01/mix/on"
[[controls]]
id = "scene5"
type = "button"
mode = "trigger"
osc = "/-action/goscene"
on = 5
"""


def test_an_x32_that_freezes_is_shown_silent_gets_no_scene_go_and_is_greeted_when_it_answers_again(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    """UDP never tells that a desk froze (its socket still takes what is sent) or went away: the chip said
    nothing, and a scene GO pressed meanwhile fired whenever it woke. With answer_within, the X32's answer
    to /status (Maillot's protocol: `/status ,sss` state, address, name) is what shows it is there."""
    desk = FakeX32({"/ch/01/mix/on": 0})
    osc = (
        f'[[osc.targets]]\naddress = "127.0.0.1:{desk.port}"\non_connect = [["/xremote"], ["/xinfo"]]\n'
        'keepalive = { message = [["/xremote"], ["/status"]], every = 0.3, answer_within = 1.0 }\n'
    )
    try:
        proc = bridge_factory(bridge_config(tmp_path, osc, X32_SCENES))
        client = client_factory(proc.url)
        wait_until(lambda: target_state(proc) == "ok", what="the desk answered its first /status")
        client.send("scene5", 1)
        wait_until(lambda: desk.got("/-action/goscene") == [[5]], what="the scene GO at the desk")
        desk.frozen.set()
        client.wait_event(
            "osc status",
            lambda status: (
                status["targets"][0]
                == {
                    "address": f"127.0.0.1:{desk.port}",
                    "transport": "udp",
                    "state": "silent",
                    "error": "sent nothing back for 1 s",
                }
            ),
        )
        assert "sent nothing back for 1 s" in proc.output()
        client.send("scene5", 1)  # pressed while the desk hangs
        client.send("on1", 1)  # a value still goes: the latest is what the desk reads when it wakes
        wait_until(lambda: "is silent: a trigger press not sent" in proc.output(), what="the GO said not sent")
        desk.frozen.clear()  # it wakes, and reads what its socket kept
        wait_until(lambda: target_state(proc) == "ok", what="the desk answering again")
        wait_until(lambda: len(desk.got("/xinfo")) == 2, what="the desk greeted again (on_connect)")
        assert desk.got("/-action/goscene") == [[5]]  # the GO pressed while it hung never fired
        assert desk.values["/ch/01/mix/on"] == 1
        client.send("scene5", 1)
        wait_until(lambda: desk.got("/-action/goscene") == [[5], [5]], what="a GO once it answers")
    finally:
        desk.close()


def test_a_phone_and_the_x32_moving_one_send_at_once_end_on_one_value(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    """A phone's value reached the desk after the desk's own move had gone out: the X32 took it and told
    nobody (it reports a change to every client but the one that made it), while the bridge and every page
    showed the desk's move: the two stayed apart for good (a reviewer's case, 7 crossings in 30). The crossing
    is held open here by a desk that reads late."""
    address = "/ch/01/mix/01/level"
    desk = FakeX32({address: 0.5})
    osc = (
        f'[[osc.targets]]\naddress = "127.0.0.1:{desk.port}"\non_connect = [["/xremote"]]\n'
        'keepalive = { message = ["/xremote"], every = 1.0 }\n'
    )
    controls = "".join(
        f'[[controls]]\nid = "send{n}"\ntype = "range"\nmax = 1\nstep = 0.001\nosc = "/ch/0{n}/mix/01/level"\n'
        for n in (1, 2)
    )
    try:
        proc = bridge_factory(bridge_config(tmp_path, osc, controls))
        phone = client_factory(proc.url)
        wait_until(lambda: desk.xremotes >= 1, what="the bridge subscribed")
        for by_phone, by_hand in ((0.25, 0.75), (0.125, 0.875), (0.375, 0.5)):
            desk.frozen.set()
            phone.send("send1", by_phone)
            wait_until(lambda v=by_phone: proc.get_json("/api/values")["send1"] == v, what="the phone's value")
            desk.change(address, by_hand)  # the desk's own move, told before it read the phone's
            phone.wait_value("send1", by_hand)
            desk.frozen.clear()
            wait_until(lambda v=by_phone: [v] in desk.got(address), what="the desk reading the phone's value")
            # (and after it, the value every page shows)
            wait_until(lambda v=by_hand: desk.got(address)[-1] == [v] == [desk.values[address]], what="the desk on it")
        # The desk drags, a phone's value crosses its last report: its own reports just before count for nothing
        # (taken for what the bridge had sent it, the crossing was missed: a reviewer's case).
        for by_hand in (0.5, 0.502):
            desk.change(address, by_hand)
            phone.wait_value("send1", by_hand)
        desk.frozen.set()
        phone.send("send1", 0.25)
        wait_until(lambda: proc.get_json("/api/values")["send1"] == 0.25, what="the phone's value")
        # Its reports, one after the other as a hand moves: what it reports after the first, sent before it read
        # the value sent back to it, goes back too (the desk ended on its first late report, the pages on its
        # last). (The quarter second this holds for is a time: tests/test_loops.py takes it step by step.)
        for by_hand in (0.504, 0.506, 0.508):
            desk.change(address, by_hand)
        phone.wait_value("send1", 0.508)
        desk.frozen.clear()
        on = pytest.approx(0.508, abs=1e-6)  # (a float32 on the wire)
        wait_until(lambda: desk.got(address)[-1] == [on] and desk.values[address] == on, what="the desk on 0.508")
        # Nothing goes back to the desk of what it sends when nothing crossed it (another send: no crossing
        # of the last second is under way there).
        other = "/ch/02/mix/01/level"
        desk.change(other, 0.625)
        phone.wait_value("send2", 0.625)
        phone.send("send2", 0.25)
        wait_until(lambda: [0.25] in desk.got(other), what="the phone's next value")
        assert desk.got(other) == [[0.25]], desk.got(other)
    finally:
        desk.close()


def strip(ch: int, mix: int = 1) -> str:
    """A wedge mix's send and the channel's name and meter, at the X32's addresses."""
    return (
        f'[[controls]]\nid = "send{ch}"\ntype = "range"\nmax = 1\nstep = 0.001\nosc = "/ch/0{ch}/mix/{mix:02}/level"\n'
        f'label_from = "/ch/0{ch}/config/name"\n[[controls]]\nid = "meter{ch}"\ntype = "meter"\nmax = 1\n'
        f'osc = "/meters/ch/0{ch}"\nscene = false\n'
    )


def test_a_reload_asks_the_desk_at_the_addresses_it_added(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    """A strip added by a live edit showed its default, and one pointed at another mix kept the old mix's level:
    the first nudge on a phone sent the new mix a jump of 20 dB (a reviewer's case). Asked like at start now."""
    desk = FakeX32(
        {"/ch/01/mix/01/level": 0.5, "/ch/02/mix/01/level": 0.5, "/ch/01/mix/02/level": 0.25}
        | {"/ch/02/mix/02/level": 0.125, "/ch/03/mix/02/level": 0.875, "/ch/03/config/name": "Keys"}
    )
    osc = (
        f'[[osc.targets]]\naddress = "127.0.0.1:{desk.port}"\non_connect = [["/xremote"]]\n'
        'keepalive = { message = ["/xremote"], every = 1.0 }\nquery_on_connect = true\n'
    )
    try:
        config = bridge_config(tmp_path, osc, strip(1) + strip(2))
        proc = bridge_factory(config)
        phone = client_factory(proc.url)
        phone.wait_value("send2", 0.5)
        assert not [query for query in desk.queries if query.startswith("/meters")]  # fed, not asked for
        asked = len(desk.queries)
        config.write_text(config.read_text(encoding="utf-8").replace("/mix/01/", "/mix/02/"), encoding="utf-8")
        config.write_text(config.read_text(encoding="utf-8") + strip(3, mix=2), encoding="utf-8")
        assert proc.request_json("POST", "/api/config/reload")[0] == 200
        phone.wait_value("send1", 0.25)  # the new mix's levels, not the old one's
        phone.wait_value("send2", 0.125)
        phone.wait_value("send3", 0.875)  # the strip added
        phone.wait_event("update look", lambda look: look == {"who": "send3", "label": "Keys"})
        assert sorted(desk.queries[asked:]) == sorted(
            ["/ch/01/mix/02/level", "/ch/02/mix/02/level", "/ch/03/mix/02/level", "/ch/03/config/name"]
        )
        # Two strips swap their channels: both addresses were asked before, by the other strip.
        text = config.read_text(encoding="utf-8")
        swapped = text.replace("/ch/01/mix/02/", "/ch/XX/mix/02/").replace("/ch/02/mix/02/", "/ch/01/mix/02/")
        config.write_text(swapped.replace("/ch/XX/mix/02/", "/ch/02/mix/02/"), encoding="utf-8")
        assert proc.request_json("POST", "/api/config/reload")[0] == 200
        phone.wait_value("send1", 0.125)  # channel 2's level on mix 2, where send1 now points
        phone.wait_value("send2", 0.25)
    finally:
        desk.close()


def test_what_changed_while_a_udp_desk_was_away_is_sent_when_it_is_back_not_asked_for(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    """A phone set two sends while the desk was off: when it came back, the queries brought its old levels
    back, undoing the phone's without a word (a reviewer's case); a TCP desk already kept them."""
    port = free_port(socket.SOCK_DGRAM)
    osc = (
        f'[[osc.targets]]\naddress = "127.0.0.1:{port}"\non_connect = [["/xremote"]]\n'
        'keepalive = { message = ["/xremote"], every = 0.5 }\nquery_on_connect = true\n'
    )
    proc = bridge_factory(bridge_config(tmp_path, osc, strip(1) + strip(2)))
    phone = client_factory(proc.url)
    wait_until(lambda: target_state(proc) == "unreachable", what="no desk")
    phone.send("send1", 0.75)
    wait_until(lambda: proc.get_json("/api/values")["send1"] == 0.75, what="the phone's send taken (and lost)")
    desk = FakeX32({"/ch/01/mix/01/level": 0.25, "/ch/02/mix/01/level": 0.5}, port=port)
    try:
        wait_until(lambda: desk.values["/ch/01/mix/01/level"] == 0.75, timeout=DEADLINE + 5, what="the phone's send")
        phone.wait_value("send2", 0.5)  # asked: the desk's
        assert "/ch/01/mix/01/level" not in desk.queries
        assert proc.get_json("/api/values")["send1"] == 0.75
    finally:
        desk.close()


ASKED = (
    'keepalive = { message = [["/xremote"], ["/status"]], every = 0.3, answer_within = 1.0 }\nquery_on_connect = true\n'
)


def test_a_name_the_desk_empties_gives_the_control_its_own_label_as_the_config_has_it_then(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    """An X32 channel renamed to "" showed the control's label, but that label was kept as the desk's: a later
    edit of the config's label did not show, across restarts too (a reviewer's case)."""
    desk = FakeX32({"/ch/01/config/name": "Vox"})
    osc = f'[[osc.targets]]\naddress = "127.0.0.1:{desk.port}"\non_connect = [["/xremote"]]\nquery_on_connect = true\n'
    try:
        config = bridge_config(tmp_path, osc, strip(1))
        proc = bridge_factory(config)
        phone = client_factory(proc.url)
        phone.wait_event("update look", lambda look: look == {"who": "send1", "label": "Vox"})
        wait_until(lambda: desk.xremotes >= 1, what="subscribed")
        desk.change("/ch/01/config/name", "")
        phone.wait_event("update look", lambda look: look == {"who": "send1", "label": "send1"})
        late = client_factory(proc.url)  # (a phone back from a Wi-Fi drop, its page not reloaded)
        late.wait_event("update look", lambda look: look == {"who": "send1", "label": "send1"})
        config.write_text(
            config.read_text(encoding="utf-8").replace('id = "send1"\n', 'id = "send1"\nlabel = "Wedge 1"\n')
        )
        assert proc.request_json("POST", "/api/config/reload")[0] == 200
        assert ">Wedge 1<" in proc.get_text("/")
    finally:
        desk.close()


def test_a_desk_gone_without_a_word_gets_what_changed_since_its_last_answer_when_it_is_back(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    """An X32 switched off (nothing refuses: no ICMP) while shown "ok": a phone's change made before it was
    found silent went nowhere, and when the desk came back the queries brought its old level back, undoing
    the phone's everywhere (a reviewer's case)."""
    address = "/ch/01/mix/01/level"
    desk = FakeX32({address: 0.25, "/ch/02/mix/01/level": 0.5})
    osc = f'[[osc.targets]]\naddress = "127.0.0.1:{desk.port}"\non_connect = [["/xremote"]]\n{ASKED}'
    try:
        proc = bridge_factory(bridge_config(tmp_path, osc, strip(1) + strip(2)))
        phone = client_factory(proc.url)
        wait_until(lambda: target_state(proc) == "ok", what="the desk answering")
        phone.wait_value("send1", 0.25)
        desk.deaf.set()  # off
        phone.send("send1", 0.75)  # before anyone can know
        wait_until(lambda: target_state(proc) == "silent", what="the desk found silent")
        asked = len(desk.queries)
        desk.deaf.clear()  # back
        wait_until(lambda: desk.values[address] == 0.75, what="the phone's change at the desk")
        wait_until(lambda: "/ch/02/mix/01/level" in desk.queries[asked:], what="the rest asked again")
        assert address not in desk.queries[asked:]
        assert proc.get_json("/api/values")["send1"] == 0.75
    finally:
        desk.close()


def test_a_desk_that_comes_up_after_the_bridge_is_greeted_at_its_first_answer(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    """A desk still booting at start (its port taken, nothing answered) answered later, while "waiting": it was
    never greeted (no /xremote, no queries), and a change made meanwhile never reached it (a reviewer's case)."""
    desk = FakeX32({"/ch/01/mix/01/level": 0.25, "/ch/02/mix/01/level": 0.5, "/ch/02/config/name": "Keys"})
    desk.deaf.set()  # booting
    osc = f'[[osc.targets]]\naddress = "127.0.0.1:{desk.port}"\non_connect = [["/xremote"], ["/xinfo"]]\n{ASKED}'
    try:
        proc = bridge_factory(bridge_config(tmp_path, osc, strip(1) + strip(2)))
        phone = client_factory(proc.url)
        assert target_state(proc) == "waiting"
        phone.send("send1", 0.75)
        wait_until(lambda: proc.get_json("/api/values")["send1"] == 0.75, what="the phone's change taken")
        wait_until(lambda: target_state(proc) == "silent", what="no answer for 1 s")
        desk.deaf.clear()  # up
        wait_until(lambda: desk.got("/xinfo") == [[]], what="the desk greeted at its first answer")
        phone.wait_event("update look", lambda look: look == {"who": "send2", "label": "Keys"})
        wait_until(lambda: desk.values["/ch/01/mix/01/level"] == 0.75, what="the change made meanwhile")
        assert "/ch/01/mix/01/level" not in desk.queries
    finally:
        desk.close()


def test_another_target_on_the_same_machine_does_not_keep_a_hung_desk_answering(
    tmp_path: Path, bridge_factory: Start
) -> None:
    """A hung X32 and a DAW target on one machine (here 127.0.0.1): the DAW's meters counted as the desk's
    answers, the desk stayed "ok" and GOs went into its socket (a reviewer's case)."""
    desk = FakeX32({})
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daw:
        daw.bind(("127.0.0.1", 0))
        osc_port = free_port(socket.SOCK_DGRAM)
        osc = (
            f'[[osc.targets]]\naddress = "127.0.0.1:{desk.port}"\n'
            'keepalive = { message = [["/status"]], every = 0.3, answer_within = 1.0 }\n'
            f'[[osc.targets]]\naddress = "127.0.0.1:{daw.getsockname()[1]}"\n'
        )
        config = write_config(tmp_path, extra=f'[osc]\nlisten = "127.0.0.1:{osc_port}"\n{osc}', controls=X32_SCENES)
        stop = threading.Event()

        def meters() -> None:  # the DAW's meters, all along
            while not stop.wait(0.05):
                daw.sendto(build("/meters/1", 0.5), ("127.0.0.1", osc_port))

        feeder = threading.Thread(target=meters, daemon=True)
        feeder.start()
        try:
            proc = bridge_factory(config)
            wait_until(lambda: target_state(proc) == "ok", what="the desk answering")
            desk.frozen.set()
            wait_until(lambda: target_state(proc) == "silent", what="the hung desk silent, the DAW speaking on")
        finally:
            stop.set()
            feeder.join(timeout=5)
            desk.close()


def test_an_eos_over_udp_answering_from_its_tx_port_beside_another_target_is_told_by_its_answer(
    tmp_path: Path, bridge_factory: Start
) -> None:
    """Eos over UDP sends from a TX port of its own ("Eos Family Show Control User Guide", OSC): on a machine
    with another target (QLab beside Eos Nomad) it was "silent" for good, answering every /eos/ping, and no GO
    went to it; and any program on a machine made a hung desk there look alive (both a reviewer's cases). With
    keepalive.answer, only /eos/out/ping counts, from any port of its host."""
    stop, hung = threading.Event(), threading.Event()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as qlab,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as chatter,
    ):
        for sock in (rx, tx, qlab, chatter):
            sock.bind(("127.0.0.1", 0))
        rx.settimeout(0.2)
        osc_port = free_port(socket.SOCK_DGRAM)

        def eos() -> None:  # answers each ping from its TX port, unless hung
            from pythonosc.osc_message import OscMessage

            while not stop.is_set():
                try:
                    data = rx.recv(65536)
                except (TimeoutError, OSError):
                    continue
                if not hung.is_set() and OscMessage(data).address == "/eos/ping":
                    tx.sendto(build("/eos/out/ping"), ("127.0.0.1", osc_port))

        def chat() -> None:  # another program on that machine, sending all along
            while not stop.wait(0.05):
                chatter.sendto(build("/fader", 0.5), ("127.0.0.1", osc_port))

        keepalive = (
            'keepalive = { message = ["/eos/ping"], every = 0.3, answer_within = 1.0, answer = "/eos/out/ping" }'
        )
        osc = (
            f'[[osc.targets]]\naddress = "127.0.0.1:{rx.getsockname()[1]}"\n{keepalive}\n'
            f'[[osc.targets]]\naddress = "127.0.0.1:{qlab.getsockname()[1]}"\n'
        )
        config = write_config(tmp_path, extra=f'[osc]\nlisten = "127.0.0.1:{osc_port}"\n{osc}', controls=CONTROLS)
        workers = [threading.Thread(target=work, daemon=True) for work in (eos, chat)]
        for worker in workers:
            worker.start()
        try:
            proc = bridge_factory(config)
            wait_until(lambda: target_state(proc) == "ok", what="Eos answering from its TX port")
            hung.set()
            wait_until(lambda: target_state(proc) == "silent", what="Eos hung, another program chatting on")
            hung.clear()
            wait_until(lambda: target_state(proc) == "ok", what="Eos back")
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=5)


@pytest.mark.unit
def test_keepalive_answer_is_an_address_with_answer_within(tmp_path: Path) -> None:
    for table, words in (
        ('{ message = ["/eos/ping"], every = 1, answer = "/eos/out/ping" }', "with answer_within"),
        ('{ message = ["/eos/ping"], every = 1, answer_within = 3, answer = "eos/out/ping" }', "an OSC address"),
    ):
        target = f'{{ address = "127.0.0.1:9000", keepalive = {table} }}'
        with pytest.raises(ConfigError, match=words):
            load_config(write_config(tmp_path, extra=f"[osc]\ntargets = [{target}]\n"))


def test_answer_within_does_not_apply_to_a_broadcast_target(tmp_path: Path, bridge_factory: Start) -> None:
    """Every host answers a broadcast from its own address: a broadcast target was "silent" for good and no GO
    went to it (a reviewer's case)."""
    port = free_port(socket.SOCK_DGRAM)
    osc = (
        f'[[osc.targets]]\naddress = "127.255.255.255:{port}"\n'
        'keepalive = { message = [["/status"]], every = 0.3, answer_within = 1.0 }\n'
    )
    proc = bridge_factory(bridge_config(tmp_path, osc, X32_SCENES))
    wait_until(lambda: "answer_within does not apply" in proc.output(), what="said at start")
    sent = proc.get_json("/healthz")["adapters"]["osc"]["targets"][0]["sent"]
    wait_until(
        lambda: proc.get_json("/healthz")["adapters"]["osc"]["targets"][0]["sent"] >= sent + 4,
        what="a second and more of keepalives",
    )
    assert target_state(proc) == "ok"


def test_two_desks_on_one_host_answer_each_for_itself(tmp_path: Path, bridge_factory: Start) -> None:
    """Programs on one machine share its address: each target's answers are known by its port there, so a
    desk that hangs is not kept "ok" by the one beside it that answers."""
    desks = [FakeX32({}), FakeX32({})]
    keepalive = 'keepalive = { message = [["/status"]], every = 0.3, answer_within = 1.0 }'
    osc = "".join(f'[[osc.targets]]\naddress = "127.0.0.1:{d.port}"\n{keepalive}\n' for d in desks)
    try:
        proc = bridge_factory(bridge_config(tmp_path, osc, X32_SCENES))

        def states() -> list[str]:
            return [t["state"] for t in proc.get_json("/healthz")["adapters"]["osc"]["targets"]]

        wait_until(lambda: states() == ["ok", "ok"], what="both desks answering")
        desks[0].frozen.set()
        wait_until(lambda: states()[0] == "silent", what="the hung desk silent")
        count = len(desks[1].got("/status"))
        wait_until(lambda: len(desks[1].got("/status")) >= count + 4, what="the other desk answering on")
        assert states() == ["silent", "ok"]
    finally:
        for desk in desks:
            desk.close()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("osc", "key", "words"),
    [
        ('targets = [{ address = "127.0.0.1:9000", framing = "slip" }]', "osc.targets[0].framing", "only a TCP target"),
        (
            'targets = [{ address = "127.0.0.1:9000", transport = "sctp" }]',
            "osc.targets[0].transport",
            '"udp" or "tcp"',
        ),
        (
            'targets = [{ address = "127.0.0.1:9000", keepalive = { message = ["/xremote"], every = 0.05 } }]',
            "osc.targets[0].keepalive.every",
            "0.1-3600 seconds",
        ),
        (
            'targets = [{ address = "127.0.0.1:9000", on_connect = [["xremote"]] }]',
            "osc.targets[0].on_connect[0]",
            '["/address"',
        ),
        ('listen_tcp_framing = "length"', "osc.listen_tcp_framing", "needs osc.listen_tcp"),
        (
            'targets = [{ address = "127.0.0.1:9000", transport = "tcp", framing = "cobs" }]',
            "osc.targets[0].framing",
            '"slip" (OSC 1.1) or "length"',
        ),
    ],
)
def test_bad_console_keys_name_the_key(tmp_path: Path, osc: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, extra=f'[osc]\nlisten = "127.0.0.1:9001"\n{osc}\n'))
    assert err.value.key == key and words in err.value.expected, str(err.value)


def test_a_tcp_target_named_by_host_name_is_heard_under_osc_allow(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, consoles: Callable[..., TcpConsole]
) -> None:
    # [osc] allow lists addresses; a desk named "localhost" in its target answers from 127.0.0.1.
    desk = consoles("slip")
    osc = f'allow = ["127.0.0.1"]\n[[osc.targets]]\naddress = "localhost:{desk.port}"\ntransport = "tcp"\n'
    proc = bridge_factory(bridge_config(tmp_path, osc))
    client = client_factory(proc.url)
    desk.wait_connected()
    desk.send("/eos/out/active/cue/text", "2/1 Dawn")
    client.wait_value("cue", "2/1 Dawn")
    assert proc.get_json("/healthz")["adapters"]["osc"]["refused"] == 0


def test_a_tcp_desk_that_stops_answering_its_keepalive_is_dropped_and_one_that_answers_is_kept(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, consoles: Callable[..., TcpConsole]
) -> None:
    """A desk whose program froze (SIGSTOP, a hang) while its kernel still takes what is sent: shown connected
    for good, every GO pressed meanwhile fired when it woke. An Eos answers /eos/ping; this one /ping."""
    frozen = consoles("length")  # reads, answers nothing
    alive = consoles("length", answers={"/ping": 1})
    keepalive = 'keepalive = { message = ["/ping"], every = 0.2, answer_within = 1.0 }'
    osc = (
        "targets = ["
        + ", ".join(
            f'{{ address = "127.0.0.1:{desk.port}", transport = "tcp", framing = "length", {keepalive} }}'
            for desk in (frozen, alive)
        )
        + "]\n"
    )
    proc = bridge_factory(bridge_config(tmp_path, osc))
    page = client_factory(proc.url)

    def targets() -> list[dict[str, Any]]:
        return list(proc.get_json("/healthz")["adapters"]["osc"]["targets"])

    wait_until(lambda: targets()[0]["connects"] >= 2, what="the frozen desk dropped and connected again")
    page.wait_event(
        "osc status", lambda status: status["targets"][0]["error"] == "answered nothing for 1 s; connection dropped"
    )
    assert "answered nothing for 1 s; connection dropped" in proc.output()
    assert len(alive.got("/ping")) >= 5 and targets()[1]["connects"] == 1  # answered: kept, all along
    # Not shown connected again until it answers, however often its kernel takes the connection.
    assert [targets()[0]["state"] for _ in range(20)].count("connected") == 0
    assert targets()[0]["error"] == "answered nothing for 1 s; connection dropped"
    frozen.answers["/ping"] = 1  # it wakes
    wait_until(lambda: targets()[0]["state"] == "connected" and targets()[0]["error"] is None, what="back")


def test_a_tcp_desk_back_is_asked_at_once_and_takes_a_go_one_answer_later(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, consoles: Callable[..., TcpConsole]
) -> None:
    """With answer_within, a desk back after a drop was "connecting" (a GO not sent) until the keepalive's next
    turn, up to `every` seconds (a reviewer's case): it is asked with the hello, and connected once it answers."""
    desk = consoles("slip", answers={"/ping": 1})
    keepalive = 'keepalive = { message = ["/ping"], every = 60, answer_within = 120 }'
    osc = f'targets = [{{ address = "127.0.0.1:{desk.port}", transport = "tcp", {keepalive} }}]\n'
    proc = bridge_factory(bridge_config(tmp_path, osc, CONTROLS + BUTTONS))
    client = client_factory(proc.url)
    desk.wait_for("/ping", [])  # asked with the hello, not 60 s later
    desk.stop()
    wait_until(lambda: target_state(proc) == "down", what="the desk down")
    back = consoles("slip", port=desk.port, answers={"/ping": 1})
    wait_until(lambda: target_state(proc) == "connected", what="the desk back, once it answered")
    client.send("go", 1)
    wait_until(lambda: len(back.got("/eos/key/go_0")) == 1, what="the GO at the desk")


@pytest.mark.unit
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_answer_within_is_longer_than_the_keepalive(tmp_path: Path, transport: str) -> None:
    keepalive = 'keepalive = { message = ["/ping"], every = 5, answer_within = %s }'
    target = f'{{ address = "127.0.0.1:9000", transport = "{transport}", {keepalive} }}'
    with pytest.raises(ConfigError, match="more than every"):
        load_config(write_config(tmp_path, extra=f"[osc]\ntargets = [{target % 3}]\n"))
    config = load_config(write_config(tmp_path, extra=f"[osc]\ntargets = [{target % 12}]\n"))
    assert config.osc.targets[0].answer_within == 12.0


def test_a_tcp_desk_that_drops_every_connection_at_once_is_tried_again_with_a_backoff(
    tmp_path: Path, bridge_factory: Start
) -> None:
    """A desk (or a port forwarder without its desk) that accepts and closes at once: the bridge
    connected again straight away, about 1,000 times a second, two log lines each."""
    accepted: list[float] = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.settimeout(DEADLINE)
        osc = f'[[osc.targets]]\naddress = "127.0.0.1:{server.getsockname()[1]}"\ntransport = "tcp"\n'
        proc = bridge_factory(bridge_config(tmp_path, osc))
        while len(accepted) < 6:
            conn, _ = server.accept()
            accepted.append(time.monotonic())
            conn.close()
    gaps = [later - earlier for earlier, later in itertools.pairwise(accepted)]
    # Each wait at least the backoff before it, doubling from 0.1 s (a busy machine only adds to them).
    assert all(gap >= 0.09 * 2**n for n, gap in enumerate(gaps)), gaps
    # Said once, not a "connected" and a "closed" line per try (about 6,000 lines an hour at 2 s), and
    # asked whether the framing is the desk's (an Eos in OSC 1.0 mode closes on a SLIP packet).
    wait_until(
        lambda: "does it expect framing = 'length'?" in str(proc.get_json("/healthz")["adapters"]["osc"]["targets"]),
        what="the framing asked about in /healthz",
    )
    output = proc.output()
    assert output.count(" connected") == 1 and output.count("connection closed") == 1, output
    assert output.count("does it expect framing = 'length'?") == 1, output
