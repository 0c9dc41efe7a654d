"""Fuzz at scale against the real server: ``python -m bench.fuzz -n N`` (``make fuzz N=...``).

Each fuzzer sends N units, half from the test suite's Hypothesis strategies
(tests/strategies.py, as the quick fuzz tests in tests/test_faults.py) and half from a raw generator here (random bytes,
mutated valid packets), unless said otherwise:

* ``osc``: UDP datagrams (messages, bundles, junk) to the bridge's OSC port.
  The server must count every one (``adapters.osc.received`` in /healthz).
* ``osc-tcp``: the same packets over TCP to ``[osc] listen_tcp``, SLIP or
  length-prefixed, 50 to a connection, the byte stream cut anywhere; the
  server must count every one. Then streams that turn to garbage (random
  bytes, absurd lengths, a frame cut short): each may cost its connection,
  never the server.
* ``socketio-payloads``: ``value changed`` events with any JSON, over a raw
  WebSocket; the server must count every one (``adapters.web.received``).
* ``socketio-frames``: raw Engine.IO/Socket.IO frames (broken packets, bad
  types, junk, oversize); a connection the server closes is opened again.
* ``midi``: random MIDI bytes from a JACK port of ours into the bridge's input.
* ``config``: config files (random TOML, mutated real configs) read by the
  config loader, which must load them or raise ``ConfigError``, nothing else.

After each: the server still answers, every stored value is within its
control's bounds, and the log has no traceback. The pass rule is printed
with the counts and times; the exit code is 0 or 1.

"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import websocket
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from bench.common import Server
from bridge.config import load_config
from bridge.errors import ConfigError, MalformedPacket
from bridge.osc.framing import MAX_PACKET, frame
from bridge.osc.packets import check_packet
from tests.helpers import CONTROLS_TOML, ROOT, assert_values_in_bounds, free_port
from tests.jack import BACKEND, JackServer, MidiPeer, jack_available, unique_name
from tests.strategies import osc_datagrams, payload

#: Datagrams (or frames) in flight before the sender waits for the server to count them.
WINDOW = 400
ADDRESSES = ["/slider1", "/slider2", "/fine", "/bend", "/txt1", "/toggle1", "/button1", "/nope", "/bridge/sync", "/*"]


def hypothesis_units(strategy: st.SearchStrategy[Any], n: int, seed_value: int) -> Iterator[Any]:
    """``n`` examples of ``strategy`` (fewer if Hypothesis runs out), generated only (no shrinking, no
    database), in a thread of their own; the same ``seed_value`` gives the same examples."""
    import queue

    out: queue.Queue[Any] = queue.Queue(maxsize=1000)
    done = object()

    @settings(
        max_examples=n,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(item=strategy)
    @seed(seed_value)
    def produce(item: Any) -> None:
        out.put(item)

    def run() -> None:
        try:
            produce()
        finally:
            out.put(done)

    threading.Thread(target=run, daemon=True).start()
    count = 0
    while count < n:
        item = out.get()
        if item is done:
            return  # Hypothesis may stop early once it has seen every small example
        count += 1
        yield item


# -- raw generators ----------------------------------------------------------------------------
def mutate(rng: random.Random, data: bytes) -> bytes:
    """``data`` with a few bytes flipped, cut short or extended."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if choice < 0.5 and buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif choice < 0.75 and buf:
            del buf[rng.randrange(len(buf)) :]
        else:
            buf += rng.randbytes(rng.randint(1, 12))
    return bytes(buf)


def osc_message(rng: random.Random) -> bytes:
    builder = OscMessageBuilder(address=rng.choice(ADDRESSES))
    for _ in range(rng.randint(0, 3)):
        kind = rng.random()
        if kind < 0.3:
            builder.add_arg(rng.choice([0.0, 1.0, -3e38, 3e38, float("nan"), float("inf"), rng.uniform(-100, 100)]))
        elif kind < 0.6:
            builder.add_arg(rng.choice([0, 1, -(2**31), 2**31 - 1, rng.randint(-1000, 1000)]))
        elif kind < 0.8:
            builder.add_arg("".join(chr(rng.randint(32, 0x2FF)) for _ in range(rng.randint(0, 40))))
        elif kind < 0.9:
            builder.add_arg(rng.choice([True, False]))
        else:
            builder.add_arg(rng.randbytes(rng.randint(1, 20)))  # python-osc refuses an empty blob
    return bytes(builder.build().dgram)


def raw_osc(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.2:
        return rng.randbytes(rng.randint(0, 200))
    if kind < 0.55:
        return osc_message(rng)
    if kind < 0.8:
        return mutate(rng, osc_message(rng))
    bundle = OscBundleBuilder(IMMEDIATELY)
    for _ in range(rng.randint(0, 4)):
        bundle.add_content(OscMessageBuilder(address=rng.choice(ADDRESSES)).build())
    data = bytes(bundle.build().dgram)
    return data if rng.random() < 0.5 else mutate(rng, data)


def raw_payload(rng: random.Random) -> object:
    who = rng.choice(["slider1", "fine", "txt1", "toggle1", "button1", "bend", "nope", "", None, 5])
    data = rng.choice(
        [rng.uniform(-1e6, 1e6), rng.randint(-(2**70), 2**70), "x" * rng.randint(0, 5000), True, None, [1], {"a": 1}]
    )
    return rng.choice([{"who": who, "data": data}, {"who": who}, {"data": data}, data, [who, data]])


def raw_frame(rng: random.Random) -> str | bytes:
    kind = rng.random()
    event = json.dumps(["value changed", {"who": "slider1", "data": rng.randint(0, 50)}])
    if kind < 0.25:
        return mutate(rng, ("42" + event).encode()).decode("utf-8", "replace")
    if kind < 0.4:
        return (
            rng.choice("0123456789") + rng.choice(["", "0", "1", "2", "3", "4", "5", "6"]) + event[: rng.randint(0, 40)]
        )
    if kind < 0.55:
        return "".join(chr(rng.randint(0, 0x7FF)) for _ in range(rng.randint(0, 60)))
    if kind < 0.65:
        return rng.randbytes(rng.randint(0, 60))
    if kind < 0.75:
        return "42" + json.dumps([rng.choice(["midi learn", "ping bridge", "scene save", "x", 5, None]), None])
    if kind < 0.85:
        return "4" + rng.choice(["0", "1", "2", "3", "4", "5", "6"]) + "/nope," + event
    if kind < 0.9:
        return "42" + event.replace("slider1", "txt1").replace(rng.choice("0123456789"), "9" * 200)
    return "42" + json.dumps(["value changed", {"who": "txt1", "data": "y" * rng.randint(100_000, 2_000_000)}])


def raw_midi(rng: random.Random) -> list[int]:
    if rng.random() < 0.3:
        return [rng.randrange(256) for _ in range(rng.randint(1, 6))]
    status = rng.choice([0x80, 0x90, 0xB0, 0xB1, 0xB2, 0xE0, 0xE2, 0xC0, 0xF0, 0xF8])
    return [status, rng.choice([1, 2, 7, 39, 60, 61, rng.randrange(128)]), rng.randrange(128)][: rng.randint(1, 3)]


def raw_config(rng: random.Random, seed_text: str) -> str:
    lines = seed_text.splitlines()
    for _ in range(rng.randint(1, 5)):
        i = rng.randrange(len(lines))
        choice = rng.random()
        if choice < 0.3:
            del lines[i]
        elif choice < 0.6:
            lines[i] = mutate(rng, lines[i].encode()).decode("utf-8", "replace")
        else:
            key = rng.choice(
                ["min", "max", "step", "value", "type", "cc", "channel", "port", "listen", "id", "options"]
            )
            value = rng.choice(['"x"', "-1", "1e400", "[]", "{}", "true", '"range"', "300", '"0.0.0.0:99999"', "nan"])
            lines.insert(i, f"{key} = {value}")
    return "\n".join(lines)


# -- the fuzzers ---------------------------------------------------------------------------------
class Run:
    """One bridge (with OSC and, when JACK is here, MIDI) that every fuzzer talks to."""

    def __init__(self, folder: Path, jack: JackServer | None) -> None:
        self.folder = folder
        self.osc_port = free_port(socket.SOCK_DGRAM)
        self.tcp_port = free_port()
        self.midi_names = {"input": unique_name("fuzz-in"), "output": unique_name("fuzz-out")}
        extra = f'[osc]\nlisten = "127.0.0.1:{self.osc_port}"\nlisten_tcp = "127.0.0.1:{self.tcp_port}"\ntargets = []\n'
        env = {}
        if jack is not None:
            names = self.midi_names
            extra += f'[midi]\nbackend = "{BACKEND}"\ninput = "{names["input"]}"\noutput = "{names["output"]}"\n'
            env["JACK_DEFAULT_SERVER"] = jack.name
        self.server = Server(extra=extra, controls=CONTROLS_TOML, env=env)
        self.controls = {c.id: c for c in load_config(self._config_for_bounds()).controls}
        self.log_seen = 0

    def _config_for_bounds(self) -> Path:
        path = self.folder / "bounds.toml"
        path.write_text(CONTROLS_TOML, encoding="utf-8")
        return path

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.server.url + "/healthz", timeout=30) as resp:
            body: dict[str, Any] = json.loads(resp.read())
        return body

    def check(self) -> list[str]:
        """What is wrong with the server now: not answering, a value out of bounds, a traceback since the last check."""
        problems = []
        try:
            with urllib.request.urlopen(self.server.url + "/api/values", timeout=30) as resp:
                values = json.loads(resp.read())
            assert_values_in_bounds(self.controls, values)
        except (OSError, AssertionError) as err:
            problems.append(f"values: {err!r}")
        text = (self.server.folder / "bridge.log").read_text(encoding="utf-8", errors="replace")
        log, self.log_seen = text[self.log_seen :], len(text)
        if "Traceback" in log:
            problems.append("a traceback in the log: " + log[log.index("Traceback") :][:600])
        return problems


def fuzz_osc(run: Run, n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - fuzz input, not secrets
    before = run.health()["adapters"]["osc"]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = ("127.0.0.1", run.osc_port)
    sent = 0

    def units() -> Iterator[bytes]:
        yield from hypothesis_units(osc_datagrams(), n // 2, seed)
        for _ in range(n - n // 2):
            yield raw_osc(rng)

    counted = before["received"]
    for data in units():
        sock.sendto(data[:65000], target)
        sent += 1
        if sent - (counted - before["received"]) >= WINDOW:
            # Let the server count what is in flight: a full socket buffer would drop datagrams.
            while sent - (counted - before["received"]) >= WINDOW // 2:
                counted = run.health()["adapters"]["osc"]["received"]
    sock.close()
    deadline = time.monotonic() + 30
    after = run.health()["adapters"]["osc"]
    while after["received"] - before["received"] < sent and time.monotonic() < deadline:
        time.sleep(0.05)
        after = run.health()["adapters"]["osc"]
    received = after["received"] - before["received"]
    return {
        "sent": sent,
        "server_received": received,
        "server_dropped": after["dropped"] - before["dropped"],
        "counts_match": received == sent,
    }


#: Packets to one TCP connection.
PER_CONNECTION = 50


def fuzz_osc_tcp(run: Run, n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - fuzz input, not secrets
    before = run.health()["adapters"]["osc"]
    target = ("127.0.0.1", run.tcp_port)

    def units() -> Iterator[bytes]:
        yield from hypothesis_units(osc_datagrams(), n // 2, seed)
        for _ in range(n - n // 2):
            yield raw_osc(rng)

    def counted() -> int:
        return int(run.health()["adapters"]["osc"]["received"]) - before["received"]

    # Well framed: every packet counted, however the stream is cut.
    sent = connections = 0
    batch: list[bytes] = []
    junk: list[bytes] = []
    for data in units():
        try:
            check_packet(data[:MAX_PACKET])
        except MalformedPacket:
            junk.append(data)  # not OSC: a stream carrying it is not OSC either (below)
            continue
        batch.append(data[:MAX_PACKET])
        if len(batch) < PER_CONNECTION:
            continue
        sent += _stream(target, batch, rng)
        connections += 1
        batch = []
        deadline = time.monotonic() + 30
        while counted() < sent and time.monotonic() < deadline:
            time.sleep(0.005)
    if batch:
        sent += _stream(target, batch, rng)
        connections += 1
    deadline = time.monotonic() + 30
    while counted() < sent and time.monotonic() < deadline:
        time.sleep(0.05)
    received = counted()

    # Streams that turn to garbage after a good packet (the junk packets above, framed; random bytes;
    # absurd lengths; a frame cut short): each may cost its connection, never the server.
    garbage = max(10, len(junk) // PER_CONNECTION)
    good = OscMessageBuilder(address="/slider1")
    good.add_arg(5.0)
    packet = good.build().dgram
    for i in range(garbage):
        framing = "slip" if i % 2 else "length"
        tail = rng.choice(
            [
                b"".join(frame(j[:MAX_PACKET], framing) for j in junk[i * PER_CONNECTION : (i + 1) * PER_CONNECTION]),
                rng.randbytes(rng.randint(1, 2000)),
                struct.pack(">i", rng.choice([-1, 2**31 - 1, MAX_PACKET + 1])) + rng.randbytes(8),
                frame(packet, framing)[: rng.randint(1, len(packet))],
            ]
        )
        try:
            with socket.create_connection(target, timeout=5) as sock:
                sock.sendall(frame(packet, framing) + tail)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):  # until the server closes its side
                    pass
        except OSError:
            pass  # the server ended it first: what garbage may cost
    after = run.health()["adapters"]["osc"]
    return {
        "sent": sent,
        "connections": connections,
        "server_received": received,
        "counts_match": received == sent,
        "garbage_connections": garbage,
        "closed_on_garbage": after["tcp"]["closed_garbage"] - before["tcp"]["closed_garbage"],
    }


def _stream(target: tuple[str, int], packets: list[bytes], rng: random.Random) -> int:
    """Send ``packets`` framed one way over one connection, in pieces cut anywhere; how many were sent."""
    framing = rng.choice(["slip", "length"])
    data = b"".join(frame(p, framing) for p in packets)
    with socket.create_connection(target, timeout=10) as sock:
        at = 0
        while at < len(data):
            cut = rng.randint(1, 1500)
            sock.sendall(data[at : at + cut])
            at += cut
        # Hang up in order and read what the bridge answered (/bridge/sync replies): closing with
        # unread bytes would reset the connection, and a reset loses what the bridge had not read yet.
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    return len(packets)


class RawSocket:
    """A Socket.IO client on a raw WebSocket: sends any frame, answers pings, reads everything."""

    def __init__(self, url: str) -> None:
        ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        assert self.ws.recv().startswith("0{")
        self.ws.send("40")
        self.acks: dict[int, Any] = {}
        self.closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            while True:
                frame = self.ws.recv()
                if frame == "2":
                    self.ws.send("3")
                elif isinstance(frame, str) and frame.startswith("43"):
                    number, _, body = frame[2:].partition("[")
                    self.acks[int(number)] = json.loads("[" + body)
        except (websocket.WebSocketException, OSError, ValueError):
            self.closed.set()

    def send(self, frame: str | bytes) -> bool:
        """Send one frame; False when the server had closed the connection."""
        if self.closed.is_set():
            return False
        try:
            if isinstance(frame, bytes):
                self.ws.send_binary(frame)
            else:
                self.ws.send(frame)
        except (websocket.WebSocketException, OSError):
            self.closed.set()
            return False
        return True

    def sync(self, number: int) -> None:
        """Wait until the server handled every frame sent before (it acknowledges a ping)."""
        self.send(f'42{number}["ping bridge","sync"]')
        deadline = time.monotonic() + 60
        while number not in self.acks:
            if self.closed.is_set() or time.monotonic() > deadline:
                raise RuntimeError("no acknowledgement from the server")
            time.sleep(0.005)

    def close(self) -> None:
        self.ws.close()
        self._reader.join(timeout=5)


def fuzz_payloads(run: Run, n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - fuzz input, not secrets
    before = run.health()["adapters"]["web"]
    client = RawSocket(run.server.url)
    sent = 0

    def units() -> Iterator[object]:
        yield from hypothesis_units(payload, n // 2, seed)
        for _ in range(n - n // 2):
            yield raw_payload(rng)

    try:
        for item in units():
            if not client.send("42" + json.dumps(["value changed", item])):
                raise RuntimeError("the server closed a connection that sent only well-formed events")
            sent += 1
            if sent % WINDOW == 0:
                client.sync(sent)
        client.sync(sent + 1)
    finally:
        client.close()
    after = run.health()["adapters"]["web"]
    received = after["received"] - before["received"]
    return {
        "sent": sent,
        "server_received": received,
        "server_rejected": after["rejected"] - before["rejected"],
        "counts_match": received == sent,
    }


def fuzz_frames(run: Run, n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - fuzz input, not secrets
    client = RawSocket(run.server.url)
    sent = closed = 0
    try:
        while sent < n:
            if not client.send(raw_frame(rng)):
                closed += 1
                client.close()
                client = RawSocket(run.server.url)
                continue
            sent += 1
            if sent % WINDOW == 0 and not client.closed.is_set():
                try:
                    client.sync(sent)
                except RuntimeError:
                    pass  # a frame before closed it: counted at the next send
    finally:
        client.close()
    return {"sent": sent, "connections_closed_by_server": closed}


def fuzz_midi(run: Run, n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - fuzz input, not secrets
    peer = MidiPeer()
    try:
        peer.connect(run.midi_names["input"], run.midi_names["output"])
        sender = peer.output._rt  # mido's rtmidi port: send any bytes, as a broken device would
        sent = 0

        def units() -> Iterator[list[int]]:
            chunks = st.lists(st.integers(0, 255), min_size=1, max_size=6)
            yield from hypothesis_units(chunks, n // 2, seed)
            for _ in range(n - n // 2):
                yield raw_midi(rng)

        refused = 0
        for chunk in units():
            try:
                sender.send_message(chunk)
            except ValueError:
                refused += 1  # rtmidi will not send it (over 3 bytes, not sysex): no device could either
                continue
            sent += 1
            if sent % WINDOW == 0:
                run.health()  # a beat for the server to read its input
    finally:
        peer.close()
    return {"sent": sent, "refused_by_rtmidi": refused}


def fuzz_config(run: Run, n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - fuzz input, not secrets
    folder = Path(tempfile.mkdtemp(prefix="fuzz-config-"))
    path = folder / "show.toml"
    seed_text = (ROOT / "config" / "default.toml").read_text(encoding="utf-8")
    loaded = refused = 0
    failures: list[str] = []

    def units() -> Iterator[str]:
        yield from hypothesis_units(st.text(max_size=400), n // 4, seed)
        for _ in range(n - n // 4):
            yield raw_config(rng, seed_text)

    for text in units():
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            load_config(path)
        except ConfigError:
            refused += 1
        except Exception as err:  # noqa: BLE001 - exactly what the fuzzer looks for
            failures.append(f"{type(err).__name__}: {err} in:\n{text[:300]}")
        else:
            loaded += 1
    return {"files": loaded + refused + len(failures), "loaded": loaded, "refused": refused, "escaped": failures[:3]}


#: Name -> fuzzer(run, n, seed).
FUZZERS: dict[str, Callable[[Run, int, int], dict[str, Any]]] = {
    "osc": fuzz_osc,
    "osc-tcp": fuzz_osc_tcp,
    "socketio-payloads": fuzz_payloads,
    "socketio-frames": fuzz_frames,
    "midi": fuzz_midi,
    "config": fuzz_config,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="units per fuzzer (default 10,000)")
    parser.add_argument("--only", default=",".join(FUZZERS), help=f"comma-separated, of: {', '.join(FUZZERS)}")
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    # SIGTERM (a timeout, a CI stop) unwinds like Ctrl-C: the bridge and the JACK server are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    names = [name for name in args.only.split(",") if name]
    unknown = set(names) - set(FUZZERS)
    if unknown:
        raise SystemExit(f"fuzz: unknown fuzzer(s) {', '.join(sorted(unknown))}; one of {', '.join(FUZZERS)}")
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    jack = None
    if "midi" in names:
        reason = jack_available()
        if reason is not None:
            raise SystemExit(f"fuzz: {reason}")
        jack = JackServer(folder)
        os.environ["JACK_DEFAULT_SERVER"] = jack.name
        jack.start()
    run = Run(folder, jack)
    results: dict[str, Any] = {}
    passed = True
    try:
        with run.server:
            for name in names:
                started = time.monotonic()
                result = FUZZERS[name](run, args.n, args.seed)
                result["seconds"] = round(time.monotonic() - started, 1)
                result["problems"] = run.check()
                ok = not result["problems"] and result.get("counts_match", True) and not result.get("escaped")
                result["pass"] = ok
                passed = passed and ok
                results[name] = result
                print(f"{name}: {json.dumps(result)}", flush=True)
    finally:
        if jack is not None:
            jack.stop()
    print("pass rule: no exception escaping (no traceback in the log, config errors only ConfigError),")
    print("           every stored value within bounds, the server's counters equal to what was sent")
    print("fuzz:", "PASS" if passed else "FAIL")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
