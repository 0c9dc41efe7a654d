"""The OSCQuery HTTP and WebSocket server, on a port of its own.

OSCQuery clients expect the namespace at the root of their server, so it
cannot share the page's port. The URL path is the OSC path, the query
string names one attribute (``/slider1?VALUE``), ``?HOST_INFO`` tells where
OSC goes. On the same port a WebSocket client sends
``{"COMMAND": "LISTEN", "DATA": path}`` to get every change of a control as
a binary OSC message (``IGNORE`` stops it), and binary OSC messages to set
values; what those do is the adapter's business (``receive``).

The server is Werkzeug's threaded WSGI server on a thread of its own, and a
WebSocket is taken over with simple-websocket: both use only the standard
library's sockets and threads, so they work under plain threads and under
gevent's monkey-patching alike. Each WebSocket client has its own writer
thread and its own small outbox (one frame per path, the latest wins), so a
slow client never holds up the hub or the other clients.
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import simple_websocket
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from bridge.auth import Access, Origins, Role, presented_key
from bridge.config import Config
from bridge.errors import BridgeError
from bridge.flow import Outbox, Workers
from bridge.logs import LogLimiter
from bridge.model import Value
from bridge.net import listen, unmapped
from bridge.oscquery.namespace import ATTRIBUTES, EXTENSIONS, Namespace

log = logging.getLogger(__name__)

#: A button's presses and releases waiting for one client are kept each, in order, up to this
#: many frames waiting; past them (a client that stopped reading) the latest state, as for a fader.
EVENTS_MAX = 64
_events = itertools.count()
#: A silent WebSocket is pinged this often; one that does not answer by the next ping is closed.
PING_INTERVAL = 5.0
#: A client whose socket takes nothing for this long is gone (or reads nothing): it is dropped,
#: rather than holding a writer thread and a full socket buffer for as long as TCP keeps trying.
SEND_TIMEOUT = 10.0


class Client:
    """One WebSocket client: what it listens to, and the frames waiting for it.

    The outbox holds at most one frame per path: a newer value replaces an
    older one not yet sent, so a client that cannot keep up gets the latest
    values, and the memory it can take is bounded by the number of controls.
    """

    def __init__(self, ident: str, ws: Any, role: Role, peer: str, key: str | None = None, host: str = "") -> None:
        self.ident = ident
        self.ws = ws
        self.role = role
        self.peer = peer
        #: Its address (what an echo of what it was sent comes from, over the WebSocket or UDP).
        self.host = host
        #: The key it connected with: checked again when the config's keys change.
        self.key = key
        self.paths: set[str] = set()
        self.sent = 0
        self._outbox: Outbox[object, bytes | str] = Outbox()
        self._closed = False

    def offer(self, key: object, data: bytes | str, event: bool = False) -> None:
        """Queue ``data`` under ``key`` (a path, or a path and a control: a newer frame replaces it; a text
        frame when it is text); an ``event`` (a button's press or release) is kept each, while few wait.
        Never blocks on the network."""
        if not self._closed:
            if event and len(self._outbox) < EVENTS_MAX:
                key = (key, next(_events))
            self._outbox.put(key, data)

    @property
    def waiting(self) -> int:
        """Frames queued and not yet handed to the socket."""
        return len(self._outbox)

    @property
    def coalesced(self) -> int:
        """Frames replaced by a newer one for the same path before they went out."""
        return self._outbox.replaced

    def close(self) -> None:
        self._closed = True
        self._outbox.wake()

    def write_loop(self) -> None:
        """Send queued frames until the client goes away (its own thread)."""
        while True:
            batch = self._outbox.take()
            if self._closed:
                return
            for data in batch.values():
                try:
                    self.ws.send(data)
                except (simple_websocket.ConnectionClosed, OSError):
                    self.close()
                    return
                self.sent += 1


class WholeFrames:
    """A client's socket whose every ``send`` is written whole, one at a time.

    simple-websocket writes each frame with a single ``socket.send``. Under
    gevent (or whenever the socket has a timeout) that can write only part of
    a frame to a client whose buffer is nearly full, and the rest is lost:
    the client's stream is broken from there on. The writer thread and
    simple-websocket's own thread (pongs, the close frame) share the socket,
    so a lock also keeps their frames from interleaving.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def send(self, data: bytes) -> int:
        with self._lock:
            self._sock.sendall(data)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class OscQueryServer:
    """Answers namespace queries and serves WebSocket listeners.

    ``values()`` gives the current values; ``receive(client, data)`` is
    called with every binary OSC message a client sends.
    """

    def __init__(
        self,
        namespace: Namespace,
        config: Config,
        access: Access,
        values: Callable[[], dict[str, Value]],
        receive: Callable[[Client, bytes], None],
        origins: Origins | None = None,
        osc_port: Callable[[], int | None] | None = None,
    ) -> None:
        assert config.oscquery is not None  # noqa: S101 - built only for an [oscquery] table
        self.namespace = namespace
        #: The running config (a reload puts the new one here): HOST_INFO's name and OSC address.
        self.config = config
        #: Web pages that may open a WebSocket here: the same as for the show's own pages.
        self.origins = origins or Origins()
        #: The UDP port OSC is taken on now (the OSC side may have moved since this server started).
        self._osc_port = osc_port
        self.settings = config.oscquery
        self.access = access
        self._values = values
        self._receive = receive
        self._clients: dict[str, Client] = {}
        self._listeners: dict[str, list[Client]] = {}  # path -> clients listening to it
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: BaseWSGIServer | None = None
        self._workers = Workers()
        self._warn = LogLimiter(log, interval=5.0)
        self.dropped = 0
        self._gone = (0, 0)  # frames sent and coalesced by clients that have left

    @property
    def host(self) -> str:
        return self.settings.host if self.settings.host is not None else self.config.server.host

    @property
    def port(self) -> int:
        """The TCP port actually bound (useful with port 0)."""
        return int(self._server.socket.getsockname()[1]) if self._server is not None else self.settings.port

    # -- life cycle ----------------------------------------------------------------
    def start(self) -> None:
        """Bind the port and serve on a thread of its own."""
        try:
            sock = listen(self.host, self.settings.port, "[oscquery]", "")
        except BridgeError as err:
            raise BridgeError(f"OSCQuery: {err}") from err
        try:
            # Bound above: on a bind error Werkzeug's server would call sys.exit (the whole bridge).
            server = make_server(self.host, sock.getsockname()[1], self.wsgi, threaded=True, fd=sock.fileno())
        finally:
            sock.close()  # (the server keeps its own copy)
        self._server = server
        self._workers.start((server.serve_forever, "oscquery-http"))
        log.info("OSCQuery on http://%s:%d/ (WebSocket on the same port)", self.host, self.port)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with self._lock:
            clients = list(self._clients.values())
        for client in clients:
            client.close()
            try:
                client.ws.close()
            except (simple_websocket.ConnectionClosed, OSError):
                pass
        self._workers.stop()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            listening = {path: len(clients) for path, clients in self._listeners.items() if clients}
            return {
                "listen": f"{self.host}:{self.port}",
                "clients": len(self._clients),
                # Clients with frames not yet handed to their socket: slow, or not reading at all.
                "behind": sum(1 for c in self._clients.values() if c.waiting),
                "listening": listening,
                "sent": self._gone[0] + sum(c.sent for c in self._clients.values()),
                "coalesced": self._gone[1] + sum(c.coalesced for c in self._clients.values()),
            }

    def reshape(self, namespace: Namespace) -> None:
        """A new namespace (a reload): every WebSocket client is told what changed; listeners of a path that went
        stop listening to it."""
        old, self.namespace = self.namespace, namespace
        changes = namespace.changes(old)
        with self._lock:
            clients = list(self._clients.values())
            for path in [p for _command, p in changes if p not in namespace.nodes]:
                for client in self._listeners.pop(path, []):
                    client.paths.discard(path)
        for command, path in changes:
            text = json.dumps({"COMMAND": command, "DATA": path})
            for client in clients:
                client.offer(f"{command} {path}", text)

    def offer(
        self, path: str, data: bytes, skip: str | None = None, key: object = None, event: bool = False
    ) -> list[Client]:
        """Queue ``data`` for every client listening to ``path`` but ``skip`` (the one it came from);
        ``key`` and ``event`` as :meth:`Client.offer` takes them (the path by default). The clients
        it went to are returned."""
        with self._lock:
            listeners = list(self._listeners.get(path, ()))
        offered = [client for client in listeners if client.ident != skip]
        for client in offered:
            client.offer(path if key is None else key, data, event)
        return offered

    # -- HTTP ----------------------------------------------------------------------
    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        """The WSGI application: a WebSocket upgrade, or a namespace query."""
        request = Request(environ)
        if request.method not in ("GET", "HEAD"):
            return _json({"error": "OSCQuery answers GET only"}, 405)(environ, start_response)
        role = self.access.role_for(presented_key(request))
        if role is None:
            return _json({"error": "unauthorized: send the key as ?key= or Authorization: Bearer"}, 401)(
                environ, start_response
            )
        if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            origin = environ.get("HTTP_ORIGIN")
            if not self.origins.allows(origin, environ):
                # Another web site's page in a phone's browser must not drive the show through here.
                self._warn.warning(
                    ("origin", origin), "OSCQuery: refused a WebSocket from %s: not an accepted origin", origin
                )
                return _json({"error": "not an accepted origin"}, 403)(environ, start_response)
            return self._websocket(environ, start_response, role, presented_key(request))
        return self._query(request, role)(environ, start_response)

    def _query(self, request: Request, role: Role) -> Response:
        attributes = [name for name in request.args if name != "key"]
        if "HOST_INFO" in attributes:
            return _json(self.host_info())  # the path is irrelevant to HOST_INFO
        node = self.namespace.find(request.path)
        if node is None:
            return _json({"error": f"no OSC node at {request.path}"}, 404)
        if not attributes:
            return _json(self.namespace.describe(node, self._values(), role))
        unknown = [name for name in attributes if name not in ATTRIBUTES]
        if unknown:
            return _json({"error": f"attribute {unknown[0]} is not supported here"}, 400)
        if "VALUE" in attributes and node.control is None:
            return Response(status=204)  # a container has no value
        full = self.namespace.describe(node, self._values(), role)
        return _json({name: full[name] for name in attributes if name in full})

    def host_info(self) -> dict[str, Any]:
        """What ``?HOST_INFO`` answers: who we are and where OSC and WebSocket traffic go."""
        osc = self.config.osc
        info: dict[str, Any] = {"NAME": self.config.discovery.name, "EXTENSIONS": EXTENSIONS}
        if osc is not None:
            if osc.listen_host not in ("0.0.0.0", "::", ""):  # noqa: S104
                info["OSC_IP"] = osc.listen_host  # else: the address the client reached us at
            info["OSC_PORT"] = (self._osc_port() if self._osc_port is not None else None) or osc.listen_port
            info["OSC_TRANSPORT"] = "UDP"
        info["WS_PORT"] = self.port
        return info

    # -- WebSocket -----------------------------------------------------------------
    def recheck_keys(self) -> None:
        """The keys changed (a reload): a client whose key no longer opens the show is let go; one whose role
        changed keeps its connection with its new role, as the pages do."""
        with self._lock:
            clients = list(self._clients.values())
        for client in clients:
            role = self.access.role_for(client.key)
            if role is None:
                log.warning(
                    "OSCQuery: client %s: its key is no longer valid after the reload; disconnected", client.ident
                )
                client.close()
                try:
                    client.ws.close()
                except (simple_websocket.ConnectionClosed, OSError):
                    pass
            else:
                client.role = role

    def _websocket(self, environ: dict[str, Any], start_response: Any, role: Role, key: str | None = None) -> Any:
        server = self.config.server
        with self._lock:
            full = len(self._clients) >= server.max_clients
        if full:
            self._warn.warning("full", "OSCQuery: refused a WebSocket: max_clients (%d) reached", server.max_clients)
            return _json({"error": f"server full: at most {server.max_clients} clients"}, 503)(environ, start_response)
        try:
            ws = simple_websocket.Server.accept(
                environ, ping_interval=PING_INTERVAL, max_message_size=server.max_payload
            )
        except Exception as err:  # a malformed handshake, whatever the library calls it
            self._warn.warning("handshake", "OSCQuery: WebSocket handshake failed: %s", err)
            return _json({"error": "bad WebSocket handshake"}, 400)(environ, start_response)
        # Reads wait in a selector for the pings, so this bounds only a send that cannot proceed.
        ws.sock.settimeout(SEND_TIMEOUT)
        # A frame is a few dozen bytes: sent at once, not held back by Nagle's
        # algorithm until the client acknowledges the previous one.
        ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ws.sock = WholeFrames(ws.sock)
        peer = f"{environ.get('REMOTE_ADDR', '')}:{environ.get('REMOTE_PORT', '')}"
        client = Client(f"ws{next(self._ids)}", ws, role, peer, key, unmapped(environ.get("REMOTE_ADDR", "")))
        with self._lock:
            self._clients[client.ident] = client
        self._workers.spawn(client.write_loop, f"oscquery-{client.ident}")
        log.info("OSCQuery: WebSocket client %s connected from %s", client.ident, peer)
        try:
            self._read_loop(client)
        finally:
            client.close()
            with self._lock:
                self._clients.pop(client.ident, None)
                self._gone = (self._gone[0] + client.sent, self._gone[1] + client.coalesced)
                for path in client.paths:
                    listeners = self._listeners.get(path, [])
                    if client in listeners:
                        listeners.remove(client)
            log.info("OSCQuery: WebSocket client %s left", client.ident)
        # The connection now belongs to the WebSocket, which has closed it:
        # tell Werkzeug that there is no HTTP response to write.
        raise ConnectionError("WebSocket closed")

    def _read_loop(self, client: Client) -> None:
        while True:
            try:
                message = client.ws.receive()
            except simple_websocket.ConnectionClosed:
                return
            if message is None:
                return
            if isinstance(message, str):
                self._command(client, message)
            else:
                self._receive(client, bytes(message))

    def _command(self, client: Client, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        command = message.get("COMMAND") if isinstance(message, dict) else None
        path = message.get("DATA") if isinstance(message, dict) else None
        if command not in ("LISTEN", "IGNORE") or not isinstance(path, str):
            self.drop(
                (client.ident, "command"),
                'OSCQuery %s: expected {"COMMAND": "LISTEN" or "IGNORE", "DATA": path}, got %.80r',
                client.peer,
                text,
            )
            return
        if path not in self.namespace.by_address:
            self.drop(
                (client.ident, "path"), "OSCQuery %s: %s %s: no control at this address", client.peer, command, path
            )
            return
        with self._lock:
            listeners = self._listeners.setdefault(path, [])
            if command == "LISTEN" and client not in listeners:
                listeners.append(client)
                client.paths.add(path)
            elif command == "IGNORE" and client in listeners:
                listeners.remove(client)
                client.paths.discard(path)

    def drop(self, key: object, msg: str, *args: object) -> None:
        """Count and log (rate-limited) something a client sent that was dropped."""
        self.dropped += 1
        self.warn(key, msg, *args)

    def warn(self, key: object, msg: str, *args: object) -> None:
        """Log at warning, at most once per ``key`` every few seconds."""
        self._warn.warning(key, msg, *args)


def _json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body, allow_nan=False), status=status, mimetype="application/json")
