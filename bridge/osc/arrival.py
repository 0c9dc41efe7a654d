"""When a datagram reached this machine, not when the bridge came to read it: the echo memory's clock.

What a peer sends straight back is known as an echo when it comes within
:data:`bridge.echoes.WINDOW` of the sending. Counted to when the bridge
*reads* it, a bridge that is busy (a fan-out to many pages, a reload) or
starved of CPU took a desk's prompt echo, read late, for a move, and dragged
the fader back to it. The kernel stamps every datagram as it arrives
(``SO_TIMESTAMPNS``, Linux); elsewhere the time of reading stands in, as
before.
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from typing import Any

#: The socket option and its control message (the same number), on Linux only.
SO_TIMESTAMPNS: int | None = getattr(socket, "SO_TIMESTAMPNS", 35) if sys.platform.startswith("linux") else None
_TIMESPEC = struct.Struct("@qq")
_ROOM = socket.CMSG_SPACE(_TIMESPEC.size) if SO_TIMESTAMPNS is not None else 0
#: Datagrams of one reading each read with their stamp (0.7 us more than a plain read here); the rest of a
#: flood are read plainly and timed by the reading, as before: later than they came, never earlier (an earlier
#: time would match a real move to an older sending of the same bytes, and drop it as its echo).
EXACT = 16


def stamp(sock: socket.socket) -> None:
    """Have the kernel stamp each datagram ``sock`` receives, where it can (a target's socket is stamped
    by its first reading)."""
    if SO_TIMESTAMPNS is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            pass


class Clock:
    """One batch's reading: each datagram's arrival in ``arrivals``, on ``time.monotonic()``'s clock; None
    for one not stamped, to be timed when the batch is handled (after its reading: never too early)."""

    def __init__(self) -> None:
        self._offset = time.time() - time.monotonic()  # the kernel stamps with the wall clock
        self.arrivals: list[float | None] = []
        self._last = 0.0  # the latest arrival stamped

    def receive(self, sock: socket.socket, size: int, flags: int = 0) -> tuple[bytes, Any]:
        """One datagram from ``sock``: its bytes and its sender; when it arrived goes to ``arrivals``."""
        arrivals = self.arrivals
        if SO_TIMESTAMPNS is None or len(arrivals) >= EXACT:
            data, address = sock.recvfrom(size, flags)
            arrivals.append(None)
            return data, address
        data, ancillary, _flags, address = sock.recvmsg(size, _ROOM, flags)
        for level, kind, raw in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= _TIMESPEC.size:
                seconds, nanoseconds = _TIMESPEC.unpack_from(raw)
                # Never later than this reading, nor earlier than the one before it: the wall clock the kernel
                # stamps with may be stepped meanwhile, either way (a virtual machine's, set by NTP).
                at = min(seconds + nanoseconds * 1e-9 - self._offset, time.monotonic())
                self._last = max(at, self._last)
                arrivals.append(self._last)
                return data, address
        arrivals.append(None)  # not stamped yet: from the next datagram on (once per socket)
        stamp(sock)
        return data, address
