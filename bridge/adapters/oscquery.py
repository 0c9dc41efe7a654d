"""OSCQuery: the controls as a browsable OSC namespace, with live values.

Follows the OSCQuery proposal (Vidvox/OSCQueryProposal), so that software
such as ossia score, Chataigne or a VRChat tool finds every control, its
type, range and current value by itself, without anyone typing addresses.

- **HTTP** on a port of its own (OSCQuery clients expect the namespace at the
  root of their server): the URL path is the OSC path, the query string
  names one attribute (``/slider1?VALUE``), ``?HOST_INFO`` tells where OSC
  goes. Values are read from the hub at each request: there is no second
  copy of them to drift.
- **WebSocket** on the same port: ``{"COMMAND": "LISTEN", "DATA": path}``
  asks for every change of a control as a binary OSC message, ``IGNORE``
  stops it; binary OSC messages from the client set values like any OSC
  input, and are not echoed back to that client.

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
from dataclasses import dataclass, field
from typing import Any

import simple_websocket
from pythonosc.osc_message_builder import OscMessageBuilder
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from bridge.auth import COOKIE, Access, Role
from bridge.config import Config
from bridge.errors import BridgeError, InvalidValue, UnknownControl
from bridge.hub import Hub
from bridge.model import Change, Control, Origin, Value
from bridge.osc_codec import MalformedPacket, check_packet, controls_at, encode, messages, value_from_args
from bridge.ratelimit import LogLimiter

log = logging.getLogger(__name__)

#: The attributes a node may carry here, in the order they are written.
ATTRIBUTES = ("FULL_PATH", "DESCRIPTION", "ACCESS", "TYPE", "VALUE", "RANGE", "CLIPMODE", "UNIT", "CONTENTS")
#: What ``?HOST_INFO`` says this server supports. There is no config reload,
#: so the namespace never changes while the bridge runs: no PATH_* messages.
EXTENSIONS = {
    "ACCESS": True,
    "VALUE": True,
    "RANGE": True,
    "DESCRIPTION": True,
    "UNIT": True,
    "CLIPMODE": True,
    "LISTEN": True,
    "TAGS": False,
    "EXTENDED_TYPE": False,
    "CRITICAL": False,
    "OVERLOADS": False,
    "HTML": False,
    "PATH_CHANGED": False,
    "PATH_RENAMED": False,
    "PATH_ADDED": False,
    "PATH_REMOVED": False,
}
#: ACCESS: 0 a container, 1 read only (the viewer key), 3 read and write.
ACCESS = {"control": 3, "viewer": 1}
#: A silent WebSocket is pinged this often; one that does not answer by the next ping is closed.
PING_INTERVAL = 5.0
#: A client whose socket takes nothing for this long is gone (or reads nothing): it is dropped,
#: rather than holding a writer thread and a full socket buffer for as long as TCP keeps trying.
SEND_TIMEOUT = 10.0


# -- the namespace ------------------------------------------------------------------
def osc_type(control: Control) -> str:
    """The OSC type tag a control has here.

    A range is a float and a text a string, as over UDP. A toggle is an OSC
    boolean (``T``/``F``), which OSCQuery clients show as a switch; a button
    is an int 0/1 (pressed, released), as buttons send in OSC software.
    """
    return {"range": "f", "toggle": "T", "button": "i", "text": "s"}[control.type]


def json_value(control: Control, value: Value) -> float | int | bool | str:
    """A stored value as its OSCQuery ``VALUE`` item."""
    if control.type == "range":
        return float(value)
    if control.type == "toggle":
        return bool(value)
    if control.type == "button":
        return int(value)
    return str(value)


def frame(control: Control, value: Value) -> bytes:
    """The binary OSC message a listener gets for ``value``, typed as ``TYPE`` says."""
    if control.type == "toggle":
        builder = OscMessageBuilder(address=control.osc)
        builder.add_arg(bool(value))  # T or F: no data bytes
        return bytes(builder.build().dgram)
    return encode(control.osc, control, value)


@dataclass
class Node:
    """One address in the namespace: a control, a container, or both."""

    path: str
    control: Control | None = None
    children: dict[str, Node] = field(default_factory=dict)


class Namespace:
    """The tree of OSC addresses built once from the controls."""

    def __init__(self, controls: list[Control] | tuple[Control, ...], name: str) -> None:
        self.name = name
        self.root = Node("/")
        self.nodes: dict[str, Node] = {"/": self.root}
        for control in controls:
            node = self.root
            for part in control.osc.strip("/").split("/"):
                child = node.children.get(part)
                if child is None:
                    path = ("" if node.path == "/" else node.path) + "/" + part
                    child = node.children[part] = self.nodes[path] = Node(path)
                node = child
            node.control = control

    def find(self, path: str) -> Node | None:
        """The node at ``path`` (a trailing slash is ignored), or None."""
        if path != "/":
            path = path.rstrip("/") or "/"
        return self.nodes.get(path)

    def describe(self, node: Node, values: dict[str, Value], role: Role) -> dict[str, Any]:
        """The node's JSON object, with its whole subtree in ``CONTENTS``."""
        out: dict[str, Any] = {"FULL_PATH": node.path}
        control = node.control
        if control is None:
            if node is self.root:
                out["DESCRIPTION"] = self.name
            out["ACCESS"] = 0
        else:
            out["DESCRIPTION"] = control.label
            out["ACCESS"] = ACCESS[role]
            out["TYPE"] = osc_type(control)
            out["VALUE"] = [json_value(control, values[control.id])]
            if control.type == "range":
                out["RANGE"] = [{"MIN": control.min, "MAX": control.max}]
                out["CLIPMODE"] = ["both"]  # out-of-range values are clamped, never refused
            elif control.type == "button":
                out["RANGE"] = [{"MIN": 0, "MAX": 1}]
            if control.unit:
                out["UNIT"] = [control.unit]
        if node.children:
            out["CONTENTS"] = {name: self.describe(child, values, role) for name, child in node.children.items()}
        return out


# -- WebSocket clients ------------------------------------------------------------------
class _Client:
    """One WebSocket client: what it listens to, and the frames waiting for it.

    The outbox holds at most one frame per path: a newer value replaces an
    older one not yet sent, so a client that cannot keep up gets the latest
    values, and the memory it can take is bounded by the number of controls.
    """

    def __init__(self, ident: str, ws: Any, role: Role, peer: str) -> None:
        self.ident = ident
        self.ws = ws
        self.role = role
        self.peer = peer
        self.paths: set[str] = set()
        self.sent = 0
        self.coalesced = 0
        self._outbox: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._closed = False

    def offer(self, path: str, data: bytes) -> None:
        """Queue ``data`` for ``path``; never blocks on the network."""
        with self._lock:
            if self._closed:
                return
            if self._outbox.pop(path, None) is not None:
                self.coalesced += 1
            self._outbox[path] = data  # re-inserted last: changes keep their order
        self._ready.set()

    @property
    def waiting(self) -> int:
        """Frames queued and not yet handed to the socket."""
        with self._lock:
            return len(self._outbox)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._outbox.clear()
        self._ready.set()

    def write_loop(self) -> None:
        """Send queued frames until the client goes away (its own thread)."""
        while True:
            self._ready.wait()
            with self._lock:
                batch, self._outbox = self._outbox, {}
                self._ready.clear()
                closed = self._closed
            if closed:
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


# -- the adapter ---------------------------------------------------------------------
class OscQueryAdapter:
    """The OSCQuery HTTP and WebSocket server, and the hub's sink toward its listeners."""

    name = "oscquery"

    def __init__(self, hub: Hub, config: Config, access: Access | None = None) -> None:
        assert config.oscquery is not None  # noqa: S101 - built only for an [oscquery] table
        self.hub = hub
        self.config = config
        self.settings = config.oscquery
        self.access = access or Access()
        self.namespace = Namespace(list(hub.controls.values()), config.discovery.name)
        self.by_address: dict[str, Control] = {c.osc: c for c in hub.controls.values()}
        self._clients: dict[str, _Client] = {}
        self._listeners: dict[str, list[_Client]] = {}  # path -> clients listening to it
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._warn = LogLimiter(log, interval=5.0)
        self.received = 0
        self.dropped = 0
        self.refused = 0
        self._gone = (0, 0)  # frames sent and coalesced by clients that have left

    @property
    def host(self) -> str:
        return self.settings.host if self.settings.host is not None else self.config.server.host

    @property
    def port(self) -> int:
        """The TCP port actually bound (useful with port 0)."""
        return self._server.server_port if self._server is not None else self.settings.port

    # -- life cycle ----------------------------------------------------------------
    def start(self) -> None:
        """Bind the port and serve on a thread of its own."""
        try:
            server = make_server(self.host, self.settings.port, self.wsgi, threaded=True)
        except OSError as err:
            raise BridgeError(
                f"cannot serve OSCQuery on {self.host}:{self.settings.port}: "
                f"{err.strerror or err} (change [oscquery] port)"
            ) from err
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="oscquery-http", daemon=True)
        self._thread.start()
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
        if self._thread is not None:
            self._thread.join(timeout=2)

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
                "received": self.received,
                "dropped": self.dropped,
                "refused": self.refused,
            }

    # -- out -----------------------------------------------------------------------
    def send(self, change: Change) -> None:
        """Offer ``change`` to the clients listening to its path, except the one it came from."""
        path = change.control.osc
        with self._lock:
            listeners = list(self._listeners.get(path, ()))
        if not listeners:
            return
        source = change.origin.ident if change.origin.kind == "oscquery" else None
        data = frame(change.control, change.value)
        for client in listeners:
            if client.ident != source:  # no echo to the client that sent it
                client.offer(path, data)

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
            return self._websocket(environ, start_response, role)
        return self._query(request, role)(environ, start_response)

    def _query(self, request: Request, role: Role) -> Response:
        attributes = [name for name in request.args if name != "key"]
        if "HOST_INFO" in attributes:
            return _json(self.host_info())  # the path is irrelevant to HOST_INFO
        node = self.namespace.find(request.path)
        if node is None:
            return _json({"error": f"no OSC node at {request.path}"}, 404)
        if not attributes:
            return _json(self.namespace.describe(node, self.hub.values(), role))
        unknown = [name for name in attributes if name not in ATTRIBUTES]
        if unknown:
            return _json({"error": f"attribute {unknown[0]} is not supported here"}, 400)
        if "VALUE" in attributes and node.control is None:
            return Response(status=204)  # a container has no value
        full = self.namespace.describe(node, self.hub.values(), role)
        return _json({name: full[name] for name in attributes if name in full})

    def host_info(self) -> dict[str, Any]:
        """What ``?HOST_INFO`` answers: who we are and where OSC and WebSocket traffic go."""
        osc = self.config.osc
        info: dict[str, Any] = {"NAME": self.config.discovery.name, "EXTENSIONS": EXTENSIONS}
        if osc is not None:
            if osc.listen_host not in ("0.0.0.0", "::", ""):  # noqa: S104
                info["OSC_IP"] = osc.listen_host  # else: the address the client reached us at
            info["OSC_PORT"] = osc.listen_port
            info["OSC_TRANSPORT"] = "UDP"
        info["WS_PORT"] = self.port
        return info

    # -- WebSocket -----------------------------------------------------------------
    def _websocket(self, environ: dict[str, Any], start_response: Any, role: Role) -> Any:
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
        client = _Client(f"ws{next(self._ids)}", ws, role, peer)
        with self._lock:
            self._clients[client.ident] = client
        writer = threading.Thread(target=client.write_loop, name=f"oscquery-{client.ident}", daemon=True)
        writer.start()
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

    def _read_loop(self, client: _Client) -> None:
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
                self._osc_in(client, bytes(message))

    def _command(self, client: _Client, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        command = message.get("COMMAND") if isinstance(message, dict) else None
        path = message.get("DATA") if isinstance(message, dict) else None
        if command not in ("LISTEN", "IGNORE") or not isinstance(path, str):
            self._drop(
                (client.ident, "command"),
                'OSCQuery %s: expected {"COMMAND": "LISTEN" or "IGNORE", "DATA": path}, got %.80r',
                client.peer,
                text,
            )
            return
        if path not in self.by_address:
            self._drop(
                (client.ident, path), "OSCQuery %s: %s %s: no control at this address", client.peer, command, path
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

    def _osc_in(self, client: _Client, data: bytes) -> None:
        self.received += 1
        if client.role != "control":
            self.refused += 1
            self._warn.warning(
                (client.ident, "viewer"), "OSCQuery %s: read-only (viewer key); OSC dropped", client.peer
            )
            return
        try:
            check_packet(data)
            found = list(messages(data))
        except (MalformedPacket, ValueError, IndexError) as err:
            self._drop((client.ident, "malformed"), "OSCQuery %s: malformed OSC dropped (%s)", client.peer, err)
            return
        except Exception as err:  # python-osc's own parse errors, whatever their class
            self._drop((client.ident, "malformed"), "OSCQuery %s: OSC not decodable, dropped (%s)", client.peer, err)
            return
        origin = Origin("oscquery", client.ident)
        for message in found:
            address = message.address
            for control in self._controls_at(address, client):
                try:
                    applied = self.hub.set(control.id, value_from_args(control, list(message.params)), origin)
                except (InvalidValue, UnknownControl) as err:
                    self._drop((address, str(err)), "OSCQuery %s: %s %s; dropped", client.peer, address, err)
                    continue
                if applied.adjusted and control.osc in client.paths:
                    # Clamped or stepped: the sender shows something else; correct it.
                    client.offer(control.osc, frame(control, applied.value))

    def _controls_at(self, address: str, client: _Client) -> list[Control]:
        try:
            controls = controls_at(address, self.by_address)
        except MalformedPacket as err:
            self._drop((address, "pattern"), "OSCQuery %s: %s: %s", client.peer, address, err)
            return []
        if not controls:
            self._drop((address, "unknown"), "OSCQuery %s: no control at %s; dropped", client.peer, address)
        return controls

    def _drop(self, key: object, msg: str, *args: object) -> None:
        self.dropped += 1
        self._warn.warning(key, msg, *args)


def presented_key(request: Request) -> str | None:
    """The key a request presents: ``?key=``, the page's cookie, or ``Authorization: Bearer``."""
    key = request.args.get("key") or request.cookies.get(COOKIE)
    if key:
        return key
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token else None


def _json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body, allow_nan=False), status=status, mimetype="application/json")
