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

from bridge.flow import TokenBucket
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


def check_destination(dest: tuple[str, int], asker: str, targets: Collection[str]) -> None:
    """Raise :class:`BadSync` unless ``dest`` is on the asker's host or a target's (``targets``: their
    names and addresses); a name is taken for the addresses it resolves to (``localhost``)."""
    if dest[0] == asker or dest[0] in targets:
        return
    try:
        found = {unmapped(str(info[4][0])) for info in socket.getaddrinfo(dest[0], dest[1], type=socket.SOCK_DGRAM)}
    except (OSError, UnicodeError):
        found = set()
    if asker in found or found & set(targets) or (found and _loopback(asker) and all(map(_loopback, found))):
        return
    raise BadSync(f"{dest[0]}:{dest[1]} is neither the asker's host nor a target; nothing sent")


def for_socket(sock: socket.socket | None, dest: tuple[str, int]) -> tuple[str, int]:
    """``dest`` as ``sock`` sends to it: a name resolved, an IPv4 address mapped on a dual-stack socket."""
    family = sock.family if sock is not None else socket.AF_INET
    flags = socket.AI_V4MAPPED if family == socket.AF_INET6 else 0
    try:
        infos = socket.getaddrinfo(dest[0], dest[1], family, socket.SOCK_DGRAM, 0, flags)
    except (OSError, UnicodeError) as err:
        raise BadSync(f"{dest[0]}:{dest[1]} cannot be reached from the OSC port ({err})") from err
    return str(infos[0][4][0]), dest[1]


def _loopback(host: str) -> bool:
    try:
        return ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class SyncGate:
    """How many syncs each destination may still be sent now."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def admit(self, destination: str) -> bool:
        """True when a sync to ``destination`` (its host) goes out now."""
        with self._lock:
            bucket = self._buckets.get(destination)
            if bucket is None:
                if len(self._buckets) >= MAX_DESTINATIONS:
                    del self._buckets[next(iter(self._buckets))]
                bucket = self._buckets[destination] = TokenBucket(PER_SECOND, BURST)
            return bucket.take()
