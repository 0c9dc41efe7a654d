"""The HTTP server in front of the app: gevent's WSGI server, bound before anything starts.

Binding first means a taken port is one clear line and exit code 1, before
any OSC or MIDI port is opened. The listening socket has ``TCP_NODELAY``,
which Linux hands down to every accepted connection: an ``update value``
frame is a few dozen bytes, and Nagle's algorithm would otherwise hold it
back until the browser acknowledges the previous one (up to 40 ms with a
delayed ACK). SIGTERM and Ctrl-C stop the server cleanly; the caller then
stops the bridge, which saves the state. SIGHUP reads the config file again.

A WebSocket upgrade from a page of a foreign origin is answered 403 before
the upgrade: gevent-websocket would otherwise switch protocols first and
hand the request to Engine.IO, whose refusal could then only close the
socket (a client sees an empty packet, not a refusal).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import ssl
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

from bridge.auth import Origins
from bridge.logs import LogLimiter, raised_by_a_library
from bridge.net import listen
from bridge.web.timed_body import TimedBody, has_body

if TYPE_CHECKING:
    from bridge.app import Bridge

log = logging.getLogger(__name__)


def _request_timeout() -> tuple[float, str | None]:
    raw = os.environ.get("STAGE_BRIDGE_REQUEST_TIMEOUT", "")
    try:
        value = float(raw or 15.0)
    except ValueError:
        value = -1.0
    if not 1 <= value <= 3600:
        return 15.0, f"STAGE_BRIDGE_REQUEST_TIMEOUT={raw!r} is not a number of seconds from 1 to 3600; 15 is used"
    return value, None


#: How long a browser may take to send a request's head (its line and headers), its body, and
#: a TLS handshake, each however slowly it trickles (STAGE_BRIDGE_REQUEST_TIMEOUT, 15 s). Half-sent
#: requests held open, with no end, took every descriptor: the pages and /healthz went down.
HEAD_TIMEOUT, HEAD_TIMEOUT_PROBLEM = _request_timeout()
#: Descriptors kept for the rest of the bridge (OSC clients and targets, files, MIDI, JACK)
#: when the HTTP connections are counted against the process's limit.
RESERVED_FDS = 128


def connection_limit() -> int:
    """HTTP connections served at once: the open-files limit (raised to its ceiling, at most 65,536),
    less what the rest of the bridge needs. Past it, new connections wait in the kernel's queue until
    one ends; before, the process ran out of descriptors and logged a traceback a second."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to read; gevent's own default
        return 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    for wanted in (ceiling, 10240, 4096):  # (macOS refuses more than its OPEN_MAX, 10,240)
        if soft == resource.RLIM_INFINITY or soft >= wanted:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
            break
        except (ValueError, OSError):
            continue
    limit = 65536 if soft == resource.RLIM_INFINITY else soft
    return max(64, limit - RESERVED_FDS)


#: Seconds open requests get to finish when the server stops.
STOP_TIMEOUT = 1.0


def xor_mask(payload: bytes | bytearray, mask: bytes) -> bytes:
    """``payload`` XORed with the 4-byte WebSocket ``mask`` repeated (RFC 6455, 5.3), in C (wsaccel)."""
    from wsaccel.xormask import XorMaskerSimple

    return bytes(XorMaskerSimple(bytes(mask)).process(bytes(payload)))


def speed_up_gevent_websocket() -> bool:
    """Unmask browser frames with wsaccel's C masker instead of byte by byte; True when in place.

    gevent-websocket unmasks every incoming frame with a Python loop over its
    bytes: about 4 us for a fader move and 70 us for a 1 kB text, a fifth of
    what a flood of fader moves costs the server. Its UTF-8 check is already
    wsaccel's (a dependency); its masking is not, so ``Header.mask_payload``
    is replaced, once, at start-up. If a newer gevent-websocket no longer has
    the method this replaces, nothing is touched and the log says so.
    """
    from geventwebsocket import websocket
    from wsaccel.xormask import XorMaskerSimple

    header = websocket.Header
    current = header.__dict__.get("mask_payload")
    if getattr(current, "accelerated", False):
        return True
    if (
        current is None
        or getattr(current, "__module__", None) != websocket.__name__
        or header.__dict__.get("unmask_payload") is not current
    ):
        log.warning(
            "gevent-websocket's Header.mask_payload is not the one this bridge speeds up (found %r); "
            "frames are unmasked the library's own way, which is slower under a flood",
            current,
        )
        return False

    def mask_payload(self: Any, payload: bytes) -> bytes:
        return bytes(XorMaskerSimple(self.mask).process(bytes(payload)))

    mask_payload.accelerated = True  # type: ignore[attr-defined]
    header.mask_payload = mask_payload
    header.unmask_payload = mask_payload
    return True


def refusing_handler(origins: Origins) -> type[Any]:
    """gevent-websocket's handler, refusing a WebSocket upgrade that ``origins`` does not allow with 403;
    a request's body must come whole within HEAD_TIMEOUT (:class:`TimedBody`)."""
    import gevent
    from geventwebsocket.handler import WebSocketHandler

    warn = LogLimiter(log, interval=60.0)
    body = b"Not an accepted origin.\n"

    class OriginCheckingHandler(WebSocketHandler):  # type: ignore[misc]
        head_deadline: Any = None
        wsgi_input: Any  # gevent's Input for the request (a TimedBody stands in when it has a body)

        def handle_one_request(self) -> Any:
            # The whole head within HEAD_TIMEOUT, however slowly it trickles in (a connection idle
            # between two requests too); an OSError, so that gevent closes the connection quietly.
            self.head_deadline = gevent.Timeout.start_new(HEAD_TIMEOUT, TimeoutError("request head too slow"))
            try:
                return super().handle_one_request()
            finally:
                self.head_deadline.cancel()

        def read_request(self, raw_requestline: str) -> Any:
            try:
                return super().read_request(raw_requestline)
            except OSError:
                return False  # its head cut off or too slow: 400, without gevent's traceback
            finally:
                if self.head_deadline is not None:
                    self.head_deadline.cancel()  # the request runs as long as it needs (a WebSocket)

        def run_application(self) -> None:
            environ = self.environ
            origin = environ.get("HTTP_ORIGIN")
            is_websocket = environ.get("HTTP_UPGRADE", "").lower() == "websocket"
            if has_body(environ):  # (an Upgrade header is no excuse: gevent-websocket may serve it as HTTP)
                self.wsgi_input = environ["wsgi.input"] = TimedBody(self.wsgi_input, self, HEAD_TIMEOUT)
            if is_websocket and not origins.allows(origin, environ):
                warn.warning(("origin", origin), "refused a WebSocket from %s: not an accepted origin", origin)
                headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
                self.start_response("403 Forbidden", headers)
                self.result = [body]
                self.process_result()
                return
            try:
                super().run_application()
            except (ValueError, TypeError, KeyError, IndexError) as err:
                # python-engineio decodes each WebSocket frame outside any handler: a
                # broken one (empty, a bad packet type) ends the connection with this
                # exception, which gevent would log with its traceback, per connection.
                if not is_websocket or not raised_by_a_library(err):
                    raise
                warn.warning(("frame", origin), "WebSocket closed on a malformed Engine.IO packet (%s)", err)

    return OriginCheckingHandler


class HttpServer:
    """Serves ``bridge.app`` on ``host:port`` with the process's server model."""

    def __init__(self, bridge: Bridge, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.bridge = bridge
        self.host = host
        self.port = port
        self.tls = tls
        self.model = bridge.socketio.async_mode
        self._server: Any = None
        if self.model == "gevent":
            from gevent import pywsgi

            speed_up_gevent_websocket()
            handler = refusing_handler(bridge.origins)
            if HEAD_TIMEOUT_PROBLEM is not None:
                log.warning("%s", HEAD_TIMEOUT_PROBLEM)
            # With TLS, each connection's handshake runs in its own greenlet, like its requests.
            server_class = pywsgi.WSGIServer if tls is None else _secure_server_class(pywsgi.WSGIServer)
            secure: dict[str, Any] = {} if tls is None else {"ssl_context": tls}
            from gevent.pool import Pool

            self.connections = connection_limit()
            self._server = server_class(
                listen(host, port), bridge.app, handler_class=handler, log=None, spawn=Pool(self.connections), **secure
            )

    def serve_forever(self) -> None:
        """Serve until SIGTERM or Ctrl-C."""
        if self._server is None:
            _freeze_startup_heap()
            # Measurement only (bridge.concurrency): Werkzeug's threads, as Flask-SocketIO runs them.
            signal.signal(signal.SIGTERM, _exit)
            signal.signal(signal.SIGHUP, lambda signum, frame: self._reload_soon())
            self.bridge.socketio.run(
                self.bridge.app,
                host=self.host,
                port=self.port,
                use_reloader=False,
                log_output=False,
                allow_unsafe_werkzeug=True,
                ssl_context=self.tls,
            )
            return
        import gevent

        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, self.stop)
        gevent.signal_handler(signal.SIGHUP, self._reload_soon)
        _freeze_startup_heap()
        self._server.serve_forever(stop_timeout=STOP_TIMEOUT)

    def _reload_soon(self) -> None:
        """SIGHUP: read the config file again, on a thread of its own (not inside the signal handler)."""
        reload = self.bridge.reloader.reload
        threading.Thread(target=reload, args=("SIGHUP",), name="config-sighup", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None and not self._server.closed:
            self._server.stop(timeout=STOP_TIMEOUT)

    def close(self) -> None:
        """Let go of the port without having served (start-up failed)."""
        if self._server is not None:
            self._server.close()


def _freeze_startup_heap() -> None:
    """Leave what start-up made (modules, the app, the config: about 75,000 objects) out of
    Python's full collections from now on.

    A full collection visits every object that is not frozen, and it runs
    whenever enough new ones have survived: with the start-up heap in it, one
    stalled the whole server (each browser, OSC, MIDI) 50-70 ms on this
    machine, in the middle of an OSC flood after a busy minute; with it frozen,
    about 20 ms. Garbage is collected first so that none is kept for good.
    """
    gc.collect()
    gc.freeze()


def _exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


#: A TLS connection starts with a handshake record; anything else on the HTTPS port is plain HTTP.
TLS_HANDSHAKE = 0x16
#: Seconds a new connection gets to send its first byte, and a plain HTTP one its request head.
FIRST_BYTES_TIMEOUT = 10.0
MAX_HEAD = 8192


def _secure_server_class(base: type) -> type:
    """gevent's WSGI server that also answers plain HTTP on its HTTPS port, with a redirect.

    Someone types ``http://`` plus the address on a phone: they get the HTTPS
    page instead of a reset connection, and the log gets no traceback. A
    handshake that fails (the phone refused the certificate, a scanner) is
    one debug line.
    """

    import gevent

    class SecureServer(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            wrap = self.wrap_socket  # type: ignore[has-type]

            def handshake(sock: socket.socket, **options: Any) -> Any:
                with gevent.Timeout(HEAD_TIMEOUT, TimeoutError("TLS handshake too slow")):  # the whole of it
                    wrapped = wrap(sock, **options)
                wrapped.settimeout(None)  # then as long as the connection needs (a WebSocket)
                return wrapped

            self.wrap_socket = handshake

        def wrap_socket_and_handle(self, client_socket: socket.socket, address: Any) -> Any:
            try:
                client_socket.settimeout(FIRST_BYTES_TIMEOUT)
                first = client_socket.recv(1, socket.MSG_PEEK)
                client_socket.settimeout(HEAD_TIMEOUT)  # the handshake too (the head's own deadline follows)
            except OSError:
                client_socket.close()
                return None
            if first and first[0] != TLS_HANDSHAKE:
                redirect_to_https(client_socket)
                return None
            try:
                return super().wrap_socket_and_handle(client_socket, address)
            except (ssl.SSLError, OSError) as err:
                log.debug("TLS handshake with %s failed: %s", address, err)
                return None

    return SecureServer


def redirect_to_https(sock: socket.socket) -> None:
    """Answer a plain HTTP request on the HTTPS port: ``308`` to the same host and path over ``https://``."""
    head = b""
    try:
        sock.settimeout(FIRST_BYTES_TIMEOUT)
        while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
            data = sock.recv(MAX_HEAD - len(head))
            if not data:
                break
            head += data
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        target = parts[1].decode("latin-1") if len(parts) == 3 and parts[1].startswith(b"/") else "/"
        host = next((line[5:].strip() for line in lines[1:] if line[:5].lower() == b"host:"), b"")
        if host and all(33 <= c < 127 for c in host):
            location = f"https://{host.decode('ascii')}{target}"
            body = b""
            status = b"308 Permanent Redirect"
            extra = f"Location: {location}\r\n".encode("latin-1")
        else:
            body = b"This server speaks HTTPS only.\n"
            status = b"400 Bad Request"
            extra = b"Content-Type: text/plain\r\n"
        sock.sendall(
            b"HTTP/1.1 " + status + b"\r\n" + extra + b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"Connection: close\r\n\r\n" + body
        )
    except OSError as err:
        log.debug("plain HTTP on the HTTPS port: %s", err)
    finally:
        sock.close()
