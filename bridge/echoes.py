"""What the bridge sent lately, to know it when it comes straight back: an echo is not news.

A MIDI output patched back to the bridge's own input (an IAC bus or a
virtual cable chosen both ways, a DAW track that passes its input through,
a controller with MIDI echo on) returns every message the bridge sends; so
does an OSC peer that mirrors what it is sent from a port other than the
one the bridge sends to, and an OSCQuery client whose bindings go both
ways. Taken as input, such an echo turns a toggle pressed on a page
straight back off (a note-on flips a toggle), fires a GO again, which goes
out again and comes back again, for ever, and drags a fader back to where
it was a moment ago.

So every message sent is remembered, under its peer (a host, the MIDI
device) and its exact bytes. A message that comes in from that peer with
the same bytes within :data:`WINDOW` seconds of a sending is that
sending's echo: it is dropped, once per sending. The window is far longer
than a cable's or a wired network's round trip (a few milliseconds) and
shorter than a hand presses the same pad twice. It is counted to when the
message arrived, which may be well before the bridge reads it (a bridge
starved of CPU, busy with a reload): so a sending is kept for
:data:`KEEP` seconds by the clock, not for the window alone, or a bridge
that sent anything before reading an echo already waiting would have
forgotten what it echoes.

A peer is also sent back what came from it (a controller's LED; a change
from a surface that sends from one port and listens on another, mirrored
to the port it listens on), and a surface that does not echo may well send
the very same message again within the window: a fader thrown to 0, 0.02,
0 again. So such a "reflected" sending is taken as echoed only from a peer
known to echo: one that sent back something else the bridge sent it within
the last :data:`TRUST` seconds, or when it comes back faster than any hand
(:data:`FAST`) with nothing else from the peer about the same thing in between: a loop that
started there stops on its first turn (a fixed-velocity pad's GO, its LED
sent back through a patch, fired twice when that took two turns), and a
fader thrown to 0, up a hair and back to 0 within a few ms keeps its 0.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

from bridge.model import Origin
from bridge.net import host_of

#: Seconds after its sending a message arriving from the peer is its echo.
WINDOW = 0.1
#: Seconds a sending is kept, by the clock, for an echo that arrived in time and waits to be read.
KEEP = 5.0
#: Seconds a peer that echoed stays known as one that does.
TRUST = 30.0
#: A reflected message back this fast (seconds) is a loop's, not a hand's.
FAST = 0.01
#: Peers' last words (per address, per MIDI number) remembered at most.
PEERS = 16_384
#: Sendings remembered at most (a flood of distinct values to many targets): the oldest go first.
LIMIT = 50_000
#: What the monitor says after a message taken for an echo, so that an operator sees why it did nothing.
ECHOED = "(the echo of what was sent there: dropped)"

Key = tuple[Hashable, Hashable]
T = TypeVar("T")


class Echoes:
    """Messages sent lately, each to be recognised once when it comes back within :data:`WINDOW` of it."""

    def __init__(self, window: float = WINDOW, trust: float = TRUST, limit: int = LIMIT, keep: float = KEEP) -> None:
        self.window = window
        self.keep = max(keep, window)
        self.trust = trust
        self.limit = limit
        #: (peer, message) -> its sendings still kept, oldest first: (when, number, reflected).
        self._sent: dict[Key, list[tuple[float, int, bool]]] = {}
        #: Every sending still remembered, oldest first: (when, number, key), to forget them in order.
        self._order: deque[tuple[float, int, Key]] = deque()
        self._numbers = itertools.count()
        #: Peers known to echo: when each last did.
        self._echoers: dict[Hashable, float] = {}
        #: When each peer last said something that was no echo, about each family (address, MIDI number).
        self._heard: dict[tuple[Hashable, Hashable], float] = {}
        self._lock = threading.Lock()
        #: Echoes known and dropped.
        self.recognised = 0

    def sent(self, peer: Hashable, message: Hashable, now: float, reflected: bool = False) -> None:
        """``message`` went to ``peer`` at ``now`` (``time.monotonic()``); ``reflected``: what came from
        that peer, sent back to it. Call it before sending: a fast echo may be read before the send returns."""
        self.sent_all(((peer, message, reflected),), now)

    def sent_all(self, sendings: Iterable[tuple[Hashable, Hashable, bool]], now: float) -> None:
        """Several of :meth:`sent` at once, ``(peer, message, reflected)`` each (one change to every target)."""
        with self._lock:
            self._forget(now)
            remembered, order, numbers = self._sent, self._order, self._numbers
            for peer, message, reflected in sendings:
                if peer is None:
                    continue  # not resolved, not connected: nothing went anywhere
                key = (peer, message)
                number = next(numbers)
                found = remembered.get(key)
                if found is None:
                    remembered[key] = [(now, number, reflected)]
                else:
                    found.append((now, number, reflected))
                order.append((now, number, key))
            while len(order) > self.limit:
                self._drop_oldest()

    def back(self, peer: Hashable, message: Hashable, now: float, family: Hashable = None) -> bool:
        """True when ``message`` from ``peer``, arrived at ``now``, is the echo of a sending in the
        :data:`WINDOW` before it (the oldest such sending; it is answered, echo or not). ``family``: what
        the message is about (its OSC address, its MIDI status and number), for :data:`FAST`."""
        if not self._order:
            return False  # nothing sent lately: no lock taken
        with self._lock:
            self._forget(now)
            found = self._sent.get((peer, message))
            index = self._answered(found, now) if found else None
            if found is None or index is None:
                return self._taken((peer, family), now)
            at, _number, reflected = found.pop(index)
            if not found:
                del self._sent[(peer, message)]
            trusted = now - self._echoers.get(peer, -self.trust) < self.trust
            # A return of its own message faster than a hand is a loop's, unless the peer said something
            # else about the same thing since it was sent: a fader thrown to 0, up a hair and back to 0
            # within a few ms is a hand (a MIDI clock running beside it is not about that fader).
            if reflected and not trusted and (now - at > FAST or self._heard.get((peer, family), -1.0) > at):
                return self._taken((peer, family), now)  # the peer's own hand again, most likely
            if trusted or not reflected:
                # Known to echo: it sent back something it did not send (a fast return of its own message is
                # dropped, and proves nothing: a surface may send a value twice at once; trusted on that, it
                # lost a hand's moves for 30 s).
                self._echoers[peer] = now
            self.recognised += 1
            return True

    def _taken(self, about: tuple[Hashable, Hashable], now: float) -> bool:
        """A peer said something about a family that is no echo, at ``now``; False."""
        if len(self._heard) > PEERS:
            self._heard.clear()  # (a flood of addresses: forgetting only makes fast returns count as loops')
        self._heard[about] = now
        return False

    def split(
        self,
        peer: Hashable,
        items: list[T],
        key: Callable[[T], Hashable],
        now: float,
        family: Callable[[T], Hashable] | None = None,
    ) -> tuple[list[T], list[T]]:
        """``items`` that came in from ``peer``, as (those taken, the echoes), each in order; ``key`` gives
        an item's message as it was remembered, ``family`` what it is about (see :meth:`back`)."""
        taken: list[T] = []
        echoes: list[T] = []
        for item in items:
            about = family(item) if family is not None else None
            (echoes if self.back(peer, key(item), now, about) else taken).append(item)
        return taken, echoes

    def _answered(self, found: list[tuple[float, int, bool]], now: float) -> int | None:
        """Where in ``found`` the oldest sending in the window before ``now`` is: one sent after
        ``now`` (and so every later one) is not what arrived then; one too long before, a hand's."""
        for index, sending in enumerate(found):
            if sending[0] > now:
                return None
            if now - sending[0] <= self.window:
                return index
        return None

    def _forget(self, now: float) -> None:
        """Forget the sendings older than :data:`KEEP` (the oldest first: each is the oldest of its key)."""
        order = self._order
        while order and now - order[0][0] > self.keep:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _at, number, key = self._order.popleft()
        found = self._sent.get(key)
        if found and found[0][1] == number:  # (else answered already: a later one of the key is first)
            found.pop(0)
            if not found:
                del self._sent[key]


def came_from(origin: Origin) -> str | None:
    """The host a change came from, over OSC or OSCQuery: sendings back there are ``reflected``."""
    if origin.host:
        return origin.host
    return host_of(origin.ident) if origin.kind == "osc" else None
