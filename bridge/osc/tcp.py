"""OSC over TCP: targets the bridge connects to (an Eos desk, QLab), and clients that connect to it.

Every connection is a :class:`Stream`: a reader that turns the bytes into
packets (:mod:`bridge.osc.framing`) and hands them on as OSC input, and a
writer thread that sends what waits in its outbox, the latest per control
(a button's presses and releases each, up to :data:`EVENTS_MAX`): a peer
that stops reading holds up only its own writer, what waits for it stays
bounded by the number of controls, and after :data:`SEND_TIMEOUT` without
taking anything it is dropped. A stream whose peer sends garbage (bytes that
are not framed OSC) is closed and counted. A reader lets the rest of the
bridge run between two reads, so a client that streams as fast as it can
slows only itself.

A :class:`TcpTarget` connects at start and again whenever the connection
drops, backing off to :data:`RETRY_MAX`; values changed meanwhile wait in
its outbox, the latest per control, and go out once it is back, after its
``on_connect`` messages. Clients that connect (``[osc] listen_tcp``) are
accepted by :class:`bridge.osc.listen_tcp.TcpListener`.
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from bridge.config import OscTarget
from bridge.errors import MalformedPacket
from bridge.flow import Outbox, Workers
from bridge.logs import LogLimiter
from bridge.net import notice_silence, unmapped
from bridge.osc.fire import Event, event_key, in_time
from bridge.osc.framing import Deframer, Framing, frame
from bridge.osc.packets import check_packet

log = logging.getLogger(__name__)
#: A line per host and kind every 5 s at most: a host opening connections in a loop is one line.
said = LogLimiter(log, interval=5.0)

#: Reconnection backoff for a target, doubled after each failed try.
RETRY_MIN = 0.1
RETRY_MAX = 2.0
#: A peer whose socket takes nothing for this long is gone: the connection is dropped.
SEND_TIMEOUT = 10.0
CONNECT_TIMEOUT = 2.0
#: A desk that acknowledges nothing for this long (seconds) is gone: the connection is dropped.
SILENCE = SEND_TIMEOUT
#: Bytes read at once.
READ_SIZE = 65536
#: Why a connection ended when the desk closed it.
CLOSED = "connection closed"
#: Connections in a row a desk closes at once without a word before the log asks about the framing.
MUTE_HINT = 3
#: A client that has not spoken yet, whose framing is therefore unknown, is
#: sent nothing for this long; then it gets SLIP, OSC 1.1's framing for streams.
FRAMING_WAIT = 1.0

#: Packets that arrived on a stream, and the stream: (packets, stream).
Receive = Callable[[list[bytes], "Stream"], None]
#: Packets to send first on every new connection (on_connect, queries).
Hello = Callable[["TcpTarget"], list[bytes]]


class Stream:
    """One TCP connection carrying framed OSC both ways."""

    def __init__(
        self, sock: socket.socket, ident: str, framing: Framing | None, receive: Receive, prefix: str = ""
    ) -> None:
        self.sock = sock
        self.ident = ident
        #: The target's ``prefix``, in front of the addresses both ways (none for a client).
        self.prefix = prefix
        try:
            # The address it speaks from, which [osc] allow lists (a target may be named by its host name).
            self.host = unmapped(str(sock.getpeername()[0]))
        except OSError:
            self.host = ""  # gone already: nothing will be read from it
        self.framing = framing
        self._guessed = False  # SLIP sent before the client spoke: its own framing wins once it does
        self._deframer = Deframer(framing)
        self._receive = receive
        self.outbox: Outbox[object, bytes] = Outbox()
        self._framed = threading.Event()
        if framing is not None:
            self._framed.set()
        self._closed = threading.Event()
        self._write_lock = threading.Lock()
        self.garbage = False
        self.timed_out = False  # the kernel dropped it: the peer acknowledged nothing for SILENCE
        self.sent = 0
        sock.settimeout(SEND_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def peer(self) -> str:
        """The address it speaks from (what an echo of what it was sent comes from)."""
        return self.host

    def put(self, key: object, packet: bytes, event: Event = None) -> None:
        """Queue ``packet`` (a newer one with the same key replaces it, unless it is an ``event``); never blocks."""
        if not self.closed:
            self.outbox.put(event_key(self.outbox, key, event), packet)

    def write(self, packets: Iterable[bytes]) -> None:
        """Write ``packets`` now, whole and in order (on this thread); :class:`OSError` when the peer is gone."""
        framing = self.framing or "slip"
        with self._write_lock:
            for packet in packets:
                self.sock.sendall(frame(packet, framing))

    def room(self, until: float) -> bool:
        """Whether the socket takes more by ``until`` (a peer that stopped reading fills it)."""
        try:
            return bool(select.select([], [self.sock], [], max(0.0, until - time.monotonic()))[1])
        except (OSError, ValueError):
            return True  # closed meanwhile: the write says so

    def write_loop(self) -> None:
        """Send what waits in the outbox until the stream closes (its own thread)."""
        if not self._framed.wait(FRAMING_WAIT) and self.framing is None:
            self.framing, self._guessed = "slip", True
        while not self.closed:
            batch = self.outbox.take()
            if self.closed:
                return
            try:
                self.write(in_time(batch, self.ident, self.room))
            except OSError:
                self.close()
                return
            self.sent += len(batch)

    def read_loop(self) -> None:
        """Read, deframe and hand on packets until the peer leaves or sends garbage (its own thread)."""
        # The socket's timeout (SEND_TIMEOUT) is the writer's too: a read that times out reads again.
        try:
            while not self.closed:
                try:
                    data = self.sock.recv(READ_SIZE)
                except TimeoutError as err:
                    if err.errno == errno.ETIMEDOUT:  # the kernel's: the peer acknowledged nothing (not ours)
                        self.timed_out = True
                        return
                    continue
                if not data:
                    return
                packets = self._deframer.feed(data)
                if self.framing is None or self._guessed:
                    self.framing = self._deframer.framing  # answer a client in its own framing
                    self._guessed = False
                    self._framed.set()
                good = []
                try:
                    for packet in packets:
                        check_packet(packet)  # garbage in a stream: the stream is not OSC, close it
                        good.append(packet)
                finally:
                    if good:
                        self._receive(good, self)  # what came before the garbage is taken
                # A read with data waiting never waits, so never lets another greenlet run:
                # the rest of the bridge runs before the next one (gevent: a yield).
                time.sleep(0)
        except MalformedPacket as err:
            self.garbage = True
            said.warning(("garbage", self.host), "OSC over TCP from %s: %s; connection closed", self.ident, err)
        except OSError:
            pass
        finally:
            self.close()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._framed.set()
        self.outbox.wake()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class TcpTarget:
    """A console the bridge connects to over TCP, and keeps connecting to."""

    def __init__(self, config: OscTarget, receive: Receive, hello: Hello) -> None:
        self.config = config
        self.ident = f"tcp:{config.host}:{config.port}"
        self._receive = receive
        self._hello = hello
        #: Values waiting for the connection, latest per control; kept across reconnects.
        self.outbox: Outbox[object, bytes] = Outbox()
        self.stream: Stream | None = None
        self.state = "connecting"  # connecting | connected | down
        self.connects = 0
        self.sent = 0
        self.errors = 0
        #: Why it is down (None while connected).
        self.error: str | None = None
        #: When the desk last sent anything (``time.monotonic()``; at connect, the connection's start).
        self.heard = 0.0
        self._workers = Workers()
        self._logged_down = False
        #: A drop was said and no connection has held since: a connection is said once it holds.
        self._spell = False
        #: Connections in a row the desk closed at once without a word (a framing it cannot read?).
        self._mute = 0
        self._spoke = False  # the desk sent something on this connection
        self._hint = ""  # what the log asked about a desk that closes every connection at once

    @property
    def connected(self) -> bool:
        stream = self.stream
        return stream is not None and not stream.closed

    @property
    def peer(self) -> str | None:
        """The address it is connected to (None while it is not)."""
        stream = self.stream
        return stream.host if stream is not None else None

    def start(self) -> None:
        self._workers.start((self._run, f"osc-tcp-{self.config.label}"))

    def stop(self) -> None:
        self._workers.stopping.set()
        stream = self.stream
        if stream is not None:
            stream.close()
        self._workers.stop(wake=(self.outbox.wake,))

    def put(self, key: object, packet: bytes, event: Event = None) -> None:
        """A value for a control: sent when connected, kept (the latest) while not.

        A button's ``event`` is sent each while connected; a trigger's
        (``"fire"``) is dropped while not connected, or, with ``answer_within``,
        not yet answered after the desk was down (a frozen desk's kernel takes
        a connection).
        """
        if event is None:
            self.outbox.put(key, packet)
        elif self.connected and (event == "press" or self.state == "connected"):
            self.outbox.put(event_key(self.outbox, key, event), packet)
        elif event == "press":
            self.outbox.put(key, packet)  # the button's latest state goes out once the desk is back
        else:
            said.warning(
                ("fire", self.ident), "OSC target %s is %s: a trigger press not sent", self.config.label, self.state
            )

    def newer(self) -> set[str]:
        """The controls whose newer value waits to go out (changed while it was down): not asked for."""
        return {key for key in self.outbox.keys() if isinstance(key, str)}

    def raw(self, packet: bytes) -> None:
        """A message that is not a value (a keepalive): sent if connected, else dropped.

        The same message waiting already (a peer that reads nothing) is not queued twice.
        """
        if self.connected:
            self.outbox.put(("raw", packet), packet)

    def describe(self) -> dict[str, Any]:
        return {
            "address": self.config.label,
            "transport": "tcp",
            "framing": self.config.framing,
            "state": self.state,
            "connects": self.connects,
            "sent": self.sent,
            "errors": self.errors,
            "waiting": len(self.outbox),
            "error": self.error,
        }

    def _run(self) -> None:
        backoff = RETRY_MIN
        while not self._workers.stopping.is_set():
            try:
                sock = socket.create_connection((self.config.host, self.config.port), timeout=CONNECT_TIMEOUT)
            except OSError as err:
                self._down(f"cannot connect: {err.strerror or err}")
                self._workers.wait(backoff)
                backoff = min(RETRY_MAX, backoff * 2)
                continue
            notice_silence(sock, SILENCE)
            began = time.monotonic()
            why = self._serve(sock)
            short = time.monotonic() - began < RETRY_MAX
            self._mute = self._mute + 1 if short and not self._spoke and why == CLOSED else 0
            if self._mute == MUTE_HINT:
                other = "length" if self.config.framing == "slip" else "slip"
                self._hint = f"it closes each connection at once, without a word: does it expect framing = {other!r}?"
                log.warning("OSC target %s: %s", self.config.label, self._hint)
            elif not self._mute and not short:
                self._hint = ""
            if not self._workers.stopping.is_set():
                self._down(why)
            if short:  # a desk that takes the connection and drops it
                self._workers.wait(backoff)
                backoff = min(RETRY_MAX, backoff * 2)
            else:  # one that stayed: connected again at once
                backoff = RETRY_MIN

    def _heard(self, packets: list[bytes], stream: Stream) -> None:
        self.heard, self._spoke = time.monotonic(), True
        if self.state == "connecting":  # its answer: connected from now on (a GO pressed next is sent)
            self.state, self.error = "connected", None
            self.outbox.wake()  # (and the writer says so)
        self._receive(packets, stream)

    def _held(self, began: float, now: float) -> bool:
        """Whether the connection begun at ``began`` holds: the desk said something on it, or (when no
        answer is asked of it) it stayed open for RETRY_MAX."""
        return self._spoke or (not self.config.answer_within and now - began >= RETRY_MAX)

    def _serve(self, sock: socket.socket) -> str:
        """Keep the connection fed until it ends; why it ended."""
        stream = Stream(sock, self.ident, self.config.framing, self._heard, self.config.prefix)
        stream.outbox = self.outbox  # what is sent to the stream (the answer to a sync) goes out with the values
        self.stream = stream
        self.connects += 1
        began = self.heard = time.monotonic()
        self._spoke = False
        if self._spell and self.config.answer_within:
            self.state = "connecting"  # a frozen desk's kernel takes connections: shown (and a GO sent) once it answers
        else:
            self.state, self.error = "connected", None
        if not self._spell:  # (else said once it holds: a desk that closes every connection is said once)
            log.info("OSC target %s connected", self.config.label)
        limit = self.config.answer_within

        def read() -> None:
            stream.read_loop()
            self.outbox.wake()  # the desk closed it: connect again now, not at the writer's next turn

        reader = threading.Thread(target=read, name=f"osc-tcp-read-{self.config.label}", daemon=True)
        reader.start()
        why = CLOSED
        try:
            stream.write(self._hello(self))  # on_connect and queries first, then what waited
            while not stream.closed and not self._workers.stopping.is_set():
                batch = self.outbox.take(timeout=0.25 if limit or self._spell else 1.0)
                if batch:
                    try:
                        stream.write(in_time(batch, self.config.label, stream.room))
                    except OSError:
                        self.outbox.put_back(batch)  # not sent: kept, unless a newer value came
                        raise
                    self.sent += len(batch)
                now = time.monotonic()
                if self._spell and self._held(began, now):
                    self._spell = self._logged_down = False
                    self.state, self.error = "connected", None
                    log.info("OSC target %s connected", self.config.label)
                if limit and now - self.heard > limit:
                    # Frozen, with its kernel still taking what is sent (a desk's program hung, a process
                    # stopped): what waits unsent is dropped with the connection (a reset), not sent later.
                    why = f"answered nothing for {limit:g} s; connection dropped"
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    break
        except TimeoutError:
            self.errors += 1
            why = f"took nothing for {SEND_TIMEOUT:.0f} s; connection dropped"
        except OSError as err:
            self.errors += 1
            log.debug("OSC target %s: %s", self.config.label, err)
        finally:
            stream.close()
            reader.join(timeout=2)
            self.stream = None
            self.state = "down"
        if stream.timed_out:  # the kernel dropped it (notice_silence), as the reader found
            why = f"took nothing for {SILENCE:.0f} s; connection dropped"
        return why

    def _down(self, why: str) -> None:
        self.state, self.error = "down", why
        if not self._logged_down:
            self._logged_down = self._spell = True
            log.warning(
                "OSC target %s: %s; retrying (at most every %.0f s), its latest values kept",
                self.config.label,
                why,
                RETRY_MAX,
            )
        if self._hint:
            self.error = f"{why}; {self._hint}"
