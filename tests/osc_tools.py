"""OSC peers for tests: liblo's oscsend/oscdump, and a python-osc listener."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from tests.helpers import free_port, wait_until


def udp_port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - probes what oscdump bound
        except OSError:
            return True
    return False


def oscsend(port: int, address: str, types: str = "", *values: object) -> None:
    """Send one message with liblo's oscsend (a peer we did not write)."""
    cmd = ["oscsend", "127.0.0.1", str(port), address]
    if types:
        cmd += [types, *[str(v) for v in values]]
    subprocess.run(cmd, check=True, timeout=10, capture_output=True)


class OscDump:
    """liblo's oscdump on a free port; every line it prints is kept."""

    def __init__(self) -> None:
        self.port = free_port(socket.SOCK_DGRAM)
        self.proc = subprocess.Popen(
            ["oscdump", "-L", str(self.port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_until(lambda: udp_port_taken(self.port), what="oscdump to listen")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.strip())

    def messages(self) -> list[str]:
        """Lines as ``/address typetags args`` (e.g. ``/a f 1.000000``); oscdump's time tags are dropped."""
        with self._lock:
            return [line.split(" ", 1)[1] if not line.startswith("/") and " " in line else line for line in self.lines]

    def wait_for(self, text: str) -> None:
        wait_until(lambda: text in self.messages(), what=f"oscdump to print {text!r}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class OscPeer:
    """A python-osc peer on one UDP socket that both sends and listens."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.received: list[tuple[str, list[Any]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            message = OscMessage(data)
            with self._lock:
                self.received.append((message.address, list(message.params)))

    def send(self, port: int, address: str, *args: Any) -> None:
        builder = OscMessageBuilder(address=address)
        for arg in args:
            builder.add_arg(arg)
        self.sock.sendto(builder.build().dgram, ("127.0.0.1", port))

    def send_raw(self, port: int, data: bytes) -> None:
        self.sock.sendto(data, ("127.0.0.1", port))

    def got(self, address: str) -> list[list[Any]]:
        with self._lock:
            return [args for a, args in self.received if a == address]

    def wait_for(self, address: str, match: Callable[[list[Any]], bool] = lambda _: True) -> list[Any]:
        def hit() -> Any:
            found = [args for args in self.got(address) if match(args)]
            return {"args": found[-1]} if found else None

        return wait_until(hit, what=f"OSC {address} at port {self.port}")["args"]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()
