"""Faults on purpose: hard kills mid-stream, client churn, random input into every decoder."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import socketio
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.app import Bridge
from bridge.config import MidiConfig, OscConfig, load_config
from bridge.hub import Hub
from bridge.midi.adapter import MidiAdapter
from bridge.midi.system import message_from_bytes
from bridge.osc.adapter import OscAdapter
from tests.helpers import (
    DEADLINE,
    ROOT,
    BridgeProcess,
    Client,
    assert_in_bounds,
    saved,
    unavailable,
    wait_until,
    write_config,
)
from tests.jack import jack_available
from tests.strategies import osc_datagrams, payload

Start = Callable[..., BridgeProcess]


def proc_status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Threads", "VmRSS"):
            fields[name] = int(rest.split()[0])
    return fields


def test_kill_9_mid_stream_twenty_times(tmp_path: Path, bridge_factory: Start) -> None:
    config = write_config(tmp_path)
    state = tmp_path / "state.json"
    controls = {c.id for c in load_config(config).controls}
    for round_ in range(20):
        proc = bridge_factory(config)
        if round_:
            # Every restart finds the previous round's values: the file was valid.
            assert proc.get_json("/api/values")["txt1"].startswith(f"round {round_ - 1} ")
        sio = socketio.Client(reconnection=False)
        sio.connect(proc.url, wait_timeout=10)
        stop = threading.Event()

        def stream(sio: socketio.Client = sio, round_: int = round_, stop: threading.Event = stop) -> None:
            i = 0
            while not stop.is_set():
                try:
                    sio.emit("value changed", {"who": "txt1", "data": f"round {round_} change {i}"})
                    sio.emit("value changed", {"who": "slider1", "data": i % 51})
                except socketio.exceptions.SocketIOError:
                    return  # the server was killed under the stream, as intended
                i += 1
                stop.wait(0.001)

        streamer = threading.Thread(target=stream)
        streamer.start()
        try:
            wait_until(
                lambda round_=round_: (
                    state.exists() and json.loads(state.read_text())["values"]["txt1"].startswith(f"round {round_} ")
                ),
                what="this round saved",
            )
            proc.kill()  # in the middle of the stream, perhaps mid-write
        finally:
            stop.set()
            streamer.join()
            sio.disconnect()
        saved = json.loads(state.read_text(encoding="utf-8"))["values"]
        assert set(saved) == controls
    assert not list(tmp_path.glob("state.json.corrupt-*"))


def test_churn_leaves_no_threads_or_clients_behind(server: BridgeProcess) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    before = proc_status(pid)

    async def waves() -> None:
        for _ in range(4):
            clients = [socketio.AsyncClient(reconnection=False) for _ in range(50)]
            # Ten at a time: a wave of phones joining, without tripping a loaded machine's accept queue.
            for start in range(0, 50, 10):
                await asyncio.gather(
                    *(
                        c.connect(server.url, transports=["websocket"], wait_timeout=10)
                        for c in clients[start : start + 10]
                    )
                )
            await asyncio.gather(*(c.emit("value changed", {"who": "slider2", "data": 3}) for c in clients[:5]))
            await asyncio.gather(*(c.disconnect() for c in clients))

    asyncio.run(waves())
    wait_until(lambda: server.get_json("/healthz")["adapters"]["web"]["clients"] == 0, what="all clients gone")
    # Threads of closed connections end within a ping interval or two.
    wait_until(
        lambda: proc_status(pid)["Threads"] <= before["Threads"] + 3, timeout=40, what="threads back to the start"
    )
    after = proc_status(pid)
    print(f"churn: threads {before['Threads']} -> {after['Threads']}, RSS {before['VmRSS']} -> {after['VmRSS']} kB")
    assert server.get_json("/api/values")["slider2"] == 3


class SilentClient:
    """A Socket.IO client on a raw WebSocket that reads everything and never answers a ping."""

    def __init__(self, url: str) -> None:
        ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(ws_url, timeout=10, suppress_origin=True)
        assert self.ws.recv().startswith("0{")
        self.ws.send("40")
        self._reader = threading.Thread(target=self._read)
        self._reader.start()

    def _read(self) -> None:
        try:
            while self.ws.recv():
                pass  # an Engine.IO ping ("2") too: no pong
        except (websocket.WebSocketException, OSError):
            return  # closed by the server, or by the test

    def close(self) -> None:
        self.ws.close()
        self._reader.join()


def test_clients_gone_silent_during_broadcasts_do_not_freeze_the_server(
    server: BridgeProcess, client_factory: Callable[..., Client]
) -> None:
    # python-engineio finds a client gone (no pong within ping_interval +
    # ping_timeout) on the next emit to it, usually one of the fan-out's, and
    # calls the disconnect handler right there. Several silent clients, so that
    # most of them are found that way rather than by Engine.IO's own sweep.
    silent = [SilentClient(server.url) for _ in range(4)]
    sender, watcher = client_factory(server.url), client_factory(server.url)
    wait_until(lambda: server.get_json("/healthz")["adapters"]["web"]["clients"] == 6, what="six clients")
    stop = threading.Event()

    def stream() -> None:
        i = 0
        while not stop.is_set():
            sender.send("slider1", i % 51)
            i += 1
            stop.wait(0.005)

    streamer = threading.Thread(target=stream)
    streamer.start()
    try:
        wait_until(
            lambda: server.get_json("/healthz")["adapters"]["web"]["clients"] == 2,
            timeout=40,
            what="the silent clients dropped, the server still answering",
        )
    finally:
        stop.set()
        streamer.join()
        for client in silent:
            client.close()
    sender.send("slider2", 7)
    watcher.wait_value("slider2", 7)
    assert server.put_json("/api/values/slider2", {"value": 8})[0] == 200
    watcher.wait_value("slider2", 8)


def test_malformed_socketio_and_engineio_packets_cost_one_line_each_not_a_traceback(server: BridgeProcess) -> None:
    url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    ws = websocket.create_connection(url, timeout=10, suppress_origin=True)
    assert ws.recv().startswith("0{")
    ws.send("40")
    # Broken JSON, an event with no name, a packet type no client sends: each dropped.
    for frame in (
        '42["value changed", {"who": "slider1", "data": 3',
        "42",
        "44{}",
        '42["value changed",{"who":"slider1","data":9}]',
    ):
        ws.send(frame)
    wait_until(lambda: server.get_json("/api/values")["slider1"] == 9, what="the good event after the bad ones")
    web = server.get_json("/healthz")["adapters"]["web"]
    assert web["malformed"] == 3 and web["received"] == 1 and web["rejected"] == 0
    # A binary event announcing a million attachments, then attachments: the library kept them all
    # (3.4 GB in 14 s). The protocol has no binary data: the header and each attachment are dropped.
    ws.send('451000000-["value changed",{"who":"txt1","data":{"_placeholder":true,"num":0}}]')
    for _ in range(3):
        ws.send_binary(bytes(16384))
    ws.send('42["value changed",{"who":"slider1","data":10}]')
    wait_until(lambda: server.get_json("/api/values")["slider1"] == 10, what="the good event after the binary ones")
    assert server.get_json("/healthz")["adapters"]["web"]["malformed"] == 3 + 1 + 3
    ws.send("x")  # not an Engine.IO packet at all: the connection ends
    with pytest.raises(websocket.WebSocketException):
        while True:
            ws.recv()
    ws.close()
    wait_until(lambda: "malformed Engine.IO packet" in server.output(), what="the warning for the broken frame")
    log = server.output()
    assert "malformed Socket.IO packet from" in log
    assert "Traceback" not in log
    runtime = server.get_json("/healthz?runtime=1")["runtime"]
    assert {"threads", "greenlets", "fds", "rss_kb"} <= set(runtime)
    assert runtime["frozen"] > 10_000  # the start-up heap, left out of full collections
    assert "runtime" not in server.get_json("/healthz")


def put_raw(server: BridgeProcess, path: str, body: bytes) -> int:
    """The status of a PUT of ``body`` as it is (JSON no client library would write)."""
    request = urllib.request.Request(
        server.url + path, data=body, method="PUT", headers={"Content-Type": "application/json"}
    )
    try:
        with server.open(request) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_hostile_values_break_neither_the_saving_nor_the_page_nor_the_log(
    tmp_path: Path, bridge_factory: Start
) -> None:
    server = bridge_factory(write_config(tmp_path))
    state = tmp_path / "state.json"
    # Half a UTF-16 pair (a browser's broken emoji), which JSON carries and UTF-8 cannot: once
    # stored, the state writer died on it for the rest of the show and the page answered 500.
    assert server.put_json("/api/values/txt1", {"value": "a\ud800b"})[0] == 200
    assert server.get_json("/api/values")["txt1"] == "a\ufffdb"
    assert "<html" in server.get_text("/").lower()
    server.put_values(slider1=41)
    wait_until(lambda: saved(state).get("values", {}).get("slider1") == 41, what="saved")
    # A 400-digit number, and JSON nested 5,000 deep (within max_payload): refused, not a 500.
    assert put_raw(server, "/api/values/slider1", b'{"value": 1' + b"0" * 400 + b"}") == 400
    assert put_raw(server, "/api/values/slider1", b"[" * 5000 + b"]" * 5000) == 400
    # A browser sending 300 changes to controls that do not exist: a line every few seconds, not 300.
    url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    ws = websocket.create_connection(url, timeout=10, suppress_origin=True)
    try:
        assert ws.recv().startswith("0{")
        ws.send("40")
        for i in range(300):
            ws.send(json.dumps(["value changed", {"who": f"nothing{i}" + "x" * 2000, "data": 1}]).join(("42", "")))
        ws.send("42" + "[" * 5000)  # nested too deep for the JSON decoder
        ws.send('42["value changed",{"who":"slider2","data":9}]')
        wait_until(lambda: server.get_json("/api/values")["slider2"] == 9, what="the good event after the bad ones")
    finally:
        ws.close()
    # Polling requests: a packet type Engine.IO does not know was never answered (the library closes
    # the session and waits for a GET to send the close): refused at once now, before it reads it.
    with server.open(server.url + "/socket.io/?EIO=4&transport=polling") as resp:
        sid = json.loads(resp.read().decode()[1:])["sid"]
    poll = server.url + f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    for body in (b"9zz", b"\x1e\x1e", b""):
        with pytest.raises(urllib.error.HTTPError, match="400"):
            server.open(urllib.request.Request(poll, data=body, method="POST"), timeout=DEADLINE)
    # A payload the library itself chokes on (not UTF-8): its traceback becomes one line.
    with server.open(server.url + "/socket.io/?EIO=4&transport=polling") as resp:
        sid = json.loads(resp.read().decode()[1:])["sid"]
    poll = server.url + f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    with server.open(urllib.request.Request(poll, data=b"4\xff\xfe", method="POST")) as resp:
        assert resp.status == 200  # (the library's answer)
    wait_until(lambda: "bad input from a client" in server.output(), what="one line for the broken request")
    web = server.get_json("/healthz")["adapters"]["web"]
    assert web["rejected"] == 300 and web["malformed"] == 1
    log = server.output()
    assert log.count("rejected from browser") < 10
    assert max(len(line) for line in log.splitlines()) < 1000  # a 2 KB id is not written out whole
    assert "Traceback" not in log and "ERROR" not in log


_FUZZ_CONFIG: list[Path] = []


def fuzz_config() -> Path:
    """One config for every Hypothesis example (fixtures are not reset between examples)."""
    if not _FUZZ_CONFIG:
        _FUZZ_CONFIG.append(write_config(Path(tempfile.mkdtemp()), state_file=""))
    return _FUZZ_CONFIG[0]


@pytest.mark.unit
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(osc_datagrams(), min_size=1, max_size=5))
def test_fuzz_osc_datagrams(batch: list[bytes]) -> None:
    hub = Hub(load_config(fuzz_config()).controls)
    adapter = OscAdapter(hub, OscConfig())
    adapter.handle_datagrams([(data, ("127.0.0.1", 9999)) for data in batch])
    assert_in_bounds(hub)


@pytest.mark.unit
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads=st.lists(payload, min_size=1, max_size=5))
def test_fuzz_socketio_payloads(payloads: list[object]) -> None:
    bridge = Bridge(load_config(fuzz_config()))
    client = bridge.socketio.test_client(bridge.app)
    try:
        for item in payloads:
            client.emit("value changed", item)
        for event in client.get_received():
            assert event["name"] in ("snapshot", "update value", "rejected", "throttled")
    finally:
        client.disconnect()
    assert_in_bounds(bridge.hub)


@pytest.mark.unit
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunks=st.lists(
        st.one_of(
            st.lists(st.integers(0, 255), max_size=6),
            # Mostly well-formed messages on the mapped channels, CCs and notes, with any data.
            st.tuples(
                st.sampled_from([0x80, 0x90, 0xB0, 0xB1, 0xB2, 0xE2, 0xE0]),
                st.sampled_from([1, 2, 7, 39, 33, 60, 61, 0, 127]) | st.integers(0, 127),
                st.integers(0, 127),
            ).map(list),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_fuzz_midi_bytes(chunks: list[list[int]]) -> None:
    """Random bytes as rtmidi hands them over, through the adapter's decoding into the hub."""
    config = load_config(fuzz_config())
    hub = Hub(config.controls)
    adapter = MidiAdapter(hub, MidiConfig(backend="mido.backends.rtmidi/UNIX_JACK"), push=lambda *_: None)
    messages = [m for m in (message_from_bytes(chunk) for chunk in chunks) if m is not None]
    adapter._apply("fuzz", messages)
    assert_in_bounds(hub)


def test_the_fuzzers_at_scale_run_and_pass_on_a_small_n(tmp_path: Path) -> None:
    """``make fuzz`` in miniature: every fuzzer of bench/fuzz.py against a real server, 300 units each."""
    reason = jack_available()
    if reason is not None:
        unavailable(reason)
    env = {k: v for k, v in os.environ.items() if k != "JACK_DEFAULT_SERVER"}
    result = subprocess.run(
        [sys.executable, "-m", "bench.fuzz", "-n", "300"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line]
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert lines[-1] == "fuzz: PASS"
    ran = {line.split(":")[0] for line in lines if line.startswith(("osc", "socketio", "midi", "config"))}
    assert ran == {"osc", "osc-tcp", "socketio-payloads", "socketio-frames", "midi", "config"}


def test_connections_past_the_open_files_limit_wait_their_turn_without_a_traceback(tmp_path: Path) -> None:
    # Half-sent requests held open took every descriptor (the open-files limit, 1,024 by default):
    # /healthz and the pages went down and gevent logged "Too many open files" a second, with its
    # traceback. Now the bridge serves as many connections as its limit leaves room for, and the
    # rest wait in the kernel's queue for their turn.
    config = write_config(tmp_path)
    proc = BridgeProcess(config, wrapper=["prlimit", "--nofile=256:256", "--"]).start()
    held: list[socket.socket] = []
    try:
        for _ in range(300):  # more than 256 descriptors can hold
            sock = socket.create_connection(("127.0.0.1", proc.port), timeout=DEADLINE)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: stage\r\n")  # and never the end of the head
            held.append(sock)
        assert proc.proc is not None and proc.proc.poll() is None
        for sock in held:
            sock.close()
        held.clear()
        wait_until(lambda: proc.get_json("/healthz")["status"] == "ok", what="served again once they left")
        assert "Too many open files" not in proc.output() and "Traceback" not in proc.output()
    finally:
        for sock in held:
            sock.close()
        proc.stop()


def test_a_client_that_asks_and_never_reads_is_let_go_and_the_server_lives(
    server: BridgeProcess, client_factory: Callable[..., Client]
) -> None:
    # Pings with acknowledgements, answers never read: the answers waited in the server without
    # bound (3.7 GB in 25 s), and when the session ended the process aborted in libev, the show
    # with it ("I/O watcher with invalid fd found in epoll_ctl", 5 runs of 5).
    watcher = client_factory(server.url)
    url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    ws = websocket.create_connection(
        url, timeout=DEADLINE, suppress_origin=True, sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]
    )
    ws.recv()
    ws.send("40")
    payload = json.dumps(["ping bridge", "x" * 15000])
    try:
        for n in range(1, 2700):  # 40 MB of answers, more than the 8 MB a browser may leave unread
            ws.send(f"42{n}{payload}")
    except (OSError, websocket.WebSocketException):
        pass  # let go while sending
    try:
        wait_until(lambda: "reads nothing (8 MB waiting): let go" in server.output(), what="the client let go")
    finally:
        ws.close()
    assert server.proc is not None and server.proc.poll() is None  # alive
    watcher.send("slider1", 12)
    wait_until(lambda: server.get_json("/api/values")["slider1"] == 12, what="the others served")
