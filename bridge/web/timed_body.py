"""A request's body that must come in time: a body held back a byte at a time held its connection for good.

gevent's WSGI server reads a body only when the application asks (and, after
the response, reads what is left to find the next request), each read as
long as the client takes. :class:`TimedBody` stands in for both: the body
must come within the request timeout of its head, plus a second for every
:data:`MIN_RATE` bytes that came, so a large import on a slow link gets the
time it needs and a trickle does not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from bridge.logs import LogLimiter

log = logging.getLogger("bridge.serve")
said = LogLimiter(log, interval=60.0)

#: Bytes a second that buy a body more time (16 MB of scenes at 8 KB/s: about half an hour).
MIN_RATE = 8192
#: The most one read waits for at once: each piece that comes buys its second before the next is waited for.
PIECE = MIN_RATE
#: What is left of a body the application did not read (a 404, a 413) is read and dropped, to keep the
#: connection for the next request, up to this much; past it the connection is closed instead.
DRAIN_LIMIT = 65536


def has_body(environ: dict[str, Any]) -> bool:
    """The request announces a body: a Content-Length above 0, or chunked."""
    chunked = str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower() == "chunked"
    return chunked or environ.get("CONTENT_LENGTH") not in (None, "", "0")


class TimedBody:
    """gevent's ``Input`` for one request, each read within what is left of the body's time.

    Past it a read raises ``TimeoutError`` (Werkzeug answers 400; the
    polling check its own), the connection is to close, and what is left of
    the body is not waited for (:meth:`_discard`, which gevent calls after
    the response).
    """

    def __init__(self, stream: Any, handler: Any, timeout: float) -> None:
        self._stream, self._handler, self._timeout = stream, handler, timeout
        self._deadline = time.monotonic() + timeout
        self._late = False

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and 0 <= size <= PIECE:
            return self._timed(self._stream.read, size)
        pieces, left = [], -1 if size is None or size < 0 else size
        while left:
            piece = self._timed(self._stream.read, PIECE if left < 0 else min(left, PIECE))
            if not piece:
                break
            pieces.append(piece)
            left = left if left < 0 else left - len(piece)
        return b"".join(pieces)

    def readline(self, size: int | None = -1) -> bytes:
        return self._timed(self._stream.readline, size)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def _discard(self) -> None:
        """What the application left unread (a 404, a 413): up to DRAIN_LIMIT read and dropped within the same
        time, to keep the connection; more, or a client still waiting for its ``100 Continue``, and the
        connection closes instead (a 100 after the answer would invite the body just refused)."""
        if self._late:
            return
        if getattr(self._stream, "socket", None) is not None:  # (gevent's Input: the 100 not sent yet)
            self._handler.close_connection = True
            return
        drained = 0
        try:
            while drained <= DRAIN_LIMIT and (piece := self.read(PIECE)):
                drained += len(piece)
        except TimeoutError:
            return
        if drained > DRAIN_LIMIT:
            self._handler.close_connection = True

    def _timed(self, read: Callable[[Any], bytes], size: int | None) -> bytes:
        import gevent

        if self._late:
            raise TimeoutError("request body too slow")
        try:
            with gevent.Timeout(max(self._deadline - time.monotonic(), 0.0), TimeoutError("request body too slow")):
                data: bytes = read(size)
        except TimeoutError:
            self._late = True
            host = self._handler.client_address[0]
            said.warning(host, "let go of %s: its request body came slower than its %g s allow", host, self._timeout)
            self._handler.close_connection = True
            raise
        self._deadline += len(data) / MIN_RATE
        return data
