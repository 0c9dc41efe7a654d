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

So every message sent is remembered, under its peer (a host, a MIDI port)
and its exact bytes. A message that comes in from that peer with the same
bytes within the peer's window is that message's echo: it is dropped, once
per sending. Anything else goes through, including the same message sent
again later by a hand. The window, :data:`WINDOW`, is far longer than a
cable's or a wired network's round trip (a few milliseconds) and shorter
than a hand presses the same pad twice. A peer whose echo comes back later
than that (a busy Wi-Fi, a slow router), up to :data:`LONGEST`, gets a
window of twice that delay from then on: the late echo itself goes through
(the bridge cannot tell it yet), the ones after it are known.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Hashable

#: Seconds a message sent stays recognisable as coming back, for a peer not seen slower.
WINDOW = 0.1
#: The longest a peer's echo is waited for (its window never grows past it).
LONGEST = 1.0
#: At most this many sendings of one message to one peer are remembered at a time.
DEPTH = 64
#: What the monitor says after a message taken for an echo, so that an operator sees why it did nothing.
ECHOED = "(the echo of what was sent there: dropped)"


class Echoes:
    """Messages sent lately, each to be recognised once when it comes back from its peer."""

    def __init__(self, window: float = WINDOW, longest: float = LONGEST) -> None:
        self.window = window
        self.longest = longest
        self._sent: dict[tuple[Hashable, Hashable], deque[float]] = {}
        #: Peers whose echoes came back later than :attr:`window`: their own window.
        self._windows: dict[Hashable, float] = {}
        self._lock = threading.Lock()
        self._swept = 0.0
        #: Echoes known and dropped.
        self.recognised = 0
        #: Echoes that came back too late to be known (they went through; their peer waits longer now).
        self.late = 0

    def window_for(self, peer: Hashable) -> float:
        return self._windows.get(peer, self.window)

    def sent(self, peer: Hashable, message: Hashable, now: float) -> None:
        """``message`` went to ``peer`` at ``now`` (``time.monotonic()``)."""
        key = (peer, message)
        with self._lock:
            times = self._sent.get(key)
            if times is None:
                if now - self._swept > self.longest:
                    self._sweep(now)
                times = self._sent[key] = deque(maxlen=DEPTH)
            times.append(now)

    def back(self, peer: Hashable, message: Hashable, now: float) -> bool:
        """True when ``message`` from ``peer`` at ``now`` is the echo of a sending in the peer's window."""
        if not self._sent:
            return False  # nothing sent lately: no lock taken
        key = (peer, message)
        with self._lock:
            times = self._sent.get(key)
            if times is None:
                return False
            while times and now - times[0] > self.longest:
                times.popleft()
            if not times:
                del self._sent[key]
                return False
            delay = now - times.popleft()  # that sending's echo, known or late: used up either way
            if delay <= self._windows.get(peer, self.window):
                self.recognised += 1
                return True
            self._windows[peer] = min(self.longest, 2 * delay)
            self.late += 1
            return False

    def _sweep(self, now: float) -> None:
        """Forget every message whose last sending is older than :data:`LONGEST` (at most once per that)."""
        self._swept = now
        for key in [k for k, times in self._sent.items() if not times or now - times[-1] > self.longest]:
            del self._sent[key]
