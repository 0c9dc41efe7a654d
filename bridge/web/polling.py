"""A long-polling POST's packets checked before python-engineio reads them.

python-engineio answers a packet type it does not know by closing the
session and waiting until its queue is sent, which on a polling session
only the next GET does: the POST that carried it is never answered, and
holds a socket and a greenlet for good. A client that sends such bodies in
a loop (a broken one, or someone on the stage network) could run the
server out of sockets. So the body of every polling POST is looked at first:
each packet must start with an Engine.IO v4 packet type (``0``-``6``, or
``b`` for base64 binary); anything else is answered 400 at once, as the
library answers other broken bodies.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

#: What an Engine.IO v4 packet may start with: its type (0-6), or b for a binary one in base64.
PACKET_STARTS = frozenset(b"0123456b")
#: Packets of one polling payload are separated by this byte.
SEPARATOR = b"\x1e"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def well_formed(body: bytes) -> bool:
    """True when every packet of a polling ``body`` starts with a packet type python-engineio knows."""
    return all(packet[:1] and packet[0] in PACKET_STARTS for packet in body.split(SEPARATOR))


def guard(app: WsgiApp, path: str = "/socket.io", limit: int = 1_000_000) -> WsgiApp:
    """``app`` with the POSTs of Engine.IO's polling transport under ``path`` checked first (at most
    ``limit`` bytes are read for it; a longer body is left to the library, which refuses it)."""
    prefix = path.rstrip("/") + "/"

    def checked(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if (
            environ.get("REQUEST_METHOD") == "POST"
            and (environ.get("PATH_INFO", "") + "/").startswith(prefix)
            and "transport=polling" in environ.get("QUERY_STRING", "")
        ):
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = -1
            if 0 <= length <= limit:
                try:
                    body = environ["wsgi.input"].read(length)
                except OSError:  # cut off, or too slow (bridge.serve.TimedBody): the connection closes
                    start_response("400 BAD REQUEST", [("Content-Type", "text/plain")])
                    return [b"incomplete body\n"]
                environ["wsgi.input"] = io.BytesIO(body)  # read again by the library
                if not well_formed(body):
                    start_response("400 BAD REQUEST", [("Content-Type", "text/plain")])
                    return [b"not an Engine.IO payload\n"]
        return app(environ, start_response)

    return checked
