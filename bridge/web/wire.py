"""Each browser's WebSocket written directly, without ever blocking the writer (gevent only).

A change going to N browsers is encoded once (:func:`frame`, the whole
WebSocket frame) and the same bytes are written to every socket that is not
behind, straight from the greenlet that fans it out: no Socket.IO queue, no
writer greenlet woken per browser.

To keep every packet of a browser in order, its :class:`Wire` takes over
all writing to its socket: gevent-websocket writes each frame through the
WebSocket's ``raw_write``, and that becomes :meth:`Wire.write`. So the
Engine.IO writer (snapshot, pings, rejections, status events), the frames
of the fan-out and the WebSocket's own pong and close frames all pass
through one place. A write is one non-blocking ``send``; what the kernel
cannot take now waits in the wire and a greenlet of its own finishes it.
While it does, the browser is **behind** (:attr:`Wire.flushing`) and the
fan-out holds its values back (:mod:`bridge.web.fanout`): a slow phone never
blocks the fan-out or another browser, and never gets its stream cut in the
middle of a frame.

The kernel's buffers toward a browser hold thousands of small frames before
they fill, so a wire also knows how far its browser has *read*: now and then
the fan-out writes an Engine.IO ping after its frames (:meth:`Reading.due`).
Every Engine.IO client answers a ping with a pong as soon as it reads it,
and in order, so a pong says the browser has read everything written before
its ping. A browser that leaves one unanswered too long, or while too many
frames follow it, is behind (:meth:`Reading.unread`). The library's own pings
are counted the same way. Under TLS, where the library writes every packet,
its WebSocket still counts the pings it sends and the pongs it reads.

The hook is Engine.IO's WebSocket class for gevent (:func:`install`); with
any other server model, or a version of the libraries whose shape differs,
nothing is installed and every packet takes the library's own way. Under
TLS (``[server] tls``) each browser's packets also take the library's way:
the bytes must go through the TLS layer, not the plain socket beneath it.
"""

from __future__ import annotations

import itertools
import logging
import struct
import time
from collections import deque
from typing import Any

log = logging.getLogger(__name__)

#: Bytes the library may leave waiting for a browser that reads nothing (acknowledgements, answers:
#: the updates themselves are held as latest values). Past them the browser is let go: a script
#: that sent pings with acknowledgements and never read grew the server by 3.7 GB in 25 s.
MAX_WAITING = 8 * 1024 * 1024

_TEXT = 0x81  # FIN + text opcode


def frame(text: str) -> bytes:
    """The server-to-browser WebSocket text frame (unmasked) carrying ``text``."""
    payload = text.encode("utf-8")
    size = len(payload)
    if size < 126:
        return bytes((_TEXT, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", _TEXT, 126, size) + payload
    return struct.pack("!BBQ", _TEXT, 127, size) + payload


#: An Engine.IO ping, as the library writes it too: every client answers it at once with a pong.
PING_TEXT = "2"
PING = frame(PING_TEXT)
PONG = "3"

#: A browser that has not read what was written to it this long ago (seconds) is behind,
LAG_LIMIT = 0.1
#: as is one that has not read a ping followed by this many frames.
WINDOW = 64
#: A ping follows every this many frames.
PROBE_EVERY = 32
#: For this long (seconds) after a browser was found behind, a ping follows every
#: frame (while none is unanswered) and its window is this many frames.
EAGER_FOR = 5.0
EAGER_WINDOW = 2
_phases = itertools.count()


class Reading:
    """How far a browser has read what was sent to it, from the Engine.IO pings among it.

    Kept for every browser on a WebSocket, written directly (:class:`Wire`)
    or the library's way (under TLS).
    """

    __slots__ = ("pings", "since_probe", "best", "_eager_until")

    def __init__(self) -> None:
        #: When each ping not answered yet was written (``time.monotonic``).
        self.pings: deque[float] = deque()
        #: Frames the fan-out sent since the last ping. Browsers start at different
        #: counts: a thousand pings (and pongs) in the same instant would delay that change.
        self.since_probe = next(_phases) % PROBE_EVERY
        self._eager_until = 0.0  # till then a ping follows every frame (it was behind lately)
        #: The quickest answer to a ping so far (seconds): the network's own round trip, about.
        #: A browser far away is behind only when it is :data:`LAG_LIMIT` later than that.
        self.best = 0.0

    def pinged(self, now: float) -> None:
        """A ping goes out ``now`` (``time.monotonic``), after everything sent before it."""
        self.pings.append(now)
        self.since_probe = 0

    def due(self, now: float) -> bool:
        """The fan-out sent a frame (at ``now``, ``time.monotonic``): True when a ping should follow it.

        Due after :data:`PROBE_EVERY` frames, or after every frame for
        :data:`EAGER_FOR` seconds since the browser was last found
        :meth:`unread`; never while a ping is unanswered.
        """
        self.since_probe += 1
        return not self.pings and (self.since_probe >= PROBE_EVERY or now < self._eager_until)

    def unread(self, now: float) -> bool:
        """The browser has not read what was sent to it :data:`LAG_LIMIT` ago (beyond its
        :attr:`best` round trip), or :data:`WINDOW` frames sent since a ping it has not answered
        (:data:`EAGER_WINDOW` within :data:`EAGER_FOR` of the last time it was found behind)."""
        pings = self.pings
        window = EAGER_WINDOW if now < self._eager_until else WINDOW
        if pings and (now - pings[0] > LAG_LIMIT + self.best or self.since_probe >= window):
            self._eager_until = now + EAGER_FOR
            return True
        return False

    def answered(self, now: float) -> None:
        """A pong came ``now``: the browser read everything sent up to the oldest ping unanswered."""
        if self.pings:
            trip = now - self.pings.popleft()
            if trip < self.best or not self.best:
                self.best = trip


class Wire:
    """The write side of one browser's WebSocket; ``eio_socket`` is its Engine.IO socket."""

    __slots__ = (
        "eio_socket",
        "queue",
        "flushing",
        "dead",
        "reading",
        "_gsock",
        "_raw",
        "_pending",
        "_spawn",
        "_ready",
        "_flusher",
        "_waiting",
    )

    def __init__(self, eio_socket: Any, ws: Any, spawn: Any) -> None:
        self.eio_socket = eio_socket
        self.queue = eio_socket.queue  # the library's packets for this browser, not written yet
        self._ready = False
        self._gsock = ws.handler.socket  # gevent's socket: sendall waits for room, yielding
        self._raw = self._gsock._sock  # the real one underneath, non-blocking
        self._pending: list[bytes] = []
        self._spawn = spawn
        self._flusher: Any = None  # the greenlet writing what the kernel would not take at once
        self._waiting = 0  # bytes in _pending
        #: True while bytes the kernel would not take yet wait here: the browser is behind.
        self.flushing = False
        #: The connection broke; nothing more is written.
        self.dead = False
        #: How far the browser has read: every ping written here is counted.
        self.reading = Reading()
        ws.raw_write = self.write

    @property
    def ready(self) -> bool:
        """True once the WebSocket carries the session (after an upgrade from polling, once it is done)."""
        if self._ready:
            return not self.dead  # a session that ends ends its wire too
        eio = self.eio_socket
        self._ready = bool(eio.upgraded and not eio.upgrading and not eio.closed)
        return self._ready and not self.dead

    def write(self, data: bytes) -> None:
        """Write ``data`` (whole frames) after everything written before; never waits.

        Raises ``OSError`` once the connection broke, as the socket's own
        ``sendall`` would, so the library closes the session as usual.
        """
        if self.dead:
            raise BrokenPipeError("the browser's connection is gone")
        if data == PING:
            self.reading.pinged(time.monotonic())
        if self.flushing:
            self._waiting += len(data)
            if self._waiting > MAX_WAITING:
                self.dead = True
                log.warning("browser %s reads nothing (%d MB waiting): let go", self.eio_socket.sid, MAX_WAITING >> 20)
                raise BrokenPipeError("the browser reads nothing")
            self._pending.append(data)
            return
        try:
            sent = self._raw.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.dead = True
            raise
        if sent < len(data):
            self._pending.append(data[sent:])
            self.flushing = True
            self._flusher = self._spawn(self._flush)

    def offer(self, data: bytes) -> bool:
        """:meth:`write` for the fan-out: False (nothing written) when the connection is gone."""
        try:
            self.write(data)
        except OSError:
            return False
        return True

    def close(self) -> None:
        """The connection ends: stop writing, and wait until the writer no longer waits on the socket.

        gevent's WSGI handler closes the socket beneath gevent when the request ends; a writer still
        waiting for room then left libev watching a closed descriptor, and the process aborted
        ("I/O watcher with invalid fd found in epoll_ctl"), taking the show with it.
        """
        self.dead = True
        flusher = self._flusher
        if flusher is not None and not flusher.dead:
            flusher.kill(block=True)
        self._pending.clear()

    def _flush(self) -> None:
        try:
            while self._pending:
                data = b"".join(self._pending)
                self._pending.clear()
                self._waiting = 0
                self._gsock.sendall(data)
        except OSError:
            self.dead = True
            self._pending.clear()
        finally:
            self.flushing = False


class Wires:
    """The wires of the browsers connected over a WebSocket, by Engine.IO session id."""

    def __init__(self) -> None:
        self._by_eio_sid: dict[str, Wire] = {}
        self._readings: dict[str, Reading] = {}  # of the browsers written the library's way (TLS)
        self.installed = False

    def get(self, eio_sid: str) -> Wire | None:
        return self._by_eio_sid.get(eio_sid)

    def reading(self, eio_sid: str) -> Reading | None:
        """How far a browser on a WebSocket written the library's way (under TLS) has read."""
        return self._readings.get(eio_sid)

    def install(self, eio: Any) -> bool:
        """Take over the WebSockets of Engine.IO server ``eio`` (gevent-websocket); True when in place."""
        if self.installed:
            return True
        drivers = getattr(eio, "_async", None)
        if not isinstance(drivers, dict):
            return False
        base = drivers.get("websocket")
        if getattr(eio, "async_mode", None) != "gevent" or base is None or not hasattr(base, "send"):
            return False
        try:
            from geventwebsocket.websocket import WebSocket
        except ImportError:
            return False
        if "raw_write" not in getattr(WebSocket, "__slots__", ()):
            log.warning("gevent-websocket's WebSocket has no raw_write; browsers are written the library's way")
            return False
        import gevent
        import gevent.ssl

        wires = self._by_eio_sid
        readings = self._readings

        class WiredWebSocket(base):  # type: ignore[misc, valid-type]
            """Engine.IO's gevent WebSocket, with its socket written through a :class:`Wire`
            (under TLS, the library's way), and its pings and pongs counted."""

            wire: Wire | None = None
            reading: Reading | None = None

            def wait(self) -> Any:
                message = super().wait()
                if message == PONG and self.reading is not None:
                    self.reading.answered(time.monotonic())
                return message

            def send(self, message: Any) -> Any:
                if message == PING_TEXT and self.wire is None and self.reading is not None:
                    self.reading.pinged(time.monotonic())  # (a wire counts what it writes itself)
                return super().send(message)

            def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
                ws = environ.get("wsgi.websocket")
                eio_socket = getattr(self.app, "__self__", None)
                sid = getattr(eio_socket, "sid", None)
                gsock = getattr(getattr(ws, "handler", None), "socket", None)
                if sid is not None and isinstance(gsock, gevent.ssl.SSLSocket):
                    # Under TLS the plain socket beneath is no way out: the library writes, pings counted here.
                    reading = self.reading = readings[sid] = Reading()
                    try:
                        return super().__call__(environ, start_response)
                    finally:
                        if readings.get(sid) is reading:
                            del readings[sid]
                if sid is None or not callable(getattr(getattr(gsock, "_sock", None), "send", None)):
                    return super().__call__(environ, start_response)
                wire = self.wire = wires[sid] = Wire(eio_socket, ws, gevent.spawn)
                self.reading = wire.reading
                try:
                    return super().__call__(environ, start_response)
                finally:
                    wire.close()
                    if wires.get(sid) is wire:
                        del wires[sid]

        # The instance's own table: the driver's module-level one stays as it is.
        eio._async = {**drivers, "websocket": WiredWebSocket}
        self.installed = True
        return True
