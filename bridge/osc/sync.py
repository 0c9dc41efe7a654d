"""``/bridge/sync``: who may ask for every current value, sent where, and how often.

A sync is one small datagram that makes the bridge send one message per
control: cheap to ask, dear to answer. So each destination host gets at most
:data:`PER_SECOND` syncs a second (in bursts of :data:`BURST`); one asked
for beyond that is dropped, counted and said in the log now and then. The
values go to the asker, or, with a ``"host:port"`` argument, to another
port of the asker's own host or to one of the targets: never to a third
host, which would make the bridge a reflector of floods at any address.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Collection
from ipaddress import ip_address

from bridge.flow import Buckets
from bridge.net import unmapped

#: Syncs a destination gets a second, and in one burst (a desk and its tablet asking at once).
PER_SECOND = 2.0
BURST = 4
#: Destinations remembered; past them the oldest are forgotten (they start full again).
MAX_DESTINATIONS = 1024


class BadSync(ValueError):
    """A sync the bridge does not answer; the message says why."""


def destination(args: list[object]) -> tuple[str, int] | None:
    """Where a sync's ``"host:port"`` argument sends the values (None: back to the asker)."""
    if not args:
        return None
    text = args[0]
    host, _, port = text.rpartition(":") if isinstance(text, str) else ("", "", "")
    if len(args) != 1 or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadSync('expected no argument or one "host:port"')
    return host.strip("[]"), int(port)


def route(sock: socket.socket | None, dest: tuple[str, int], asker: str, targets: Collection[str]) -> tuple[str, int]:
    """Where ``sock`` sends the values for ``dest`` (a name resolved, an IPv4 address mapped on a
    dual-stack socket), once it is on the asker's host or a target's (``targets``: their names and
    addresses); raise :class:`BadSync` otherwise. A name is looked up once, for both."""
    family = sock.family if sock is not None else socket.AF_INET
    flags = socket.AI_V4MAPPED if family == socket.AF_INET6 else 0
    try:
        infos = socket.getaddrinfo(dest[0], dest[1], family, socket.SOCK_DGRAM, 0, flags)
    except (OSError, UnicodeError) as err:
        raise BadSync(f"{dest[0]}:{dest[1]} cannot be reached from the OSC port ({err})") from err
    address = str(infos[0][4][0])
    host = unmapped(address)
    named = dest[0] == asker or dest[0] in targets
    if not (named or host == asker or host in targets or (_loopback(asker) and _loopback(host))):
        raise BadSync(f"{dest[0]}:{dest[1]} is neither the asker's host nor a target; nothing sent")
    return address, dest[1]


def _loopback(host: str) -> bool:
    try:
        return ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class SyncGate:
    """How many syncs each destination may still be sent now."""

    def __init__(self) -> None:
        self._buckets: Buckets[str] = Buckets(PER_SECOND, BURST, MAX_DESTINATIONS)
        self._lock = threading.Lock()

    def admit(self, destination: str) -> bool:
        """True when a sync to ``destination`` (its host) goes out now."""
        with self._lock:
            return self._buckets.take(destination)
