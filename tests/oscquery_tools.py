"""OSCQuery peers for tests: a WebSocket client (websocket-client) that LISTENs and sends OSC."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import websocket
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from tests.helpers import BridgeProcess, wait_until


def osc_message(address: str, *args: Any) -> OscMessage:
    builder = OscMessageBuilder(address=address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build()


class WsPeer:
    """A WebSocket client of the OSCQuery port; every frame it gets is kept, decoded.

    ``small_buffer`` shrinks its receive buffer, and ``read = False`` makes
    it never read: a listener on a phone that has stopped taking data.
    ``mirror`` sends every binary frame straight back, as a client whose
    bindings go both ways (ossia score, Chataigne) does.
    """

    def __init__(
        self, port: int, key: str | None = None, read: bool = True, small_buffer: bool = False, mirror: bool = False
    ) -> None:
        url = f"ws://127.0.0.1:{port}/" + (f"?key={key}" if key else "")
        sockopt = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)] if small_buffer else []
        self.ws = websocket.create_connection(url, timeout=10, sockopt=sockopt)
        self.mirror = mirror
        self.frames: list[tuple[str, list[Any]]] = []
        self.texts: list[Any] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if read:
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                opcode, data = self.ws.recv_data()
            except (websocket.WebSocketException, OSError):
                return
            if opcode == websocket.ABNF.OPCODE_BINARY:
                if self.mirror:
                    self.ws.send_binary(data)
                message = OscMessage(data)
                with self._lock:
                    self.frames.append((message.address, list(message.params)))
            elif opcode == websocket.ABNF.OPCODE_TEXT:
                with self._lock:
                    self.texts.append(json.loads(data))
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                return

    def resume(self) -> None:
        """Start reading, for a peer made with ``read = False``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()

    def command(self, command: str, path: str) -> None:
        self.ws.send(json.dumps({"COMMAND": command, "DATA": path}))

    def send_osc(self, address: str, *args: Any) -> None:
        self.ws.send_binary(osc_message(address, *args).dgram)

    def send_raw(self, data: bytes) -> None:
        self.ws.send_binary(data)

    def got(self, address: str) -> list[list[Any]]:
        """The arguments of every frame at ``address``, in order."""
        with self._lock:
            return [args for a, args in self.frames if a == address]

    def wait_for(self, address: str, args: list[Any]) -> None:
        wait_until(lambda: args in self.got(address), what=f"a frame {address} {args}")

    def close(self) -> None:
        """Send a close frame; the reader sees the server's answer and ends. A client that never read just drops."""
        try:
            if self._thread is not None and self._thread.is_alive():
                self.ws.send_close()
                self._thread.join(timeout=5)
        except (websocket.WebSocketException, OSError):
            pass
        self.ws.shutdown()


def oscquery_health(server: BridgeProcess) -> dict[str, Any]:
    health: dict[str, Any] = server.get_json("/healthz")["adapters"]["oscquery"]
    return health


def wait_listening(server: BridgeProcess, path: str, count: int) -> None:
    """Wait until ``count`` clients listen to ``path``: a LISTEN or IGNORE has been handled."""
    wait_until(
        lambda: oscquery_health(server)["listening"].get(path, 0) == count,
        what=f"{count} OSCQuery listeners on {path}",
    )
