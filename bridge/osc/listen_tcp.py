"""``[osc] listen_tcp``: OSC clients that connect to the bridge over TCP, each a source and a target.

Each client is a :class:`~bridge.osc.tcp.Stream` with a reader and a writer
of its own. At most :data:`MAX_CLIENTS` are connected at once, and at most
:data:`MAX_PER_HOST` from one host; more are refused with one line, and the
comings and goings of a host are said once every 5 s.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from bridge.errors import BridgeError
from bridge.flow import Workers
from bridge.net import unmapped
from bridge.osc.framing import Framing
from bridge.osc.tcp import Receive, Stream, said

log = logging.getLogger(__name__)

#: OSC clients over TCP at once, and from one host: each holds a descriptor and a thread (a show
#: has a few), and one host that opens connections in a loop must not lock the others out.
MAX_CLIENTS = 64
MAX_PER_HOST = 16


class TcpListener:
    """Accepts OSC clients over TCP on ``host:port``."""

    def __init__(
        self, host: str, port: int, framing: Framing | None, receive: Receive, allowed: Callable[[str], bool]
    ) -> None:
        self.host = host
        self.port = port
        self.framing = framing
        self._receive = receive
        self._allowed = allowed
        self.clients: dict[str, Stream] = {}
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._workers = Workers()
        self.accepted = 0
        self.closed_garbage = 0
        self.refused = 0

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(64)
        except OSError as err:
            sock.close()
            raise BridgeError(
                f"cannot listen for OSC over TCP on {self.host}:{self.port}: {err.strerror} (change [osc] listen_tcp)"
            ) from err
        self._sock = sock
        self.port = int(sock.getsockname()[1])
        self._workers.start((self._accept_loop, "osc-tcp-accept"))
        log.info("OSC over TCP listening on %s:%d", self.host, self.port)

    def stop(self) -> None:
        self._workers.stopping.set()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        with self._lock:
            clients = list(self.clients.values())
        for client in clients:
            client.close()
        self._workers.stop()

    def streams(self) -> list[Stream]:
        with self._lock:
            return list(self.clients.values())

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "listen": f"{self.host}:{self.port}",
                "clients": len(self.clients),
                "accepted": self.accepted,
                "closed_garbage": self.closed_garbage,
                "refused": self.refused,
            }

    def _accept_loop(self) -> None:
        assert self._sock is not None  # noqa: S101
        while not self._workers.stopping.is_set():
            try:
                conn, address = self._sock.accept()
            except OSError:
                if self._workers.stopping.is_set():
                    return
                time.sleep(0.05)
                continue
            host = unmapped(str(address[0]))
            full = self._full(host)
            if full or not self._allowed(host):
                if full:
                    said.warning(("full", host), "OSC over TCP: %s; %s refused", full, host)
                self.refused += 1
                conn.close()
                continue
            ident = f"tcp:{address[0]}:{address[1]}"
            stream = Stream(conn, ident, self.framing, self._receive)
            with self._lock:
                self.clients[ident] = stream
                self.accepted += 1
            self._workers.spawn(lambda s=stream: self._serve(s), f"osc-tcp-{ident}")  # type: ignore[misc]

    def _full(self, host: str) -> str | None:
        """Why a new client from ``host`` is refused, if it is (too many, in all or from it)."""
        with self._lock:
            if len(self.clients) >= MAX_CLIENTS:
                return f"{MAX_CLIENTS} clients already"
            if sum(stream.host == host for stream in self.clients.values()) >= MAX_PER_HOST:
                return f"{MAX_PER_HOST} clients from that host already"
        return None

    def _serve(self, stream: Stream) -> None:
        said.info(("in", stream.host), "OSC client %s connected over TCP", stream.ident)
        writer = threading.Thread(target=stream.write_loop, name=f"osc-tcp-write-{stream.ident}", daemon=True)
        writer.start()
        stream.read_loop()
        writer.join(timeout=2)
        with self._lock:
            self.clients.pop(stream.ident, None)
            if stream.garbage:
                self.closed_garbage += 1
        said.info(("out", stream.host), "OSC client %s left", stream.ident)
