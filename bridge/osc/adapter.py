"""OSC over UDP: every change mirrored to the targets, every message in applied.

One UDP socket listens on ``[osc] listen`` and also sends the replies to
``/bridge/sync``. Each target has a connected socket of its own, so that the
kernel tells us when nothing listens there (ICMP port unreachable) and one
broken target never delays another. Host names are resolved off the send
path, by a thread that retries every second until they resolve.
"""

from __future__ import annotations

import itertools
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any

from pythonosc.osc_message import OscMessage

from bridge.config import OscConfig, OscTarget
from bridge.errors import BridgeError, InvalidValue, MalformedPacket, UnknownControl
from bridge.flow import Latest, Workers
from bridge.hub import Hub
from bridge.logs import LogLimiter
from bridge.looks import Looks
from bridge.model import Change, Origin
from bridge.osc.codec import address_table, arguments, controls_at, decode, encode, values_for
from bridge.validation import normalize

log = logging.getLogger(__name__)

SYNC_ADDRESS = "/bridge/sync"
RESOLVE_INTERVAL = 1.0
#: A target that refused nothing for this long is reported as reachable again.
RECOVERY_QUIET = 5.0
_MAX_DATAGRAM = 65535
#: What a datagram batch files a change under: the control, or (control, press) for a button.
Pending = str | tuple[str, int]
RECEIVE_BUFFER = 4 * 1024 * 1024
#: At most this many queued datagrams are applied as one batch.
DRAIN_LIMIT = 1024


@dataclass
class _Target:
    config: OscTarget
    sock: socket.socket | None = None
    ip: str | None = None
    state: str = "resolving"  # resolving | ok | unresolved | unreachable
    last_error: float = 0.0
    sent: int = 0
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def describe(self) -> dict[str, Any]:
        return {
            "address": self.config.label,
            "ip": self.ip,
            "state": self.state,
            "sent": self.sent,
            "errors": self.errors,
        }


class OscAdapter:
    """python-osc for decoding and encoding; plain UDP sockets for transport."""

    name = "osc"

    def __init__(
        self,
        hub: Hub,
        config: OscConfig,
        commands: Mapping[str, Callable[[list[object], str], None]] | None = None,
        looks: Looks | None = None,
    ) -> None:
        self.hub = hub
        self.config = config
        # More of the bridge's own /bridge/... addresses (scenes): address -> handler(args, peer).
        self.commands = dict(commands or {})
        self.by_address = address_table(hub.controls.values())
        # Where the desk says what a control looks like: address -> the controls whose label or colour it sets.
        self.looks = looks
        self.label_from = address_table(hub.controls.values(), lambda c: c.label_from)
        self.color_from = address_table(hub.controls.values(), lambda c: c.color_from.address if c.color_from else None)
        self._presses = itertools.count()
        self._targets = [_Target(t) for t in config.targets]
        self._warn = LogLimiter(log, interval=5.0)
        self._sock: socket.socket | None = None
        self._workers = Workers()
        self.received = 0
        self.dropped = 0
        self.refused = 0

    # -- life cycle ------------------------------------------------------------
    def start(self) -> None:
        """Bind the listening socket and start the receive and resolve threads."""
        family = socket.AF_INET6 if ":" in self.config.listen_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        # Room for a burst (a desk recalling a cue, a fast fader) while a change is being fanned out.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        try:
            sock.bind((self.config.listen_host, self.config.listen_port))
        except OSError as err:
            sock.close()
            raise BridgeError(
                f"cannot listen for OSC on {self.config.listen_host}:{self.config.listen_port}: "
                f"{err.strerror} (change [osc] listen)"
            ) from err
        sock.setblocking(False)
        self._sock = sock
        for target in self._targets:
            self._resolve(target)
        self._workers.start((self._receive_loop, "osc-in"), (self._resolve_loop, "osc-resolve"))
        host, port = sock.getsockname()[:2]
        targets = ", ".join(t.config.label for t in self._targets) or "none"
        log.info("OSC listening on %s:%d; targets: %s", host, port, targets)

    def stop(self) -> None:
        self._workers.stop()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for target in self._targets:
            with target.lock:
                if target.sock is not None:
                    target.sock.close()
                    target.sock = None

    @property
    def port(self) -> int:
        """The UDP port actually bound (useful with port 0)."""
        assert self._sock is not None  # noqa: S101
        return int(self._sock.getsockname()[1])

    def describe(self) -> dict[str, Any]:
        return {
            "listen": f"{self.config.listen_host}:{self.config.listen_port}",
            "received": self.received,
            "dropped": self.dropped,
            "refused": self.refused,
            "targets": [t.describe() for t in self._targets],
        }

    # -- out ---------------------------------------------------------------------
    def send(self, change: Change) -> None:
        """Mirror ``change`` to every target but the exact host:port it came from."""
        source = change.origin.ident if change.origin.kind == "osc" else None
        for target in self._targets:
            if source is not None and source == f"{target.ip}:{target.config.port}":
                continue  # no echo to the peer that sent it
            address = target.config.prefix + change.control.osc
            self._send_to(target, encode(address, change.control, change.value, target.config.arg_type))

    def _send_to(self, target: _Target, payload: bytes) -> None:
        with target.lock:
            sock = target.sock
            if sock is None:
                return  # not resolved yet; reported by the resolver
            try:
                sock.send(payload)
            except OSError as err:
                target.errors += 1
                target.last_error = time.monotonic()
                if target.state != "unreachable":
                    target.state = "unreachable"
                    log.warning(
                        "OSC target %s (%s) unreachable: %s; still sending, other targets unaffected",
                        target.config.label,
                        target.ip,
                        err.strerror or err,
                    )
                return
            target.sent += 1
            if target.state == "unreachable" and time.monotonic() - target.last_error > RECOVERY_QUIET:
                target.state = "ok"
                log.info("OSC target %s reachable again", target.config.label)

    def _resolve(self, target: _Target) -> None:
        host, port = target.config.host, target.config.port
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as err:
            if target.state != "unresolved":
                target.state = "unresolved"
                log.warning(
                    "OSC target %s: cannot resolve %r (%s); retrying every second", target.config.label, host, err
                )
            return
        family, _, _, _, sockaddr = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.connect(sockaddr)
        except OSError as err:
            sock.close()
            if target.state != "unreachable":
                target.state = "unreachable"
                log.warning("OSC target %s: %s; retrying every second", target.config.label, err.strerror)
            return
        with target.lock:
            target.sock = sock
            target.ip = str(sockaddr[0])
            if target.state == "unresolved":
                log.info("OSC target %s resolved to %s", target.config.label, target.ip)
            target.state = "ok"

    def _resolve_loop(self) -> None:
        while not self._workers.wait(RESOLVE_INTERVAL):
            for target in self._targets:
                if target.sock is None:
                    self._resolve(target)

    # -- in ----------------------------------------------------------------------
    def _receive_loop(self) -> None:
        sock = self._sock
        assert sock is not None  # noqa: S101
        while not self._workers.stopping.is_set():
            # Wait with a timeout so that stop() is noticed, then take whatever
            # has arrived: a burst is applied as one batch in which the latest
            # value per control wins.
            ready, _, _ = select.select([sock], [], [], 0.25)
            if not ready:
                continue
            batch: list[tuple[bytes, Any]] = []
            while len(batch) < DRAIN_LIMIT:
                try:
                    batch.append(sock.recvfrom(_MAX_DATAGRAM))
                except BlockingIOError:
                    break
                except OSError as err:
                    if self._workers.stopping.is_set():
                        return
                    self._warn.warning(("recv", err.errno), "OSC receive error: %s", err)
                    break
            if not batch:
                continue
            self.received += len(batch)
            try:
                self.handle_datagrams([(data, (str(s[0]), int(s[1]))) for data, s in batch])
            except Exception:  # the listener must survive anything a datagram does
                self.dropped += len(batch)
                log.exception("OSC datagrams crashed their handler; dropped")

    def handle_datagrams(self, batch: list[tuple[bytes, tuple[str, int]]]) -> None:
        """Check, unpack and apply datagrams in order; the latest value per control wins."""
        pending: Latest[Pending, tuple[object, Origin, str]] = Latest()
        for data, sender in batch:
            peer = f"{sender[0]}:{sender[1]}"
            if self.config.allow and not self._allowed(sender[0]):
                self.refused += 1
                self._warn.warning(("refused", sender[0]), "OSC from %s: source not in [osc] allow; dropped", peer)
                continue
            try:
                found = decode(data)
            except MalformedPacket as err:
                self._drop(("malformed", sender[0]), "OSC from %s: malformed packet dropped (%s)", peer, err)
                continue
            for message in found:
                if message.address == SYNC_ADDRESS:
                    self._apply_pending(pending)  # the sync reports what came before it
                    self._sync(arguments(message), sender, peer)
                elif message.address in self.commands:
                    self._apply_pending(pending)  # e.g. a scene saved after the values before it
                    self._command(message, peer)
                else:
                    self._collect(message, peer, pending)
        self._apply_pending(pending)

    def _allowed(self, host: str) -> bool:
        try:
            address = ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.config.allow)

    def _collect(self, message: OscMessage, peer: str, pending: Latest[Pending, tuple[object, Origin, str]]) -> None:
        address = message.address
        args = arguments(message)
        try:
            looked = self._look(address, args)
            found, problems = values_for(address, args, self.by_address)
        except MalformedPacket as err:
            self._drop((address, "pattern"), "OSC %s from %s: %s", address, peer, err)
            return
        if looked and not found:
            return  # a name or colour from the desk, and no value here
        for reason in problems:
            self._drop((address, reason), "OSC %s from %s: %s; dropped", address, peer, reason)
        origin = Origin("osc", peer)
        for control, raw in found:
            try:
                normalize(control, raw)
            except InvalidValue as err:
                self._drop((address, err.reason), "OSC %s from %s: %s; dropped", address, peer, err.reason)
                continue
            # The latest per control, in order; every press and release of a button.
            key: Pending = (control.id, next(self._presses)) if control.type == "button" else control.id
            pending.put(key, (raw, origin, address))

    def _look(self, address: str, args: list[object]) -> bool:
        """Apply a label or colour the desk sent; True when ``address`` is one (never mirrored out)."""
        if self.looks is None or not args:
            return False
        arg = args[0]
        labelled = controls_at(address, self.label_from)
        for control in labelled:
            self.looks.set(control.id, label=arg if isinstance(arg, str) else _shown(arg))
        coloured = controls_at(address, self.color_from)
        for control in coloured:
            assert control.color_from is not None  # noqa: S101 - the table holds only these
            color = control.color_from.color(arg)
            if color is not None:
                self.looks.set(control.id, color=color)
        return bool(labelled or coloured)

    def _apply_pending(self, pending: Latest[Pending, tuple[object, Origin, str]]) -> None:
        for key, (raw, origin, address) in pending.take().items():
            cid = key if isinstance(key, str) else key[0]
            try:
                self.hub.set(cid, raw, origin)
            except (InvalidValue, UnknownControl) as err:
                self._drop((address, str(err)), "OSC %s from %s: %s; dropped", address, origin.ident, err)

    def _sync(self, args: list[object], sender: tuple[str, int], peer: str) -> None:
        dest: tuple[str, int] = sender
        if args:
            text = args[0]
            host, _, port = text.rpartition(":") if isinstance(text, str) else ("", "", "")
            if len(args) != 1 or not host or not port.isdigit() or not 0 < int(port) < 65536:
                self._drop(
                    (SYNC_ADDRESS, "args"),
                    'OSC %s from %s: expected no argument or one "host:port"',
                    SYNC_ADDRESS,
                    peer,
                )
                return
            dest = (host.strip("[]"), int(port))
        target = next((t for t in self._targets if (t.ip, t.config.port) == dest), None)
        prefix, arg_type = (target.config.prefix, target.config.arg_type) if target else ("", "auto")
        sock = self._sock
        if sock is None:
            return
        values = self.hub.values()
        log.info("OSC %s from %s: sending %d values to %s:%d", SYNC_ADDRESS, peer, len(values), dest[0], dest[1])
        for cid, value in values.items():
            control = self.hub.controls[cid]
            if control.trigger:
                continue  # an event, not a state: never replayed
            try:
                sock.sendto(encode(prefix + control.osc, control, value, arg_type), dest)
            except OSError as err:
                self._drop((SYNC_ADDRESS, "send"), "OSC sync to %s:%d failed: %s", dest[0], dest[1], err)
                return

    def _command(self, message: OscMessage, peer: str) -> None:
        try:
            self.commands[message.address](arguments(message), peer)
        except BridgeError as err:
            self._drop((message.address, "command"), "OSC %s from %s: %s; dropped", message.address, peer, err)

    def _drop(self, key: object, msg: str, *args: object) -> None:
        self.dropped += 1
        self._warn.warning(key, msg, *args)


def _shown(arg: object) -> str:
    """A desk's non-text argument as a label: 3 not 3.0."""
    if isinstance(arg, float) and arg.is_integer():
        return str(int(arg))
    return str(arg)
