"""OSC targets over UDP: sent from the listening port, resolved off the send path.

What goes to a target is sent from the bridge's listening socket, so it
comes from ``[osc] listen``, as OSC apps that both send and listen do. A
peer that mirrors what it is sent, except back to where it came from, then
sees that it came from the very address it sends to: two bridges aimed at
each other pass a change on once, instead of back and forth for ever (a GO
pressed once fired thousands of times a second). A console that answers
the port a query came from (an X32) answers the listening port.

The kernel tells when nothing listens at a target (ICMP port unreachable)
through the listening socket's error queue (``IP_RECVERR``): the adapter
reads it and names the target (:meth:`UdpTarget.failed`). One broken target
never delays another: a UDP send never waits. What a full link cannot take
now waits for it (:meth:`UdpTarget.put`), sent by a writer of that target's
own as room comes.

A target may be a broadcast address (``192.168.1.255``: every phone on the
network hears it): the socket that sends to it may then broadcast
(``SO_BROADCAST``), and the bridge says so at start. The bridge then hears its
own broadcast when the target's port is its own: datagrams from its own
address and port are known (:class:`Own`) and dropped, or a GO would go
round for ever.

Where the listening address cannot reach the target (a loopback ``listen``, a target on the LAN; an IPv4
``listen``, an IPv6 target), the target gets a socket of its own, connected to it, on a port of its own:
its refusals and its answers come on that socket. Host names are resolved by the adapter's resolver thread.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from typing import Any

from bridge.config import OscTarget
from bridge.echoes import Echoes
from bridge.flow import Latest
from bridge.logs import LogLimiter
from bridge.net import unmapped
from bridge.osc.arrival import stamp
from bridge.osc.fire import Event, event_key, fire_deadline, said, said_late
from bridge.osc.udpsock import BUSY, REFUSALS, Own, connect, send_from, sent

log = logging.getLogger(__name__)

#: An unreachable target is reachable again once datagrams went to it this long (seconds) and
#: none was refused. A UDP send succeeds whether anything listens or not: only the ICMP "port
#: unreachable" that comes back tells, a moment later, so one send that went out proves nothing.
RECOVERY_QUIET = 5.0
#: The states of a target that is asked to answer (``keepalive.answer_within``) and has not: no GO goes to it.
QUIET = ("waiting", "silent")
#: The states of a target that does not get what is sent (nowhere to send it yet, nothing listens, or it
#: stopped answering): what changed meanwhile goes to it again when it is back.
AWAY = ("resolving", "unresolved", "unreachable", "silent")
#: With ``answer_within``, a change sent this long (seconds) before one of its answers reached it: forgotten.
REACHED = 0.5
#: A first answer this long (seconds) after the greeting is a desk that came up meanwhile: it is greeted again.
LATE_ANSWER = 1.0
#: The receive buffer of a target's own socket (the listening socket's size: answers come in bursts).
RECEIVE_BUFFER = 4 * 1024 * 1024


class UdpTarget:
    """One UDP target: its socket, its state and its counters."""

    def __init__(self, config: OscTarget) -> None:
        self.config = config
        #: Its own socket, connected to it: only when the listening socket cannot reach it.
        self.sock: socket.socket | None = None
        #: The listening socket, and the address to send it to there (once resolved).
        self.shared: socket.socket | None = None
        self.address: Any = None
        self.ip: str | None = None
        self.state = "resolving"  # resolving | ok | unresolved | unreachable | waiting | silent
        self.broadcast = False  # its address is a broadcast one (every host on that network hears it)
        self.probed = 0.0  # while unreachable: when the first datagram since the last refusal went out
        self.sent = self.errors = 0
        self._warn = LogLimiter(log)  # datagrams lost, said once a while per reason
        #: What waits for room while the link is full (see :meth:`put`; under :attr:`lock`), and whether any does.
        self.backlog: Latest[object, bytes] = Latest()
        self._behind = False
        self.lock = threading.Lock()
        #: The port its datagrams go out from, once resolved.
        self.local_port: int | None = None
        #: Tells the listening socket's own address (:class:`Own`), once it listens.
        self.own: Own | None = None
        #: The echo memory, told of each datagram that left late, from the backlog: its echo comes back from
        #: then (a GO held on a full link and echoed by its desk fired twice: its echo came after the window).
        self.late: Echoes | None = None
        #: With ``keepalive.answer_within``: when it last sent anything, and why it is taken for silent.
        self.heard = 0.0
        self.error: str | None = None
        #: The controls changed while it was away (see :data:`AWAY`), or, when it is asked to answer, since its
        #: last answers (it may have died unseen meanwhile), and when: sent again, not asked for, when it is back.
        self.missed: dict[str, float] = {}
        self._forgot = 0.0  # when what reached it was last forgotten from missed
        self.greeted = 0.0  # when it was last greeted (and sent what it missed)

    @property
    def ident(self) -> str:
        """The ``host:port`` its datagrams come from: a change from there is not sent back."""
        return f"{self.ip}:{self.config.port}"

    connected = property(lambda self: self.sock is not None or self.address is not None)

    @property
    def peer(self) -> str | None:
        """The address its datagrams go to (None until resolved)."""
        return self.ip

    def describe(self) -> dict[str, Any]:
        return {
            "address": self.config.label,
            "transport": "udp",
            "ip": self.ip,
            "state": self.state,
            "sent": self.sent,
            "errors": self.errors,
            "from_port": self.local_port,
            "broadcast": self.broadcast,
            "waiting": len(self.backlog),
            "error": self.error,
        }

    def put(self, key: object, packet: bytes, event: Event = None) -> None:
        """Send ``packet`` (a value or an ``event`` of control ``key``) now; a target not resolved yet
        gets nothing. While its link is full (a slow Wi-Fi) it waits in :attr:`backlog`, the latest
        per control and each press of a button, and a writer of the target's own sends it as room
        comes: the fan-out, the pages and the other targets never wait for this one. A trigger's press
        goes only to a target that answers, with ``answer_within`` (a frozen desk's socket takes it)."""
        if event == "fire" and self.state in QUIET:
            label, state = self.config.label, self.state
            said.warning(("fire", self.ident), "OSC target %s is %s: a trigger press not sent", label, state)
            return
        self._send(key if event is None else event_key(self.backlog, key, event), packet)

    def raw(self, packet: bytes) -> None:
        """A message that is not a value (a greeting, a keepalive)."""
        self._send(("raw", packet), packet)

    def _send(self, key: object, packet: bytes) -> None:
        with self.lock:
            if self._behind:
                self.backlog.put(key, packet)
                return
            try:
                if not self._now(packet):
                    return  # not resolved yet; reported by the resolver
            except OSError as err:
                if err.errno in BUSY:
                    self._behind = True
                    self.backlog.put(key, packet)
                    threading.Thread(target=self._catch_up, name=f"osc-behind-{self.config.label}", daemon=True).start()
                else:
                    self._not_sent(err)
                return
            self._went()

    def _now(self, packet: bytes) -> bool:
        """One send, without waiting; False when there is nowhere to send yet."""
        sock, address, shared = self.sock, self.address, self.shared
        if sock is not None:
            sock.send(packet)
        elif address is not None and shared is not None:
            send_from(shared, packet, address)
        else:
            return False
        return True

    def _catch_up(self) -> None:
        """The writer of a target whose link is full: sends the backlog as room comes, then is done."""
        while True:
            with self.lock:
                waiting = self.backlog.take()
                if not waiting:
                    self._behind = False
                    return
            for key, packet in waiting.items():
                self._when_room(packet, key)

    def _when_room(self, packet: bytes, key: object = None) -> None:
        """Send ``packet`` once there is room, however long the link stays full (nobody waits for it
        but this target's writer, and the backlog keeps only the latest per control meanwhile); a trigger's
        press only while it is in time (:func:`bridge.osc.fire.fire_deadline`)."""
        until = fire_deadline(key)
        while True:
            sock = self.sock or self.shared
            if sock is None:
                return  # closed meanwhile (a reload)
            try:
                went = sent(sock, lambda: self._late(packet, until))
            except TimeoutError:
                said_late(self.config.label, key)
                return
            except ValueError:
                return  # its socket closed while it waited (a reload)
            except OSError as err:
                if err.errno in BUSY:
                    continue  # still full: wait again
                with self.lock:
                    self._not_sent(err)
                return
            if went:
                with self.lock:
                    self._went()
            return

    def _late(self, packet: bytes, until: float | None = None) -> bool:
        if until is not None and time.monotonic() > until:
            raise TimeoutError  # a GO held on the full link past its time: not sent late
        if self.late is not None:
            # Before the send, as every sending is (its echo may be read first).
            self.late.sent(self.peer or "", packet, time.monotonic())
        return self._now(packet)

    def _went(self) -> None:
        self.sent += 1
        if self.state == "unreachable" and not self.probed:
            self.probed = time.monotonic()

    def _not_sent(self, err: OSError) -> None:
        if err.errno in REFUSALS:
            self.failed(err)
        else:
            self.lost(err)

    def recovered(self, now: float) -> bool:
        """Looked at every second: True when an unreachable target just became reachable again
        (its datagrams went out for :data:`RECOVERY_QUIET` seconds, and none was refused)."""
        with self.lock:
            if self.state != "unreachable" or not self.probed or now - self.probed < RECOVERY_QUIET:
                return False
            self.error = None
            self.state = self._answering()
            self.probed = 0.0
        log.info("OSC target %s reachable again", self.config.label)
        return True

    def newer(self) -> set[str]:
        """The controls whose newer value it may not have had (changed while it was away): not asked for."""
        return set(self.missed)

    def owed(self, cid: str, now: float) -> None:
        """A change of ``cid`` went to it: kept in :attr:`missed` while it may not get it."""
        if self.state in AWAY or (self.asks and self.state != "resolving"):
            self.missed[cid] = now

    @property
    def asks(self) -> bool:
        """Whether its answers are watched (``answer_within``; not at a broadcast address, where each host
        answers from its own)."""
        return bool(self.config.answer_within) and not self.broadcast

    def reached(self, now: float) -> bool:
        """Whether what it missed has surely reached it since its greeting (a target not asked to answer: it took
        datagrams for :data:`RECOVERY_QUIET` seconds, none refused; one asked to: see :meth:`answered`)."""
        return bool(self.missed) and not self.asks and self.state == "ok" and now - self.greeted > RECOVERY_QUIET

    def answers(self, data: bytes) -> bool:
        """Whether ``data``, come from it, is an answer (with ``keepalive.answer``, a message at that address)."""
        return not self.config.answer or _at(data, self.config.answer)

    def _answering(self) -> str:
        """Its state once it has an address: ``waiting`` for its first answer when one is asked of it."""
        if not self.asks:
            return "ok"
        self.heard, self.error = time.monotonic(), "no answer yet"
        return "waiting"

    def answered(self, now: float) -> bool:
        """It sent something (with ``keepalive.answer_within``); True when it is to be greeted again: it was
        silent until now (back from a freeze or a restart: an X32 has forgotten its ``/xremote``), or its first
        answer came late (it came up after its greeting, which went nowhere)."""
        since, self.heard = self.heard, now
        if self.state == "ok":
            if self.missed and now - self._forgot > 0.25:  # (answering all along: what went to it reached it)
                self.missed = {cid: at for cid, at in self.missed.items() if at > now - REACHED}
                self._forgot = now
            return False
        if self.state not in QUIET:
            return False  # (unreachable: back once nothing is refused for a while, see recovered; what it missed kept)
        back = self.state == "silent" or now - since > LATE_ANSWER
        self.state, self.error = "ok", None
        log.info("OSC target %s answers%s", self.config.label, " again" if back else "")
        return back

    def check_answers(self, now: float) -> None:
        """Looked at every second: with ``keepalive.answer_within``, a desk that sent nothing for that
        long is silent (a desk switched off, unplugged or frozen: UDP alone never tells)."""
        limit = self.config.answer_within
        if not self.asks or self.state not in ("ok", "waiting") or now - self.heard <= limit:
            return
        self.state, self.error = "silent", f"sent nothing back for {limit:g} s"
        log.warning(
            "OSC target %s sent nothing back for %g s: shown silent, and a trigger press is not sent to it "
            "until it answers; values still go",
            self.config.label,
            limit,
        )

    def lost(self, err: OSError) -> None:
        """A datagram could not be sent, for another reason than a refusal or a full link: it is
        counted and said (once a while per reason); the target is not taken for gone."""
        self.errors += 1
        why = err.strerror or err
        label = self.config.label
        self._warn.warning(err.errno, "OSC target %s: a message could not be sent (%s); dropped", label, why)

    def failed(self, err: OSError) -> None:
        """Sending (or reading the answer) showed that nothing listens there: ICMP port unreachable."""
        self.errors += 1
        self.probed = 0.0  # the datagrams sent since were refused (this is their answer)
        if self.state != "unreachable":
            nothing = ": nothing listens there" if err.errno == errno.ECONNREFUSED else ""
            self.state, self.error = "unreachable", f"{err.strerror or err}{nothing}"
            log.warning(
                "OSC target %s (%s) unreachable: %s; still sending, other targets unaffected",
                self.config.label,
                self.ip,
                err.strerror or err,
            )

    def resolve(self) -> bool:
        """Resolve the host and connect a socket to it; True when it has one now."""
        host, port = self.config.host, self.config.port
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as err:
            if self.state != "unresolved":
                self.state, self.error = "unresolved", f"cannot resolve {host!r}: {err}"
                log.warning(
                    "OSC target %s: cannot resolve %r (%s); retrying every second", self.config.label, host, err
                )
            return False
        # IPv4 first, when a name has both ("localhost" on a stock Debian or Ubuntu lists ::1 first):
        # OSC software mostly listens on IPv4 alone. An IPv6 target is named by its address.
        family, _, _, _, sockaddr = min(infos, key=lambda info: info[0] != socket.AF_INET)
        address, broadcast = self._through_listener(family, sockaddr)
        sock = None
        if address is None:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)  # room for a desk's burst
                stamp(sock)  # its replies' arrival, to know an echo by, from the first
                broadcast = connect(sock, sockaddr)
                # Read with the listening socket, until empty: a blocking socket under gevent would wait
                # for more instead of saying it is empty, and no OSC would come in again.
                sock.setblocking(False)
            except OSError as err:
                sock.close()
                if self.state != "unreachable":
                    self.state = "unreachable"
                    log.warning("OSC target %s: %s; retrying every second", self.config.label, err.strerror)
                return False
        with self.lock:
            self.sock, self.address = sock, address
            self.local_port = int((sock or self.shared).getsockname()[1])  # type: ignore[union-attr]
            self.ip = str(sockaddr[0])
            if self.state == "unresolved":
                log.info("OSC target %s resolved to %s", self.config.label, self.ip)
            if broadcast and self.config.answer_within and not self.broadcast:
                log.warning("OSC target %s is a broadcast address: answer_within does not apply", self.config.label)
            self.broadcast = broadcast
            self.state = self._answering()
            if not broadcast and self.own is not None and self.own(unmapped(self.ip), self.config.port):
                log.warning(
                    "OSC target %s is this bridge's own OSC input: what goes there comes straight back "
                    "and is dropped; remove it from [osc] targets",
                    self.config.label,
                )
            if broadcast:
                log.info("OSC target %s is a broadcast address: every host on its network hears it", self.config.label)
        return True

    def _through_listener(self, family: int, sockaddr: Any) -> tuple[Any, bool]:
        """Where to send it on the listening socket (None when that socket cannot reach it), and
        whether that is a broadcast address."""
        shared = self.shared
        if shared is None:
            return None, False
        host = str(shared.getsockname()[0])
        if shared.family == socket.AF_INET6 and family == socket.AF_INET:
            if host != "::" or shared.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY):
                return None, False
            family, sockaddr = socket.AF_INET6, (f"::ffff:{sockaddr[0]}", sockaddr[1], 0, 0)
        if shared.family != family:
            return None, False
        # Can a datagram from that address reach it (a loopback one cannot reach the LAN)? Asked of the
        # kernel with a socket of the same address: connecting a UDP socket sends nothing.
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((host, 0))
                broadcast = connect(probe, sockaddr)
            except OSError as err:
                log.debug("OSC target %s: not from %s (%s): a port of its own", self.config.label, host, err)
                return None, False
        if broadcast:
            shared.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        return sockaddr, broadcast

    def close(self) -> None:
        with self.lock:
            if self.sock is not None:
                self.sock.close()
                self.sock = None
            self.address = None


def answering(targets: list[UdpTarget], asking: list[UdpTarget], host: str, port: int, data: bytes) -> list[UdpTarget]:
    """Those of ``asking`` (among all the UDP ``targets``) a datagram ``data`` from ``host``:``port`` answers
    for. A target with ``keepalive.answer`` (an Eos's ``/eos/out/ping``) counts that message alone, from any
    port of its host (an Eos answers from a TX port of its own). Others count what comes from their host, or,
    where several targets share one host (programs on one machine), from their port (another target's
    datagrams kept a hung desk on the same machine "ok")."""
    found = [t for t in asking if t.config.answer and t.ip == host and t.answers(data)]
    plain = [t for t in asking if not t.config.answer and t.ip == host]
    if not plain:
        return found
    if len([t for t in targets if t.ip == host]) < 2:
        return found + plain
    by_port = [t for t in plain if t.config.port == port]
    if not by_port:
        _hint.warning(
            (host, port),
            "OSC from %s:%d counts as no target's answer: several targets share that host, and an answer counts "
            "from the target's own port there (or set keepalive.answer to the address it answers at)",
            host,
            port,
        )
    return found + by_port


def _at(data: bytes, answer: str) -> bool:
    """Whether the OSC message ``data`` is at ``answer`` or under it (a bundle is not an answer)."""
    end = data.find(b"\0")
    address = data[: end if end >= 0 else len(data)].decode("utf-8", "replace")
    return address == answer or address.startswith(answer + "/")


_hint = LogLimiter(log, interval=600.0)
