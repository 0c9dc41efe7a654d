"""OSC targets over UDP: a connected socket each, resolved off the send path.

Each target has a socket of its own, connected to it, so that the kernel
tells when nothing listens there (ICMP port unreachable) and one broken
target never delays another. A console that answers (an X32 replies to the
port a query came from) answers on that socket: the adapter reads it like
its listening socket. Host names are resolved by the adapter's resolver
thread, every second until they resolve.
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

    @property
    def ident(self) -> str:
        """The ``host:port`` its datagrams come from: a change from there is not sent back."""
        return f"{self.ip}:{self.config.port}"

    @property
    def connected(self) -> bool:
        return self.sock is not None

    def describe(self) -> dict[str, Any]:
        return {
            "address": self.config.label,
            "transport": "udp",
            "ip": self.ip,
            "state": self.state,
            "sent": self.sent,
            "errors": self.errors,
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
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.connect(sockaddr)
        except OSError as err:
            sock.close()
            if self.state != "unreachable":
                self.state = "unreachable"
                log.warning("OSC target %s: %s; retrying every second", self.config.label, err.strerror)
            return False
        with self.lock:
            self.sock = sock
            self.ip = str(sockaddr[0])
            if self.state == "unresolved":
                log.info("OSC target %s resolved to %s", self.config.label, self.ip)
            self.state = "ok"
        return True

    def close(self) -> None:
        with self.lock:
            if self.sock is not None:
                self.sock.close()
                self.sock = None
