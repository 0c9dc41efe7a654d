"""The UDP socket's ways, shared by the targets (:mod:`bridge.osc.udp`) and the listening socket
(:mod:`bridge.osc.adapter`): a send that waits its turn on a full link, the refusals the kernel
reports (ICMP port unreachable, Linux's ``IP_RECVERR``), broadcast, and the datagrams a socket sent
itself."""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from bridge.net import unmapped

log = logging.getLogger("bridge.osc.udp")

#: What a socket says when a datagram it sent was refused (ICMP): port or host unreachable.
REFUSALS = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN})
#: What a socket says when the link is slower than what is sent (its buffer, or the queue of the
#: network interface, is full): room comes back as the link drains.
BUSY = frozenset({errno.EAGAIN, errno.ENOBUFS})
#: How long (seconds) a send waits for that room before the datagram is given up.
ROOM_WAIT = 1.0


def send_from(shared: socket.socket, packet: bytes, address: Any) -> None:
    """Send ``packet`` to ``address`` from the listening socket ``shared``."""
    try:
        shared.sendto(packet, address)
    except OSError as err:
        if err.errno not in REFUSALS:
            raise
        # A refusal of an earlier datagram, to whichever target, is said by the socket's next call:
        # this one. It is in the error queue too, where the reader finds whose it was. Sent again.
        shared.sendto(packet, address)


def sent(sock: socket.socket, send: Callable[[], object]) -> object:
    """Run ``send`` on the non-blocking ``sock``, waiting up to :data:`ROOM_WAIT` while the link is
    :data:`BUSY` (a burst on a slow Wi-Fi): the datagrams wait their turn as with a blocking socket,
    instead of being lost and their target taken for gone. Raises what ``send`` raised otherwise."""
    deadline = 0.0
    while True:
        try:
            return send()
        except OSError as err:
            if err.errno not in BUSY:
                raise
            now = time.monotonic()
            deadline = deadline or now + ROOM_WAIT
            if now >= deadline:
                raise
            if err.errno == errno.EAGAIN:
                select.select([], [sock], [], deadline - now)  # (gevent: the rest of the bridge runs)
            else:
                time.sleep(0.002)  # the interface's queue: no readiness to wait on


def report_errors(sock: socket.socket) -> None:
    """Have ICMP errors about what ``sock`` sends queued on it, with where it went (Linux's ``IP_RECVERR``)."""
    if sys.platform != "linux":
        return
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
            if not sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY):
                sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)  # its IPv4 peers too
        else:
            sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
    except OSError as err:
        log.debug("OSC: no ICMP errors on the listening socket (%s)", err)


def refusals(sock: socket.socket) -> Iterator[tuple[str, int, OSError]]:
    """What ``sock``'s error queue holds (see :func:`report_errors`): each refused datagram's
    destination (host, port) and the error; read until it is empty."""
    while True:
        try:
            _data, ancillary, _flags, address = sock.recvmsg(1, 512, socket.MSG_ERRQUEUE)
        except OSError:
            return  # (empty: BlockingIOError)
        code = errno.ECONNREFUSED
        for _level, _type, payload in ancillary:
            if len(payload) >= 4:
                code = int.from_bytes(payload[:4], sys.byteorder)  # sock_extended_err.ee_errno
        yield unmapped(str(address[0])), int(address[1]), OSError(code, os.strerror(code))


def connect(sock: socket.socket, sockaddr: Any) -> bool:
    """Connect the UDP socket ``sock`` to ``sockaddr`` (which sends nothing); True when that is a
    broadcast address, which the kernel refuses (EACCES) until the socket may broadcast."""
    try:
        sock.connect(sockaddr)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.connect(sockaddr)
        return True
    return False


def is_local(host: str) -> bool:
    """True when ``host`` is one of this machine's own addresses: the kernel routes to it locally,
    from itself. (Connecting a UDP socket sends nothing. A bind would also succeed for any address
    where ``ip_nonlocal_bind`` is on, as on many hosts that share a virtual address.)"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, 9))
            return bool(unmapped(str(probe.getsockname()[0])) == host)
        except OSError:
            return False


class Own:
    """Tells the datagrams the listening socket ``sock`` sent itself: a broadcast to its own port
    (or a target that is its own address) comes back from one of its host's addresses and its port.
    No other program on this host can send from that port: nothing else may bind it (no
    ``SO_REUSEADDR``). A peer elsewhere, or behind a NAT, comes from an address that is not ours."""

    #: How long (seconds) an address is known as this host's own or not (addresses come and go).
    KEEP = 10.0

    def __init__(self, sock: socket.socket) -> None:
        host, self.port = sock.getsockname()[:2]
        self.host = unmapped(str(host))
        self.anywhere = self.host in ("0.0.0.0", "::")  # noqa: S104 - names the wildcard, binds nothing
        self._known: dict[str, tuple[bool, float]] = {}

    def __call__(self, host: str, port: int) -> bool:
        """True when a datagram from ``host``:``port`` (``host`` as :func:`unmapped` names it) is its own."""
        if port != self.port:
            return False
        if not self.anywhere:
            return host == self.host
        now = time.monotonic()
        known = self._known.get(host)
        if known is None or now - known[1] > self.KEEP:
            if len(self._known) > 256:
                self._known.clear()
            known = self._known[host] = (is_local(host), now)
        return known[0]


#: <linux/in.h> and <linux/in6.h> (Python names neither).
_IP_RECVERR, _IPV6_RECVERR = 11, 25


def listening(host: str, port: int, buffer: int) -> socket.socket:
    """The OSC input's socket, bound, with room for a burst (a desk recalling a cue, a fast fader) while a
    change is fanned out, each datagram's arrival stamped (to know an echo by: bridge.osc.arrival), and the
    refusals of what it sends to the targets reported (:func:`report_errors`)."""
    from bridge.errors import BridgeError
    from bridge.osc.arrival import stamp

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
    stamp(sock)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise BridgeError(f"cannot listen for OSC on {host}:{port}: {err.strerror} (change [osc] listen)") from err
    sock.setblocking(False)
    report_errors(sock)
    return sock
