"""Addresses a person can open (localhost and this machine's LAN address), and sockets' common settings."""

from __future__ import annotations

import errno
import logging
import socket

from bridge.errors import BridgeError

log = logging.getLogger(__name__)

#: Connections waiting to be accepted: room for a room full of phones joining at once.
BACKLOG = 1024


def lan_address() -> str | None:
    """This machine's IPv4 address on the LAN, or None.

    Connecting a UDP socket only asks the kernel for a route: no packet is sent.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))
            address: str = sock.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address  # noqa: S104


def unmapped(host: str) -> str:
    """``host`` with an IPv4-mapped IPv6 address (``::ffff:10.0.0.5``, how a dual-stack socket names an
    IPv4 peer) written as IPv4 (``10.0.0.5``, how a config names it)."""
    if host[:7].lower() == "::ffff:" and "." in host:
        return host[7:]
    return host


def host_of(ident: str) -> str:
    """The host of an OSC peer's ident: ``10.0.0.5:9000``, ``[::1]:9000``, ``tcp:10.0.0.5:3032``."""
    return ident.removeprefix("tcp:").rsplit(":", 1)[0].strip("[]")


def urls(host: str, port: int, scheme: str = "http") -> list[str]:
    """The URLs to open for a server bound to ``host``: localhost first, then the LAN one."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104
        found = [f"{scheme}://localhost:{port}/"]
        lan = lan_address()
        if lan:
            found.append(f"{scheme}://{lan}:{port}/")
        return found
    return [f"{scheme}://{host}:{port}/"]


def listen(host: str, port: int, section: str = "[server]", flags: str = " or use --port") -> socket.socket:
    """A TCP socket listening on ``host:port``, or :class:`BridgeError` saying what to change.

    ``section`` names the config table whose ``host`` and ``port`` these
    are, ``flags`` the command-line way to change the port. Binding it here
    (not in a library) also keeps a taken port from ending the process: the
    WSGI server of Werkzeug calls ``sys.exit`` when it cannot bind.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as err:
        raise BridgeError(f"cannot serve on {host}:{port}: {err.strerror or err} (check {section} host)") from err
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRNOTAVAIL:
            hint = f"check {section} host: it is no address of this machine"
        else:
            hint = f"change {section} port{flags}"
        raise BridgeError(f"cannot serve on {host}:{port}: {err.strerror or err} ({hint})") from err
    return sock


def notice_silence(sock: socket.socket, seconds: float) -> None:
    """Have the kernel drop the TCP connection ``sock`` to a peer gone without a word (its power cut,
    its cable pulled): after ``seconds`` with what was sent not acknowledged, or, while nothing is
    sent, with keepalive probes unanswered. Left alone, TCP retries for about 15 minutes, all the
    while "connected". Linux only; elsewhere, TCP's own."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, int(seconds / 2)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, max(1, int(seconds / 2)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(seconds * 1000))
    except (AttributeError, OSError) as err:  # (not Linux)
        log.debug("TCP: no silence detection (%s)", err)
