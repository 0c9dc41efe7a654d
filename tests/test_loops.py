"""Feedback loops, with real parts: two bridges aimed at each other, an OSC relay that sends
everything back (socat), and a MIDI output patched to the bridge's own input on a JACK server.

Each must pass a change on once. Before, one GO pressed on a page fired for ever: between two
bridges about 3,000 times a second, through the relay or the MIDI patch as fast as the echo
came back; and a toggle pressed on a page was turned straight back off by its own note-on.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mido
import pytest

from bridge.echoes import FAST, Echoes
from bridge.osc.arrival import EXACT, Clock, stamp
from tests.helpers import (
    CONTROLS_TOML,
    DEADLINE,
    BridgeProcess,
    Client,
    free_port,
    terminate,
    unavailable,
    wait_until,
    write_config,
)
from tests.jack import JackServer, MidiPeer
from tests.osc_tools import OscDump, OscPeer, oscsend, udp_port_taken
from tests.oscquery_tools import WsPeer, wait_listening
from tests.test_midi import cc, jumping, midi_health, note_off, note_on, virtual_midi_bridge

Start = Callable[..., BridgeProcess]
Connect = Callable[[str], Client]

SHOW = """
[[controls]]
id = "level"
type = "range"
min = 0
max = 1
value = 0
osc = "/level"

[[controls]]
id = "go"
type = "button"
mode = "trigger"
osc = "/go"

[[controls]]
id = "marker"
type = "range"
min = 0
max = 100
value = 0
osc = "/marker"
"""


def osc_table(listen: int, *targets: int, host: str = "127.0.0.1") -> str:
    aimed = ", ".join(f'"127.0.0.1:{port}"' for port in targets)
    return f'[osc]\nlisten = "{host}:{listen}"\ntargets = [{aimed}]\n'


def go_and_drag(page: Client) -> list[float]:
    """A page presses GO once, then drags the level through 11 values; those values, in order."""
    page.send("go", 1)
    page.send("go", 0)
    moves = [round(0.2 + i / 100, 2) for i in range(11)]
    for value in moves:
        page.send("level", value)
    return moves


def osc_health(server: BridgeProcess) -> dict[str, Any]:
    health: dict[str, Any] = server.get_json("/healthz")["adapters"]["osc"]
    return health


def folder(tmp_path: Path, name: str) -> Path:
    made = tmp_path / name
    made.mkdir()
    return made


# -- the memory of what was sent -------------------------------------------------------
@pytest.mark.unit
def test_an_echo_is_known_once_per_sending_from_that_peer_within_the_window() -> None:
    echoes = Echoes(window=0.1)
    echoes.sent("10.0.0.5", b"/go", now=1.0)
    echoes.sent("10.0.0.5", b"/go", now=1.0)
    assert not echoes.back("10.0.0.6", b"/go", now=1.01)  # another peer: its own press
    assert not echoes.back("10.0.0.5", b"/stop", now=1.01)  # another message
    assert echoes.back("10.0.0.5", b"/go", now=1.01)
    assert echoes.back("10.0.0.5", b"/go", now=1.02)  # sent twice: comes back twice
    assert not echoes.back("10.0.0.5", b"/go", now=1.03)  # a third is a hand's
    echoes.sent("10.0.0.5", b"/go", now=2.0)
    assert not echoes.back("10.0.0.5", b"/go", now=2.2)  # later than the window: a hand's again
    assert echoes.recognised == 2


@pytest.mark.unit
def test_what_came_from_a_peer_and_went_back_to_it_is_its_echo_only_once_it_is_known_to_echo() -> None:
    """A surface that does not echo sends a fader to 0, 0.02, 0 again: its second 0 is its hand's
    (the bridge mirrored the first back to it, and that was dropped as its echo: the fader stayed up)."""
    echoes = Echoes(window=0.1)
    echoes.sent("surface", b"/f 0", now=1.0, reflected=True)
    echoes.sent("surface", b"/f 0.02", now=1.02, reflected=True)
    assert not echoes.back("surface", b"/f 0", now=1.04)
    echoes.sent("mirror", b"/go", now=2.0)  # something from elsewhere, sent back as it was: it echoes
    assert echoes.back("mirror", b"/go", now=2.001)
    echoes.sent("mirror", b"/go", now=2.5, reflected=True)  # and so its own come back as echoes too
    assert echoes.back("mirror", b"/go", now=2.52)


@pytest.mark.unit
def test_a_loop_started_by_a_peer_itself_stops_on_its_first_fast_turn() -> None:
    """An IAC bus chosen both ways, a GO from a pad of fixed velocity on it: fired, sent back (its LED), back
    a millisecond later: no hand is that fast, it is the echo (it fired the GO a second time when only the
    second fast turn was; a reviewer's case). The same note a player hits 20 ms later is the player's."""
    echoes = Echoes(window=0.1)
    echoes.sent("midi", (0x90, 61, 127), now=1.0, reflected=True)
    assert echoes.back("midi", (0x90, 61, 127), now=1.001)
    # A fast return of its own message proves nothing of a peer: a surface that sent a value twice at once
    # was trusted to echo for 30 s, and its hand's 0, 0.02, 0 lost the last 0 (a reviewer's case).
    twice = Echoes(window=0.1)
    twice.sent("surface", b"/f 0.5", now=1.0, reflected=True)
    assert twice.back("surface", b"/f 0.5", now=1.002)  # the same value again at once: dropped, harmless
    twice.sent("surface", b"/f 0", now=1.5, reflected=True)
    twice.sent("surface", b"/f 0.02", now=1.53, reflected=True)
    assert not twice.back("surface", b"/f 0", now=1.56)  # the hand's 0 again
    # A fader thrown to 0, up a hair and back to 0 within a few ms (a pot's bounce, a quick flick): its
    # 0.02 came in between, so the second 0 is its hand, not the first's echo (a reviewer's case).
    flick = Echoes(window=0.1)
    flick.sent("surface", b"/f 0", now=1.0, reflected=True)
    assert not flick.back("surface", b"/f 0.02", now=1.002)  # (taken: nothing was sent as 0.02)
    flick.sent("surface", b"/f 0.02", now=1.0025, reflected=True)
    assert not flick.back("surface", b"/f 0", now=1.004)
    # What is about something else in between (a keyboard's aftertouch) leaves a loop a loop.
    clocked = Echoes(window=0.1)
    clocked.sent("midi", (0x90, 62, 127), now=1.0, reflected=True)
    assert not clocked.back("midi", (0xD0, 40), now=1.001, family=(0xD0,))
    assert clocked.back("midi", (0x90, 62, 127), now=1.002, family=(0x90, 62))
    player = Echoes(window=0.1)  # (a device not known to echo)
    player.sent("midi", (0x90, 61, 127), now=2.0, reflected=True)
    assert not player.back("midi", (0x90, 61, 127), now=2.02)


@pytest.mark.unit
def test_sendings_are_forgotten_in_order_and_never_more_than_the_limit() -> None:
    echoes = Echoes(window=0.1, limit=100)
    for i in range(1000):  # a flood of distinct values
        echoes.sent("h", i, now=1.0)
    assert len(echoes._order) == 100 and len(echoes._sent) == 100
    assert echoes.back("h", 999, now=1.01) and not echoes.back("h", 0, now=1.01)  # the oldest went first
    echoes.sent("h", "later", now=1.0 + echoes.keep + 0.01)  # kept long enough: the rest are forgotten
    assert len(echoes._order) == 1 and len(echoes._sent) == 1


@pytest.mark.unit
def test_a_sending_is_kept_for_an_echo_that_arrived_in_time_and_is_read_after_later_sendings() -> None:
    """The window counts to when the echo arrived; a bridge that sent something else before reading it
    (the datagrams ahead of it in a stalled bridge's buffer, mirrored out) had forgotten the sending."""
    echoes = Echoes(window=0.1)
    echoes.sent("desk", b"/level 0.25", now=1.0)
    echoes.sent("desk", b"/marker 1", now=1.3, reflected=True)  # read first, and mirrored back
    assert echoes.back("desk", b"/level 0.25", now=1.01)  # arrived 10 ms after its sending


@pytest.mark.unit
def test_an_echo_is_matched_only_to_a_sending_in_the_window_before_it_arrived() -> None:
    echoes = Echoes(window=0.1)
    echoes.sent("desk", b"/go", now=1.0)
    echoes.sent("desk", b"/go", now=1.5)
    assert not echoes.back("desk", b"/go", now=1.2)  # 0.2 s after one, before the other: a hand's
    assert echoes.back("desk", b"/go", now=1.55)  # the second's echo
    echoes.sent("desk", b"/stop", now=2.0)
    assert not echoes.back("desk", b"/stop", now=1.99)  # arrived before it was sent: a hand's
    assert echoes.back("desk", b"/stop", now=2.05)  # which left the sending for its own echo


# -- OSC ---------------------------------------------------------------------------------
def test_two_bridges_aimed_at_each_other_pass_a_go_on_once(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    """FOH's bridge and the monitor world's, each the other's target, the desk behind the second."""
    a_port, b_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    a = bridge_factory(write_config(folder(tmp_path, "a"), osc_table(a_port, b_port), controls=SHOW))
    b = bridge_factory(write_config(folder(tmp_path, "b"), osc_table(b_port, a_port, dump.port), controls=SHOW))
    page = client_factory(a.url)
    page.send("go", 1)
    page.send("go", 0)
    page.send("level", 0.5)
    dump.wait_for("/level f 0.500000")  # through A, then B, to the desk: the GO went before it
    assert dump.messages().count("/go i 1") == 1
    assert b.get_json("/api/values")["level"] == 0.5
    # B sent nothing back to A: what came from A came from the port A listens on, B's target.
    oscsend(a_port, "/marker", "f", 7)
    wait_until(lambda: a.get_json("/api/values")["marker"] == 7, what="the marker at A")
    assert osc_health(a)["received"] == 1
    assert [t["from_port"] for t in osc_health(a)["targets"]] == [a_port]


@pytest.fixture
def relay() -> Iterator[Callable[[int], int]]:
    """socat passing every datagram that reaches a free port on to ``port``, from a port of its own:
    an OSC router (or a desk) that mirrors what it is sent back to where it is told, not to the sender."""
    if shutil.which("socat") is None:
        unavailable("socat is not installed (Debian package socat; make test installs it)")
    started: list[subprocess.Popen[bytes]] = []

    def start(port: int) -> int:
        listen = free_port(socket.SOCK_DGRAM)
        started.append(
            subprocess.Popen(
                # (One process, one way: with fork, a child per datagram took past the echo window on a
                # loaded machine, and an echo was counted as a change; the full suite failed once on it.)
                ["socat", "-u", f"UDP4-RECV:{listen},bind=127.0.0.1", f"UDP4-SENDTO:127.0.0.1:{port}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_until(lambda: udp_port_taken(listen), what="socat to listen")
        return listen

    yield start
    for proc in started:
        terminate(proc)


@pytest.mark.parametrize("listen", ["127.0.0.1", "[::]"])
def test_a_peer_that_sends_everything_back_fires_a_go_once_and_keeps_the_last_move(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, relay: Callable[[int], int], listen: str
) -> None:
    """Also with a dual-stack listen, which names an IPv4 peer ::ffff:127.0.0.1 (it looped for ever)."""
    osc_port = free_port(socket.SOCK_DGRAM)
    back = relay(osc_port)
    server = bridge_factory(write_config(tmp_path, osc_table(osc_port, back, host=listen), controls=SHOW))
    page = client_factory(server.url)
    moves = go_and_drag(page)
    sent = 1 + len(moves)  # the GO and every move, once each
    wait_until(lambda: osc_health(server)["echoes"] == sent, what="every message sent back, and known")
    health = osc_health(server)
    assert health["targets"][0]["sent"] == sent
    assert server.get_json("/api/values")["level"] == moves[-1]  # no echo dragged it back
    page.send("marker", 1)
    wait_until(lambda: osc_health(server)["echoes"] == sent + 1, what="the marker back")
    assert osc_health(server)["targets"][0]["sent"] == sent + 1  # and nothing was fired again meanwhile


class LateDaw:
    """A DAW on a UDP port that sends every /level it is sent back to the bridge ``delay`` seconds later, as it
    is or rounded to ``digits`` (its own fader's resolution), from that port."""

    def __init__(self, delay: float, digits: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.delay, self.digits = delay, digits
        self.bridge = 0
        self.received: list[float] = []
        self.echoed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._due: queue.Queue[tuple[float, float]] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._echoer = threading.Thread(target=self._echo, daemon=True)
        self._echoer.start()

    def _serve(self) -> None:
        from pythonosc.osc_message import OscMessage

        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, OSError):
                continue
            message = OscMessage(data)
            if message.address != "/level":
                with self._lock:
                    self.received.append(-1.0)  # (the marker)
                continue
            value = float(message.params[0])
            with self._lock:
                self.received.append(value)
            echo = value if self.digits is None else round(value, self.digits)
            self._due.put((time.monotonic() + self.delay, echo))

    def _echo(self) -> None:
        """The echoes in the order their messages came, each at its time."""
        from pythonosc.osc_message_builder import OscMessageBuilder

        while not self._stop.is_set():
            try:
                due, value = self._due.get(timeout=0.2)
            except queue.Empty:
                continue
            self._stop.wait(max(0.0, due - time.monotonic()))  # (the DAW's own latency)
            builder = OscMessageBuilder(address="/level")
            builder.add_arg(value)
            self.sock.sendto(builder.build().dgram, ("127.0.0.1", self.bridge))
            with self._lock:
                self.echoed += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._echoer.join(timeout=5)
        self.sock.close()


@pytest.mark.parametrize("digits", [None, 1])
def test_a_daw_that_echoes_late_or_rounded_is_not_sent_its_old_values_back(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, digits: int | None
) -> None:
    """A DAW echoing what it is sent 150 ms late (past the echo window), or rounded to its fader's 0.1: each echo
    of an earlier step was taken for a crossing and sent back to it, and a fade ended short of where the
    operator let go (0.66 for 0.8; a reviewer's case of the first crossing rule)."""
    daw = LateDaw(0.15, digits)
    try:
        osc_port = free_port(socket.SOCK_DGRAM)
        daw.bridge = osc_port
        server = bridge_factory(write_config(tmp_path, osc_table(osc_port, daw.port), controls=SHOW))
        page = client_factory(server.url)
        moves = [round(0.3 + i / 50, 2) for i in range(26)]  # 0.3 to 0.8
        for value in moves:
            page.send("level", value)
        wait_until(lambda: daw.echoed == len(moves), what="every step echoed")
        wait_until(lambda: osc_health(server)["received"] >= len(moves), what="every echo read")
        page.send("marker", 1)  # (after it, the DAW has had all the bridge sent it)
        wait_until(lambda: -1.0 in daw.received, what="the marker at the DAW")
        assert daw.received[: len(moves)] == [pytest.approx(v, abs=1e-6) for v in moves]
        assert daw.received[len(moves) :] == [-1.0]  # nothing it sent was sent back to it
        assert server.get_json("/api/values")["level"] == pytest.approx(0.8, abs=0.05 if digits else 1e-6)
    finally:
        daw.close()


@contextlib.contextmanager
def stalled(server: BridgeProcess) -> Iterator[None]:
    """The bridge stopped (SIGSTOP, as a machine starved of CPU would hold it) for what the block sends, then
    0.3 s more, three times the echo window: it reads nothing meanwhile. The sleep is the stall itself."""
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        yield
        time.sleep(0.3)
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)


def sent_to(desk: socket.socket, address: bytes) -> tuple[bytes, tuple[str, int]]:
    """The first message to ``address`` the bridge sends the desk, and where it came from."""
    data, sender = b"", ("", 0)
    while address not in data:
        data, sender = desk.recvfrom(65536)
    return data, sender


@contextlib.contextmanager
def mirrored(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> Iterator[tuple[BridgeProcess, socket.socket, socket.socket, int, bytes]]:
    """A desk the bridge sends to, and a port of the desk's own that mirrors back to the bridge; the level set
    to 0.25 on a page and sent to the desk: (the bridge, the desk, the mirror, the bridge's OSC port, that
    message)."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as desk,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as back,
    ):
        desk.bind(("127.0.0.1", 0))
        back.bind(("127.0.0.1", 0))
        desk.settimeout(DEADLINE)
        osc_port = free_port(socket.SOCK_DGRAM)
        server = bridge_factory(write_config(tmp_path, osc_table(osc_port, desk.getsockname()[1]), controls=SHOW))
        client_factory(server.url).send("level", 0.25)
        sent, _ = sent_to(desk, b"/level")
        yield server, desk, back, osc_port, sent


def test_an_echo_read_late_by_a_stalled_bridge_is_known_by_when_it_arrived(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    """A desk that mirrors what it is sent from a port of its own (as the relay above), back at once, while
    the bridge is stopped (SIGSTOP, as a machine starved of CPU would hold it): read 0.3 s later, three times
    the echo window, it is still the echo, since the kernel's arrival time counts, not the reading."""
    with mirrored(tmp_path, bridge_factory, client_factory) as (server, desk, back, osc_port, sent):
        with stalled(server):
            back.sendto(sent, ("127.0.0.1", osc_port))
    wait_until(lambda: osc_health(server)["received"] == 1, what="the echo read")
    assert osc_health(server)["echoes"] == 1


def test_an_echo_behind_a_move_in_a_stalled_bridges_buffer_is_still_known(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    """The desk moves the marker and asks for a sync, then its echo of the level comes, all while the bridge
    is stopped. Read 0.3 s later, the move is applied at the sync (it reports what came before it) and
    mirrored back to the desk: a sending, which forgot the level's (kept for the window by the clock); the
    echo, which arrived in time, was then taken for a move."""
    with mirrored(tmp_path, bridge_factory, client_factory) as (server, desk, back, osc_port, sent):
        with stalled(server):
            back.sendto(b"/marker\x00,f\x00\x00?\x80\x00\x00", ("127.0.0.1", osc_port))  # 1.0
            back.sendto(b"/bridge/sync\x00\x00\x00\x00,\x00\x00\x00", ("127.0.0.1", osc_port))
            back.sendto(sent, ("127.0.0.1", osc_port))
        wait_until(lambda: osc_health(server)["received"] == 3, what="all read")
        assert sent_to(desk, b"/marker")[0].endswith(b"?\x80\x00\x00")  # the move mirrored out first
    assert osc_health(server)["echoes"] == 1


def test_the_first_echo_on_a_targets_own_socket_is_known_by_when_it_arrived(
    tmp_path: Path, bridge_factory: Start
) -> None:
    """A target the listening address cannot reach (an IPv6 listen, an IPv4 desk) has a socket of its own; it is
    stamped when made, so the very first datagram on it, an echo read 0.3 s late, is known (a reviewer's case)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as desk:
        desk.bind(("127.0.0.1", 0))
        desk.settimeout(DEADLINE)
        osc_port = free_port(socket.SOCK_DGRAM)
        config = write_config(tmp_path, osc_table(osc_port, desk.getsockname()[1], host="[::1]"), controls=SHOW)
        server = bridge_factory(config)
        server.put_values(level=0.5)
        sent, sender = sent_to(desk, b"/level")
        assert sender[1] != osc_port  # from the target's own socket
        with stalled(server):
            desk.sendto(sent, sender)
    wait_until(lambda: osc_health(server)["received"] == 1, what="the echo read")
    assert osc_health(server)["echoes"] == 1


def test_a_desk_that_moves_back_to_what_it_was_sent_after_a_burst_is_not_taken_for_its_echo(
    tmp_path: Path, bridge_factory: Start
) -> None:
    """Datagrams past the stamped ones of a reading are timed by the reading, never earlier: given an earlier
    stamp, a desk's real move back to 0.5, 0.25 s after the bridge sent it 0.5, matched that sending and was
    dropped as its echo (a reviewer's case). The bridge is stopped meanwhile, so all come in one reading."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as desk:
        desk.bind(("127.0.0.1", 0))
        desk.settimeout(DEADLINE)
        osc_port = free_port(socket.SOCK_DGRAM)
        server = bridge_factory(write_config(tmp_path, osc_table(osc_port, desk.getsockname()[1]), controls=SHOW))
        server.put_values(level=0.5)
        sent, _ = sent_to(desk, b"/level")
        with stalled(server):
            for _ in range(EXACT - 1):
                desk.sendto(b"/marker\x00,f\x00\x00\x00\x00\x00\x00", ("127.0.0.1", osc_port))
            desk.sendto(sent.replace(b"?\x00\x00\x00", b">\x99\x99\x9a"), ("127.0.0.1", osc_port))  # 0.3
            time.sleep(0.25)  # the desk's hand, later than the echo window (the bridge reads nothing meanwhile)
            desk.sendto(sent, ("127.0.0.1", osc_port))  # back to 0.5: a move, not an echo
    wait_until(lambda: osc_health(server)["received"] == EXACT + 1, what="the desk's datagrams read")
    assert osc_health(server)["echoes"] == 0 and server.get_json("/api/values")["level"] == 0.5


def test_a_flood_is_stamped_for_its_first_datagrams_and_the_rest_are_timed_by_their_reading() -> None:
    """What bridge.osc.arrival.Clock reads: kernel stamps, on the monotonic clock, none later than the reading;
    past EXACT datagrams of one reading, a plain read (a flood costs no more than before), timed when handled."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as inlet,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out,
    ):
        inlet.bind(("127.0.0.1", 0))
        stamp(inlet)
        before = time.monotonic()
        for n in range(EXACT + 4):
            out.sendto(b"/level\x00\x00,i\x00\x00" + n.to_bytes(4, "big"), inlet.getsockname())
        inlet.settimeout(DEADLINE)
        clock = Clock()
        got = [clock.receive(inlet, 65536)[0][-1] for _ in range(EXACT + 4)]
    assert got == list(range(EXACT + 4))
    stamped, rest = clock.arrivals[:EXACT], clock.arrivals[EXACT:]
    assert all(isinstance(at, float) for at in stamped) and rest == [None] * 4
    assert before - 1 < stamped[0] <= stamped[-1] <= time.monotonic()


def test_oscquery_clients_bound_both_ways_fire_a_go_once_and_keep_the_last_move(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    """Two clients that send back every frame they get (ossia score, Chataigne with two-way bindings):
    each one's echo went on to the other, and a GO fired about 1,000 times a second while they stayed."""
    osc_port, oscquery_port = free_port(socket.SOCK_DGRAM), free_port()
    extra = osc_table(osc_port, dump.port) + f"[oscquery]\nport = {oscquery_port}\n"
    server = bridge_factory(write_config(tmp_path, extra, controls=SHOW))
    mirrors = [WsPeer(oscquery_port, mirror=True) for _ in range(2)]
    try:
        for mirror in mirrors:
            mirror.command("LISTEN", "/go")
            mirror.command("LISTEN", "/level")
        wait_listening(server, "/go", 2)
        wait_listening(server, "/level", 2)
        page = client_factory(server.url)
        moves = go_and_drag(page)
        page.send("marker", 1)  # heard by no client: at the desk, after the rest went out
        dump.wait_for("/marker f 1.000000")
        for mirror in mirrors:
            mirror.wait_for("/level", [pytest.approx(moves[-1])])

        def all_known() -> bool:
            echoed = server.get_json("/healthz")["adapters"]["oscquery"]["echoes"]
            return bool(echoed == sum(len(mirror.frames) for mirror in mirrors))

        wait_until(all_known, what="every frame sent back, and known")
        assert dump.messages().count("/go i 1") == 1
        assert server.get_json("/api/values")["level"] == moves[-1]
    finally:
        for mirror in mirrors:
            mirror.close()


# -- MIDI ----------------------------------------------------------------------------------
TRIGGER_TOML = """
[[controls]]
id = "go"
type = "button"
mode = "trigger"
midi = { channel = 1, note = 62 }
"""


def patched_back(jack: JackServer, peer: MidiPeer, tmp_path: Path, bridge_factory: Start) -> tuple[BridgeProcess, int]:
    """A bridge on JACK whose output is connected to its own input too; what it had sent before the patch."""
    server, names = virtual_midi_bridge(jack, peer, tmp_path, bridge_factory, jumping(CONTROLS_TOML + TRIGGER_TOML))
    output = next(p for p in peer.sources() if p.endswith(":" + names["output"]))
    sink = next(p for p in peer.sinks() if p.endswith(":" + names["input"]))
    env = {**os.environ, "JACK_DEFAULT_SERVER": jack.name}
    subprocess.run(["jack_connect", output, sink], check=True, timeout=10, env=env)
    # Live from the server's next cycle (1.3 ms): none of what was sent so far comes back, all that follows does.
    return server, midi_health(server)["sent"]


def all_back(server: BridgeProcess, before: int) -> bool:
    """Every message sent since the patch came back and was known for its echo."""
    health = midi_health(server)
    return bool(health["echoes"] == health["sent"] - before)


def test_a_pad_of_fixed_velocity_fires_its_go_once_through_a_patch_back_and_keeps_its_toggle(
    jack: JackServer, peer: MidiPeer, tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    """The controller's own press: its LED (feedback, the very note-on) came back through the patch and was
    taken for a second press, until its second fast turn: the GO fired twice, a toggle pad ended off."""
    server, before = patched_back(jack, peer, tmp_path, bridge_factory)
    page = client_factory(server.url)
    page.wait_event("snapshot")
    running = threading.Event()

    def clock() -> None:  # a keyboard's aftertouch beside the pads, every half millisecond: nothing of theirs
        pressure = 0
        while not running.wait(0.0005):
            pressure = (pressure + 1) % 128
            peer.send(mido.Message("aftertouch", value=pressure))

    ticking = threading.Thread(target=clock)
    ticking.start()
    try:
        peer.send(note_on(1, 62, 127), note_off(1, 62))  # the GO pad
        peer.send(note_on(1, 60, 127), note_off(1, 60))  # the toggle's pad
        wait_until(lambda: server.get_json("/api/values")["toggle1"] == 1, what="the toggle on")
    finally:
        running.set()
        ticking.join()
    wait_until(lambda: midi_health(server)["sent"] > before and all_back(server, before), what="the LEDs back, known")
    assert [e["data"] for e in page.of("update value") if e["who"] == "go"] == [1]
    assert server.get_json("/api/values")["toggle1"] == 1


def test_a_midi_output_patched_to_the_input_neither_undoes_a_toggle_nor_fires_a_go_again(
    jack: JackServer, peer: MidiPeer, tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    """An IAC bus or a virtual cable chosen both ways, or a DAW track passing its input through."""
    server, before = patched_back(jack, peer, tmp_path, bridge_factory)
    page = client_factory(server.url)
    peer.clear()

    page.send("toggle1", 1)
    page.send("go", 1)
    page.send("go", 0)
    page.send("slider1", 10)
    peer.wait_for(note_on(1, 60, 127), note_on(1, 62, 127), note_off(1, 62), cc(1, 1, 25))
    wait_until(lambda: all_back(server, before), what="every message sent since the patch back at the input, and known")
    values = server.get_json("/api/values")
    assert values["toggle1"] == 1  # its own note-on did not flip it back
    assert values["slider1"] == 10  # nor did CC 25 come back as 9.84
    assert [m for m in peer.received() if m.type == "note_on" and m.note == 62] == [note_on(1, 62, 127)]


def test_a_pad_pressed_again_and_again_flips_its_toggle_each_time(
    jack: JackServer, peer: MidiPeer, tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    """A pad of fixed velocity (note-on 127 each press) under its LED: the LED the bridge sends back is
    that very note-on, and the next press is no echo of it (presses were dropped, and the toggle stuck)."""
    server, _ = virtual_midi_bridge(jack, peer, tmp_path, bridge_factory, jumping(CONTROLS_TOML))
    page = client_factory(server.url)
    shown = [server.get_json("/api/values")["toggle1"]]
    for _ in range(6):
        peer.clear()
        peer.send(note_on(1, 60, 127), note_off(1, 60))
        page.wait_value("toggle1", 1 - shown[-1])
        shown.append(1 - shown[-1])
        peer.wait_for(note_on(1, 60, 127) if shown[-1] else note_off(1, 60))  # the light
        lit = time.monotonic()  # a hand sees it, then presses again: far slower than a loop's turn
        wait_until(lambda at=lit: time.monotonic() - at > 2 * FAST, what="a hand's reaction, at its quickest")
    assert shown == [0, 1, 0, 1, 0, 1, 0]
    assert server.get_json("/api/values")["toggle1"] == 0
    assert midi_health(server)["echoes"] == 0


def test_a_surface_that_sends_from_one_port_and_listens_on_another_keeps_its_last_move(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump, peers: Callable[[], OscPeer]
) -> None:
    """Its moves are mirrored back to the port it listens on; a move back to a value it had a moment
    before is its hand's, not an echo (a fader thrown down, up a hair and down again ended up a hair)."""
    osc_port = free_port(socket.SOCK_DGRAM)
    server = bridge_factory(write_config(tmp_path, osc_table(osc_port, dump.port), controls=SHOW))
    surface = peers()
    page = client_factory(server.url)
    for value in (0.5, 0.25, 0.5, 0.0, 0.02, 0.0):
        surface.send(osc_port, "/level", value)
        page.wait_value("level", value)
        dump.wait_for(f"/level f {value:.6f}")  # mirrored to the port it listens on
    assert server.get_json("/api/values")["level"] == 0.0
    assert osc_health(server)["echoes"] == 0


def test_no_other_program_can_take_the_osc_port_while_the_bridge_listens(tmp_path: Path, bridge_factory: Start) -> None:
    """Sending from the listening port never shares it: a program that asks to share it is refused, as
    before (sharing it with the targets' sockets let any program that asked take the bridge's input)."""
    osc_port = free_port(socket.SOCK_DGRAM)
    server = bridge_factory(write_config(tmp_path, osc_table(osc_port, free_port(socket.SOCK_DGRAM)), controls=SHOW))
    assert osc_health(server)["targets"][0]["from_port"] == osc_port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError):
            other.bind(("127.0.0.1", osc_port))


@pytest.mark.unit
def test_a_crossing_is_told_from_a_late_echo_and_its_window_from_the_echoes_in_it() -> None:
    """bridge.osc.crossed, step by step. A DAW's own move crossing a phone's drag goes back to it once; the
    echoes of the phone's steps that follow in the quarter second after went back too, and the DAW, taking
    them, ended on a stale step or apart (a reviewer's case of 7f175a8). A desk's own reports in that quarter
    second, far from anything the phone sent, still go back."""
    from bridge.model import Control
    from bridge.osc.crossed import Crossed

    level = Control(id="level", type="range", label="Level", default=0.0, osc="/level")
    crossed = Crossed()
    moves = [round(0.3 + i / 50, 2) for i in range(26)]
    for n, value in enumerate(moves):  # a phone's drag, 2 ms a step
        assert crossed.check(level, value, None, n * 0.002) is False
    assert crossed.check(level, 0.55, "daw", 0.1) is True  # the DAW's own move: a crossing, sent back
    assert crossed.check(level, 0.7, "daw", 0.15) is False  # its late echo of a phone's step, in the window
    assert crossed.check(level, 0.55, "daw", 0.2) is False  # its exact echo of what was sent back to it
    # Its hand's next report, a hair from what was sent back to it (which it took over that report): back too
    # (it ended a step off when what was sent back counted as sent to it within rounding, a reviewer's case).
    assert crossed.check(level, 0.553, "daw", 0.21) is True
    desk = Crossed()
    for n, value in enumerate((0.2, 0.25)):
        desk.check(level, value, None, n * 0.01)
    assert desk.check(level, 0.9, "x32", 0.1) is True
    assert desk.check(level, 0.93, "x32", 0.2) is True  # (on its way before it had 0.9 back)
    assert desk.check(level, 0.96, "x32", 0.5) is False  # past the window: its own
