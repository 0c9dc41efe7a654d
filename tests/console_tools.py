"""Test consoles on loopback, written from the consoles' published OSC behaviour (not from the bridge's code).

- :class:`TcpConsole`: a desk that takes OSC over TCP, as ETC Eos does on
  port 3032 ("Eos Family Show Control User Guide", OSC over TCP): OSC 1.0
  frames each packet with a big-endian int32 length, OSC 1.1 with SLIP
  (RFC 1055) between END bytes. It can stop reading, close and come back.
- :class:`FakeX32`: a mixer that behaves as the unofficial "X32/M32 OSC
  Remote Protocol" (P.-G. Maillot) says: a bare address is answered with its
  value, to the sender only; changes are sent to every client whose last
  ``/xremote`` is under 10 s old, except the one that made the change;
  ``/status`` is answered ``/status ,sss`` (its state, address and name).
  It can freeze: its program stops reading while its socket still takes
  what is sent, and reads that when it wakes.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Any

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from tests.helpers import free_port, wait_until

END, ESC, ESC_END, ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD


def build(address: str, *args: Any) -> bytes:
    builder = OscMessageBuilder(address=address)
    for arg in args:
        builder.add_arg(arg)
    return bytes(builder.build().dgram)


def slip(packet: bytes) -> bytes:
    out = bytearray([END])
    for byte in packet:
        if byte == END:
            out += bytes([ESC, ESC_END])
        elif byte == ESC:
            out += bytes([ESC, ESC_ESC])
        else:
            out.append(byte)
    out.append(END)
    return bytes(out)


def unslip(stream: bytearray) -> list[bytes]:
    """Whole packets at the front of ``stream`` (taken out of it)."""
    packets = []
    while True:
        start = stream.find(END)
        if start < 0:
            return packets
        end = stream.find(END, start + 1)
        if end < 0:
            del stream[:start]
            return packets
        body = bytes(stream[start + 1 : end])
        del stream[:end]
        if body:
            packets.append(
                body.replace(bytes([ESC, ESC_END]), bytes([END])).replace(bytes([ESC, ESC_ESC]), bytes([ESC]))
            )


def shut(*sockets: socket.socket | None) -> None:
    """Close each socket now, both ways (the peer reads the end at once)."""
    for sock in sockets:
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class TcpConsole:
    """A desk on a TCP port of its own; ``framing`` is "slip" or "length"."""

    def __init__(
        self,
        framing: str,
        port: int | None = None,
        reading: bool = True,
        host: str = "127.0.0.1",
        answers: dict[str, Any] | None = None,
    ) -> None:
        self.framing = framing
        self.host = host
        #: What it answers a bare address with (its values), as an X32 does; None: it answers nothing.
        self.answers = answers or {}
        self.port = port or free_port()
        self.received: list[tuple[str, list[Any]]] = []
        self.connections = 0
        #: False: a desk that takes nothing, with a small receive buffer (its kernel fills soon).
        self.reading = reading
        self._lock = threading.Lock()
        self._conn: socket.socket | None = None
        self._server: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> TcpConsole:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if not self.reading:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # (connections take it from here)
        server.bind((self.host, self.port))
        server.listen(4)
        server.settimeout(0.2)
        self._server = server
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self._conn = conn
                self.connections += 1
            self._read(conn)

    def _read(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        buffer = bytearray()
        while not self._stop.is_set():
            if not self.reading:
                self._stop.wait(0.05)  # a desk that stopped taking data: the writes pile up in the kernel
                continue
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            buffer += data
            for packet in self._packets(buffer):
                message = OscMessage(packet)
                with self._lock:
                    self.received.append((message.address, list(message.params)))
                if not message.params and message.address in self.answers:
                    self.send(message.address, self.answers[message.address])

    def _packets(self, buffer: bytearray) -> list[bytes]:
        if self.framing == "slip":
            return unslip(buffer)
        packets = []
        while len(buffer) >= 4:
            (size,) = struct.unpack(">i", buffer[:4])
            if len(buffer) < 4 + size:
                break
            packets.append(bytes(buffer[4 : 4 + size]))
            del buffer[: 4 + size]
        return packets

    def send(self, address: str, *args: Any) -> None:
        packet = build(address, *args)
        framed = slip(packet) if self.framing == "slip" else struct.pack(">i", len(packet)) + packet
        with self._lock:
            conn = self._conn
        assert conn is not None, "no bridge connected"
        conn.sendall(framed)

    def got(self, address: str) -> list[list[Any]]:
        with self._lock:
            return [args for a, args in self.received if a == address]

    def messages(self) -> list[tuple[str, list[Any]]]:
        with self._lock:
            return list(self.received)

    def wait_for(self, address: str, args: list[Any]) -> None:
        wait_until(lambda: args in self.got(address), what=f"the console to get {address} {args}")

    def wait_connected(self, count: int = 1) -> None:
        wait_until(lambda: self.connections >= count, what=f"connection {count} to the console")

    def stop(self) -> None:
        """The desk goes away: the port closes and so does the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            conn, self._conn = self._conn, None
        shut(conn, self._server)
        self._server = None


class FakeX32:
    """A UDP mixer that reports changes only to clients that said ``/xremote`` in the last 10 s."""

    SUBSCRIPTION = 10.0

    def __init__(self, values: dict[str, Any], port: int = 0, subscription: float = SUBSCRIPTION) -> None:
        self.values = dict(values)
        #: How long an /xremote keeps a client subscribed (10 s on a real X32; a test may scale it down).
        self.subscription = subscription
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.clients: dict[tuple[str, int], float] = {}
        self.xremotes = 0
        self.queries: list[str] = []
        #: Every message it read, in order.
        self.heard: list[tuple[str, list[Any]]] = []
        #: Set: its program stops reading (a hang); cleared, it reads what waited in its socket.
        self.frozen = threading.Event()
        #: Set: what comes is lost and nothing answered (switched off, or booting, on an address that does not
        #: refuse: no ICMP); cleared, it is back.
        self.deaf = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if self.frozen.is_set():
                self._stop.wait(0.05)
                continue
            try:
                data, sender = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            if self.deaf.is_set():
                continue
            message = OscMessage(data)
            address, args = message.address, list(message.params)
            with self._lock:
                self.heard.append((address, args))
                if address == "/status":
                    self.sock.sendto(build("/status", "active", "127.0.0.1", "X32-Stage"), sender)
                    continue
                if address == "/xremote":
                    self.clients[sender] = time.monotonic()
                    self.xremotes += 1
                    continue
                if not args:
                    self.queries.append(address)
                    if address in self.values:
                        self.sock.sendto(build(address, self.values[address]), sender)
                    continue
                self.values[address] = args[0]
            self._report(address, args[0], skip=sender)

    def _report(self, address: str, value: Any, skip: tuple[str, int] | None = None) -> None:
        now = time.monotonic()
        with self._lock:
            listening = [c for c, said in self.clients.items() if now - said < self.subscription and c != skip]
        for client in listening:
            self.sock.sendto(build(address, value), client)

    def change(self, address: str, value: Any) -> None:
        """A change made on the desk itself."""
        with self._lock:
            self.values[address] = value
        self._report(address, value)

    def got(self, address: str) -> list[list[Any]]:
        with self._lock:
            return [args for said, args in self.heard if said == address]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
