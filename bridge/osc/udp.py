"""OSC targets over UDP: a connected socket each, resolved off the send path.

Each target has a socket of its own, connected to it, so that the kernel
tells when nothing listens there (ICMP port unreachable) and one broken
target never delays another. A console that answers (an X32 replies to the
port a query came from) answers on that socket: the adapter reads it like
its listening socket. Host names are resolved by the adapter's resolver
thread, every second until they resolve.

The socket is bound to the listening address and port when it can be (the
listening socket lets it share the port), so what the bridge sends comes
from ``[osc] listen``, as OSC apps that both send and listen do. A peer that
mirrors what it is sent, except back to where it came from, then sees
that it came from the very address it sends to: two bridges aimed at each
other pass a change on once, instead of back and forth for ever (a GO
pressed once fired thousands of times a second). Where the listening
address cannot reach the target (a loopback ``listen``, a target on the
LAN), the target's socket takes a port of its own, as it always did.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from bridge.config import OscTarget
from bridge.osc.tcp import Event

log = logging.getLogger(__name__)

#: An unreachable target is reachable again once datagrams went to it this long (seconds) and
#: none was refused. A UDP send succeeds whether anything listens or not: only the ICMP "port
#: unreachable" that comes back tells, a moment later, so one send that went out proves nothing.
RECOVERY_QUIET = 5.0


class UdpTarget:
    """One UDP target: its socket, its state and its counters."""

    def __init__(self, config: OscTarget) -> None:
        self.config = config
        self.sock: socket.socket | None = None
        self.ip: str | None = None
        self.state = "resolving"  # resolving | ok | unresolved | unreachable
        self.probed = 0.0  # while unreachable: when the first datagram since the last refusal went out
        self.sent = 0
        self.errors = 0
        self.lock = threading.Lock()
        #: The listening address (host, port) to send from, when the adapter listens; see the module's doc.
        self.source: tuple[str, int] | None = None
        #: The port its datagrams go out from, once connected.
        self.local_port: int | None = None

    @property
    def ident(self) -> str:
        """The ``host:port`` its datagrams come from: a change from there is not sent back."""
        return f"{self.ip}:{self.config.port}"

    @property
    def connected(self) -> bool:
        return self.sock is not None

    @property
    def peer(self) -> str | None:
        """The address its datagrams go to (None until resolved)."""
        return self.ip

    def describe(self) -> dict[str, Any]:
        return {
            "address": self.config.label,
            "transport": "udp",
            "ip": self.ip,
            "state": self.state,
            "sent": self.sent,
            "errors": self.errors,
            "from_port": self.local_port,
        }

    def put(self, key: object, packet: bytes, event: Event = None) -> None:
        """Send ``packet`` now (a value or an ``event`` of control ``key``); a target not resolved yet gets nothing."""
        self.raw(packet)

    def raw(self, packet: bytes) -> None:
        with self.lock:
            sock = self.sock
            if sock is None:
                return  # not resolved yet; reported by the resolver
            try:
                sock.send(packet)
            except OSError as err:
                self.failed(err)
                return
            self.sent += 1
            if self.state == "unreachable" and not self.probed:
                self.probed = time.monotonic()

    def recovered(self, now: float) -> bool:
        """Looked at every second: True when an unreachable target just became reachable again
        (its datagrams went out for :data:`RECOVERY_QUIET` seconds, and none was refused)."""
        with self.lock:
            if self.state != "unreachable" or not self.probed or now - self.probed < RECOVERY_QUIET:
                return False
            self.state = "ok"
            self.probed = 0.0
        log.info("OSC target %s reachable again", self.config.label)
        return True

    def failed(self, err: OSError) -> None:
        """Sending (or reading the answer) showed that nothing listens there: ICMP port unreachable."""
        self.errors += 1
        self.probed = 0.0  # the datagrams sent since were refused (this is their answer)
        if self.state != "unreachable":
            self.state = "unreachable"
            log.warning(
                "OSC target %s (%s) unreachable: %s; still sending, other targets unaffected",
                self.config.label,
                self.ip,
                err.strerror or err,
            )

    def resolve(self) -> bool:
        """Resolve the host and connect a socket to it; True when it has one now."""
        host, port = self.config.host, self.config.port
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as err:
            if self.state != "unresolved":
                self.state = "unresolved"
                log.warning(
                    "OSC target %s: cannot resolve %r (%s); retrying every second", self.config.label, host, err
                )
            return False
        family, _, _, _, sockaddr = infos[0]
        try:
            sock = self._connect(family, sockaddr)
        except OSError as err:
            if self.state != "unreachable":
                self.state = "unreachable"
                log.warning("OSC target %s: %s; retrying every second", self.config.label, err.strerror)
            return False
        with self.lock:
            self.sock = sock
            self.local_port = int(sock.getsockname()[1])
            self.ip = str(sockaddr[0])
            if self.state == "unresolved":
                log.info("OSC target %s resolved to %s", self.config.label, self.ip)
            self.state = "ok"
        return True

    def _connect(self, family: int, sockaddr: Any) -> socket.socket:
        """A socket connected to the target: from the listening address and port if it can reach it, else its own."""
        if self.source is not None:
            host, port = self.source
            if family == socket.AF_INET and host == "::":
                host = "0.0.0.0"  # noqa: S104 - the IPv4 half of a dual-stack listen
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
                sock.connect(sockaddr)
                return sock
            except OSError as err:  # another family, or no route from that address: a port of its own
                sock.close()
                log.debug("OSC target %s: cannot send from %s (%s)", self.config.label, self.source, err)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.connect(sockaddr)
        except OSError:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        with self.lock:
            if self.sock is not None:
                self.sock.close()
                self.sock = None
