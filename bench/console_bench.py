"""Consoles: a change from a page to a desk over UDP and over TCP (SLIP), and a TCP desk coming back.

``python -m bench.console_bench [--changes 300]`` runs a bridge with two OSC
targets on loopback, one UDP and one TCP with SLIP framing (as QLab and Eos
take it), and a Socket.IO client that moves a fader every 5 ms. Per target,
the time from the client's emit to the desk reading the message: medians
and p99 in milliseconds, and TCP's against UDP's in the same run. Then the
TCP desk goes away, the fader moves, the desk comes back: the time from its
port listening again (after 3 s away) to it holding the latest value (the
bridge retries with a backoff of at most 2 s).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import threading
import time
import urllib.request

import socketio
from pythonosc.osc_message import OscMessage

from bench.common import Server, percentiles
from tests.console_tools import shut, unslip
from tests.helpers import free_port

CONTROLS = '\n[[controls]]\nid = "fader"\ntype = "range"\nmax = 100000\nstep = 1\nosc = "/fader"\n'


class Desk:
    """A receiver that stamps the arrival of every value: UDP, or a TCP port with SLIP framing."""

    def __init__(self, tcp: bool) -> None:
        self.tcp = tcp
        self.port = free_port(socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        self.arrivals: dict[float, float] = {}
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._conn: socket.socket | None = None
        self.listening_at = 0.0

    def start(self) -> Desk:
        self._stop = threading.Event()  # a new one: the threads of a previous start keep theirs, set
        kind = socket.SOCK_STREAM if self.tcp else socket.SOCK_DGRAM
        sock = socket.socket(socket.AF_INET, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        if self.tcp:
            sock.listen(1)
        sock.settimeout(0.2)
        self._sock = sock
        self.listening_at = time.perf_counter()
        threading.Thread(target=self._tcp if self.tcp else self._udp, args=(sock,), daemon=True).start()
        return self

    def _note(self, packet: bytes) -> None:
        now = time.perf_counter()
        message = OscMessage(packet)
        if message.address == "/fader":
            self.arrivals.setdefault(float(message.params[0]), now)

    def _udp(self, sock: socket.socket) -> None:
        stop = self._stop
        while not stop.is_set():
            try:
                self._note(sock.recv(65536))
            except (TimeoutError, OSError):
                continue

    def _tcp(self, sock: socket.socket) -> None:
        stop = self._stop
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            self._conn = conn
            conn.settimeout(0.2)
            buffer = bytearray()
            while not stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                buffer += data
                for packet in unslip(buffer):
                    self._note(packet)
            conn.close()

    def stop(self) -> None:
        """The desk goes away: its port and its connection close."""
        self._stop.set()
        shut(self._conn, self._sock)
        self._conn = None


def tcp_connected(url: str) -> bool:
    with urllib.request.urlopen(url + "/healthz", timeout=5) as resp:
        targets = json.loads(resp.read())["adapters"]["osc"]["targets"]
    return any(t.get("transport") == "tcp" and t.get("state") == "connected" for t in targets)


def wait(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():  # type: ignore[operator]
        if time.perf_counter() > deadline:
            raise TimeoutError("the desk never got it")
        time.sleep(0.001)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=300)
    args = parser.parse_args()
    udp, tcp = Desk(tcp=False).start(), Desk(tcp=True).start()
    osc = (
        f'[osc]\nlisten = "127.0.0.1:{free_port(socket.SOCK_DGRAM)}"\n'
        f'[[osc.targets]]\naddress = "127.0.0.1:{udp.port}"\n'
        f'[[osc.targets]]\naddress = "127.0.0.1:{tcp.port}"\ntransport = "tcp"\nframing = "slip"\n'
    )
    with Server(extra=osc, controls=CONTROLS) as server:
        client = socketio.Client(reconnection=False)
        client.connect(server.url, transports=["websocket"], wait_timeout=10)
        try:
            wait(lambda: tcp_connected(server.url))
            sent: dict[float, float] = {}
            for n in range(1, args.changes + 1):
                sent[float(n)] = time.perf_counter()
                client.emit("value changed", {"who": "fader", "data": n})
                time.sleep(0.005)
            wait(lambda: float(args.changes) in udp.arrivals and float(args.changes) in tcp.arrivals)
            rows = {}
            for name, desk in (("udp", udp), ("tcp", tcp)):
                lags = [desk.arrivals[v] - t for v, t in sent.items() if v in desk.arrivals]
                rows[name] = (percentiles(lags), len(lags))
            for name, (stats, got) in rows.items():
                print(  # noqa: T201
                    f"page -> desk over {name}: p50 {stats['p50_ms']} ms, p99 {stats['p99_ms']} ms, "
                    f"{got}/{args.changes} delivered"
                )
            ratio = rows["tcp"][0]["p50_ms"] / rows["udp"][0]["p50_ms"]
            print(f"tcp/udp p50 ratio {ratio:.2f}")  # noqa: T201

            # The TCP desk goes away; the fader moves; the desk comes back.
            backs = []
            for k in range(5):
                tcp.stop()
                value = float(args.changes + 100 + k)
                client.emit("value changed", {"who": "fader", "data": value})
                wait(lambda v=value: v in udp.arrivals)
                time.sleep(3.0)  # a desk rebooting: long enough for the bridge's retries to reach their 2 s cap
                tcp.start()
                wait(lambda v=value: v in tcp.arrivals, timeout=15)
                backs.append(tcp.arrivals[value] - tcp.listening_at)
            print(  # noqa: T201
                f"TCP desk back -> latest value there: median {statistics.median(backs) * 1000:.0f} ms, "
                f"max {max(backs) * 1000:.0f} ms (5 times)"
            )
        finally:
            client.disconnect()
            udp.stop()
            tcp.stop()


if __name__ == "__main__":
    main()
