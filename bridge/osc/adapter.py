"""OSC as a hub adapter: every change mirrored to the targets, every message in applied.

One UDP socket listens on ``[osc] listen`` and also answers ``/bridge/sync``.
Targets are UDP (:mod:`bridge.osc.udp`: a connected socket each, whose
replies are read like the listening socket's datagrams) or TCP
(:mod:`bridge.osc.tcp`: connected and reconnected, their replies read from
the connection). ``[osc] listen_tcp`` takes TCP clients, each a source and a
target. Whatever arrives is applied by :mod:`bridge.osc.inbound`, but what
a peer sends straight back as it was sent (:mod:`bridge.echoes`).

Consoles that need more than values are served per target: ``on_connect``
messages when it connects (at start for UDP), a ``keepalive`` message every
so many seconds (an X32 forgets a client that has not sent ``/xremote`` for
10 s), and with ``query_on_connect`` every control's address with no
argument, so the desk answers with its values.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from bridge.config import OscConfig
from bridge.echoes import Echoes, came_from
from bridge.errors import BridgeError
from bridge.flow import Workers
from bridge.hub import Hub, Reshaped
from bridge.logs import LogLimiter
from bridge.looks import Looks
from bridge.model import Change
from bridge.monitor import IDLE
from bridge.net import unmapped
from bridge.osc.arrival import Clock
from bridge.osc.codec import encode
from bridge.osc.crossed import Crossed
from bridge.osc.hello import asked_at, asking, greeting, message, owed
from bridge.osc.inbound import SYNC_ADDRESS, Command, Inbound, Source
from bridge.osc.listen_tcp import TcpListener
from bridge.osc.sync import PER_SECOND, BadSync, SyncGate, destination, route
from bridge.osc.tcp import Event, Stream, TcpTarget
from bridge.osc.udp import UdpTarget, answering
from bridge.osc.udpsock import REFUSALS, Own, listening, refusals, send_from, sent

log = logging.getLogger(__name__)

RESOLVE_INTERVAL = 1.0
_MAX_DATAGRAM = 65535
RECEIVE_BUFFER = 4 * 1024 * 1024
#: At most this many queued datagrams are applied as one batch.
DRAIN_LIMIT = 1024

Target = UdpTarget | TcpTarget


class OscAdapter:
    """python-osc for decoding and encoding; plain sockets for transport."""

    name = "osc"
    monitor = IDLE  # the bridge's (bridge.monitor): one check per message while no drawer is open

    def __init__(
        self,
        hub: Hub,
        config: OscConfig,
        commands: Mapping[str, Command] | None = None,
        looks: Looks | None = None,
        push: Callable[[str, Any], None] | None = None,
        echoes: Echoes | None = None,
    ) -> None:
        self.hub = hub
        self.config = config
        self.push = push
        #: What went to each peer lately (its host, the bytes): it coming back is an echo, not news.
        #: The bridge's, shared with OSCQuery: a client of it may answer over UDP.
        self.echoes = echoes or Echoes()
        self.inbound = Inbound(hub, config.allow, commands or {}, self._sync, looks, self.echoes)
        self._targets: list[Target] = [
            TcpTarget(t, self._stream_in, self._hello) if t.transport == "tcp" else UdpTarget(t) for t in config.targets
        ]
        self._udp = [t for t in self._targets if isinstance(t, UdpTarget)]
        self._prefixed = [t for t in self._udp if t.config.prefix]
        self._asking = [t for t in self._udp if t.config.answer_within]  # (whether they answer is watched)
        self.listener: TcpListener | None = None
        if config.listen_tcp is not None:
            host, port = config.listen_tcp
            self.listener = TcpListener(host, port, config.listen_tcp_framing, self._stream_in, self.inbound.allowed)
        self._sock: socket.socket | None = None
        self._own: Own | None = None  # tells the listening socket's own datagrams
        self._workers = Workers()
        self._states: list[tuple[str, str | None]] = []
        self._syncs = SyncGate()
        self._said = LogLimiter(log, interval=5.0)
        self._asked = asked_at(hub.controls)  # where the desks are asked, by control (see reshape)
        self.crossed = Crossed()  # (a change from a peer that goes back to it once)

    # -- life cycle ------------------------------------------------------------
    def start(self) -> None:
        """Bind the listening sockets, say hello to the targets and start the threads."""
        sock = self._sock = listening(self.config.listen_host, self.config.listen_port, RECEIVE_BUFFER)
        self._own = Own(sock)
        for udp in self._udp:
            udp.shared, udp.own, udp.late = sock, self._own, self.echoes
        if self.listener is not None:
            try:
                self.listener.start()
            except BridgeError:
                sock.close()
                raise
        for udp in self._udp:
            if udp.resolve():
                self._greet(udp)
        for target in self._targets:
            if isinstance(target, TcpTarget):
                target.start()
        self._workers.start(
            (self._receive_loop, "osc-in"), (self._resolve_loop, "osc-resolve"), (self._keepalive_loop, "osc-alive")
        )
        host, port = sock.getsockname()[:2]
        targets = ", ".join(t.config.label for t in self._targets) or "none"
        log.info("OSC listening on %s:%d; targets: %s", host, port, targets)

    def stop(self) -> None:
        self._workers.stop()
        for target in self._targets:
            if isinstance(target, TcpTarget):
                target.stop()
            else:
                target.close()
        if self.listener is not None:
            self.listener.stop()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    @property
    def port(self) -> int | None:
        """The UDP port actually bound (useful with port 0); None while it does not listen."""
        sock = self._sock
        return int(sock.getsockname()[1]) if sock is not None else None

    @property
    def sent(self) -> int:
        """Packets sent so far to the targets and the TCP clients still connected (the activity light)."""
        streams = self.listener.streams() if self.listener is not None else []
        return sum(t.sent for t in self._targets) + sum(s.sent for s in streams)

    def describe(self) -> dict[str, Any]:
        inbound = self.inbound
        described: dict[str, Any] = {
            # (the port bound: with port 0 in the config, the one the system gave)
            "listen": f"{self.config.listen_host}:{self.port or self.config.listen_port}",
            "received": inbound.received,
            "dropped": inbound.dropped,
            "refused": inbound.refused,
            "echoes": inbound.echoed,
            "targets": [t.describe() for t in self._targets],
        }
        if self.listener is not None:
            described["tcp"] = self.listener.describe()
        return described

    def owe(self, cids: list[str]) -> None:
        """Before start: values the desks may not have (a cluster's, changed while this process was away), sent
        to each after its greeting at start, not asked for (:func:`bridge.osc.hello.owed`)."""
        owed(self._targets, self.hub.controls, self.hub.values(), cids)

    def reshape(self, reshaped: Reshaped) -> None:
        """The controls changed (a reload, with this same [osc] table): new addresses in and out from now on, and
        the desks asked at those the reload added (see :mod:`bridge.osc.hello`)."""
        self.inbound.retable()
        asked, self._asked = self._asked, asked_at(self.hub.controls)
        before = set(asked)
        added = list(dict.fromkeys(address for cid, address in self._asked if (cid, address) not in before))
        for target in self._targets if added else ():
            if target.connected:
                for packet in self._hello(target, asking(target.config, self.hub.controls, target.newer(), added)):
                    target.raw(packet)

    def handle_datagrams(self, batch: list[tuple[bytes, tuple[str, int]]]) -> None:
        """Apply datagrams as if they had come in on the listening socket from these senders."""
        self.inbound.handle([(data, self._udp_source(sender)) for data, sender in batch])

    # -- out ---------------------------------------------------------------------
    def send(self, change: Change) -> None:
        """Mirror ``change`` to every target and TCP client but the one it came from."""
        source = change.origin.ident if change.origin.kind == "osc" else None
        control = change.control
        if source is None and control.id in self.inbound.naming:
            self.inbound.told(control, change.value)  # (from OSC, its look was taken as it came in)
        event: Event = None
        if control.type == "button":
            event = "fire" if control.trigger else "press"
        # Encoded once per prefix and argument type: most targets share them.
        packets: dict[tuple[str, str], bytes] = {}
        going: list[tuple[Target | Stream, bytes]] = []
        # What a peer sends is not sent back to it, unless it crossed what was sent to it (bridge.osc.crossed).
        now = time.monotonic()
        crossed = self.crossed.check(control, change.value, source, now) and event is None
        for target in self._targets:
            if source is not None and source == target.ident and not crossed:
                continue  # no echo to the peer that sent it
            form = (target.config.prefix, target.config.arg_type)
            packet = packets.get(form)
            if packet is None:
                packet = packets[form] = encode(form[0] + control.osc, control, change.value, form[1])
            going.append((target, packet))
        streams = self.listener.streams() if self.listener is not None else []
        if streams:
            packet = packets.get(("", "auto")) or encode(control.osc, control, change.value)
            going += [(stream, packet) for stream in streams if stream.ident != source or crossed]
        # Remembered before it goes: an echo may be read before the send returns (bridge.echoes).
        back_to = came_from(change.origin)
        self.echoes.sent_all([(peer := way.peer, packet, peer == back_to) for way, packet in going], now)
        for way, packet in going:
            way.put(control.id, packet, event)
            if type(way) is UdpTarget and (way.state != "ok" or way.config.answer_within):
                way.owed(control.id, now)  # (sent again once it is back, if it may have missed it: see _greet)
            if self.monitor.watching:
                if isinstance(way, Stream):
                    self.monitor.saw("osc/tcp", "out", way.ident, packet, None, control.id)
                else:
                    self.monitor.saw(f"osc/{way.config.transport}", "out", way.config.label, packet, None, control.id)

    def _hello(self, target: Target, packets: list[bytes] | None = None) -> list[bytes]:
        """What a target is sent first, whenever it connects (:func:`greeting`), or ``packets``; shown."""
        if packets is None:
            packets = greeting(target.config, self.hub.controls, target.newer())
        if self.monitor.watching:
            for packet in packets:
                self.monitor.saw(f"osc/{target.config.transport}", "out", target.config.label, packet)
        return packets

    def _greet(self, target: UdpTarget) -> None:
        """A UDP desk at start, or back: its greeting, then the values changed while it was away (not asked for)."""
        for packet in self._hello(target):
            target.raw(packet)
        missed, target.greeted = target.missed, time.monotonic()  # (kept until it is known to have them)
        values = self.hub.values()
        for cid in missed & values.keys():
            control = self.hub.controls[cid]
            if not control.trigger:  # (a GO made while it was away is not fired late)
                config = target.config
                target.put(cid, encode(config.prefix + control.osc, control, values[cid], config.arg_type))

    def _keepalive_loop(self) -> None:
        due = {id(t): time.monotonic() + t.config.every for t in self._targets if t.config.keepalive}
        while not self._workers.stopping.is_set():
            now = time.monotonic()
            for target in self._targets:
                calls = target.config.keepalive
                if not calls or due[id(target)] > now:
                    continue
                due[id(target)] = now + target.config.every
                if target.connected:
                    for call in calls:
                        packet = message(call, target.config.prefix)
                        target.raw(packet)
                        if self.monitor.watching:
                            self.monitor.saw(f"osc/{target.config.transport}", "out", target.config.label, packet)
            for udp in self._asking:
                udp.check_answers(now)
            self._publish()
            wait = min((when - time.monotonic() for when in due.values()), default=RESOLVE_INTERVAL)
            self._workers.wait(max(0.01, min(wait, RESOLVE_INTERVAL)))

    def _publish(self) -> None:
        """Tell the pages when a target's state changed (connected, down...)."""
        states = [(t.state, t.error) for t in self._targets]
        if states == self._states or self.push is None:
            return
        self._states = states
        self.push("osc status", {"targets": [_status(t) for t in self._targets]})

    def _resolve_loop(self) -> None:
        while not self._workers.wait(RESOLVE_INTERVAL):
            for target in self._udp:
                if not target.connected:
                    if target.resolve():
                        self._greet(target)
                elif target.reached(time.monotonic()):
                    target.missed.clear()  # (its greeting and what it missed went, and nothing refused them)
                elif target.recovered(time.monotonic()):  # (the pages are told by _publish)
                    # A desk that came up (or back) after the bridge: what it needs to hear first
                    # (an X32's /xremote, the queries for its values), as at start.
                    self._greet(target)

    # -- in ----------------------------------------------------------------------
    def _udp_source(self, sender: tuple[str, int]) -> Source:
        sock = self._sock
        host = unmapped(sender[0])  # an IPv4 peer of a dual-stack socket: named as the targets name it

        def reply(packet: bytes) -> None:
            if sock is not None:
                sent(sock, lambda: send_from(sock, packet, sender))  # (a sync on a slow link: each waits its turn)

        prefix = ""
        if self._prefixed:  # a desk under a prefix may answer to the listen port: known by its address
            prefix = next((t.config.prefix for t in self._prefixed if t.ip == host), "")
        own = self._own is not None and self._own(host, sender[1])
        return Source(f"{host}:{sender[1]}", host, reply, prefix, own)

    def _stream_in(self, packets: list[bytes], stream: Stream) -> None:
        def reply(packet: bytes) -> None:
            # The same message asked for again before it went out is sent once (controls may share an
            # address: each has its own message).
            stream.put(("reply", packet), packet)

        source = Source(stream.ident, stream.host, reply, stream.prefix)
        try:
            self.inbound.handle([(packet, source) for packet in packets])
        except Exception:  # the reader must survive anything a packet does
            self.inbound.dropped += len(packets)
            log.exception("OSC packets from %s crashed their handler; dropped", stream.ident)

    def _receive_loop(self) -> None:
        sock = self._sock
        assert sock is not None  # noqa: S101
        while not self._workers.stopping.is_set():
            # Wait with a timeout so that stop() is noticed, then take whatever
            # has arrived: a burst is applied as one batch in which the latest
            # value per control wins. Targets' sockets bring their replies.
            replying = {t.sock: t for t in self._udp if t.sock is not None}
            ready, _, _ = select.select([sock, *replying], [], [], 0.25)
            if not ready:
                continue
            batch: list[tuple[bytes, Source]] = []
            clock = Clock()  # (when each came: an echo is known by when it arrived, not when it was read)
            if sock in ready:
                self._drain(sock, batch, clock)
            for ready_sock in ready:
                target = replying.get(ready_sock)
                if target is not None:
                    self._drain_target(target, batch, clock)
            if not batch:
                continue
            try:
                self.inbound.handle(batch, clock.arrivals)
            except Exception:  # the listener must survive anything a datagram does
                self.inbound.dropped += len(batch)
                log.exception("OSC datagrams crashed their handler; dropped")

    def _drain(self, sock: socket.socket, batch: list[tuple[bytes, Source]], clock: Clock) -> None:
        self._refused(sock)  # refusals wake the socket too, and stay until read (it would spin)
        while len(batch) < DRAIN_LIMIT:
            try:
                data, sender = clock.receive(sock, _MAX_DATAGRAM)
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno in REFUSALS:
                    self._refused(sock)  # a datagram sent from here was refused: which target's
                    continue
                if not self._workers.stopping.is_set():
                    self.inbound.drop(("recv", err.errno), "OSC receive error: %s", err)
                return
            source = self._udp_source((str(sender[0]), int(sender[1])))
            batch.append((data, source))
            if self._asking and not source.own:
                self._answered(source.host, int(sender[1]), data)

    def _answered(self, host: str, port: int, data: bytes) -> None:
        """A datagram that may be a UDP target's answer (``answer_within``: see :func:`answering`); a desk
        back is greeted."""
        now = time.monotonic()
        for target in answering(self._udp, self._asking, host, port, data):
            if target.answered(now):
                self._greet(target)

    def _refused(self, sock: socket.socket) -> None:
        """The refusals in the listening socket's error queue, each told to the target it was sent to."""
        for host, port, err in refusals(sock):
            for target in self._udp:
                if target.address is not None and target.ip == host and target.config.port == port:
                    target.failed(err)

    def _drain_target(self, target: UdpTarget, batch: list[tuple[bytes, Source]], clock: Clock) -> None:
        sock = target.sock
        if sock is None:
            return
        source = Source(target.ident, target.ip or "", target.raw, target.config.prefix)
        while len(batch) < DRAIN_LIMIT:  # a burst of answers is one batch, as on the listening socket
            try:
                data, _sender = clock.receive(sock, _MAX_DATAGRAM, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return  # nothing (more) there
            except OSError as err:
                if err.errno in REFUSALS:
                    target.failed(err)  # the ICMP "unreachable" of an earlier send
                return  # (or its socket closed under it: a reload, the end)
            batch.append((data, source))
            if target.config.answer_within and target.answers(data) and target.answered(time.monotonic()):
                self._greet(target)

    def _sync(self, args: list[object], source: Source) -> None:
        """``/bridge/sync``: every current value to the sender, or to ``"host:port"`` (UDP)."""
        send, peer = source.reply, source.ident
        prefix, arg_type = "", "auto"
        try:
            dest = destination(args)
            host = source.host if dest is None else dest[0]
            if not self._syncs.admit(host):  # per host, before any name is looked up: a new port is no new budget
                raise BadSync(f"more than {PER_SECOND:g} a second to {host}; dropped")
            if dest is not None:
                targets = {n for t in self._udp for n in (t.ip, t.config.host) if n}
                send = self._udp_source(route(self._sock, dest, source.host, targets)).reply
                peer = f"{dest[0]}:{dest[1]}"
                # The target named as in the config ("localhost:9000") or by its address: its prefix and type.
                target = next(
                    (t for t in self._udp if t.config.port == dest[1] and dest[0] in (t.ip, t.config.host)), None
                )
                if target is not None:
                    prefix, arg_type = target.config.prefix, target.config.arg_type
        except BadSync as err:
            self.inbound.drop((SYNC_ADDRESS, str(err)), "OSC %s from %s: %s", SYNC_ADDRESS, source.ident, err)
            return
        values = self.hub.values()
        self._said.info(host, "OSC %s from %s: sending %d values to %s", SYNC_ADDRESS, source.ident, len(values), peer)
        for cid, value in values.items():
            control = self.hub.controls[cid]
            if control.trigger:
                continue  # an event, not a state: never replayed
            try:
                packet = encode(prefix + control.osc, control, value, arg_type)
                send(packet)
                if self.monitor.watching:
                    transport = "osc/tcp" if peer.startswith("tcp:") else "osc/udp"
                    self.monitor.saw(transport, "out", peer, packet, None, cid)
            except OSError as err:
                self.inbound.drop((SYNC_ADDRESS, "send"), "OSC sync to %s failed: %s", peer, err)
                return


def _status(target: Target) -> dict[str, Any]:
    config = target.config
    return {"address": config.label, "transport": config.transport, "state": target.state, "error": target.error}
