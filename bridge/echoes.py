"""What the bridge sent lately, to know it when it comes straight back: an echo is not news.

A MIDI output patched back to the bridge's own input (an IAC bus or a
virtual cable chosen both ways, a DAW track that passes its input through,
a controller with MIDI echo on) returns every message the bridge sends; so
does an OSC peer that mirrors what it is sent from a port other than the
one the bridge sends to. Taken as input, such an echo turns a toggle
pressed on a page straight back off (a note-on flips a toggle), fires a GO
again, which goes out again and comes back again, for ever, and drags a
fader back to where it was a moment ago.

So every message sent is remembered for :data:`WINDOW` seconds under a key
(the peer, the message's exact bytes). A message that comes in from that
peer with the same bytes within the window is that message's echo: it is
dropped, once per sending. Anything else, including the same message sent
again by a hand later than that, goes through. The window is far longer
than a cable's or a network's round trip (a few milliseconds) and shorter
than a hand can press the same pad twice.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Hashable

#: Seconds a message sent stays recognisable as coming back.
WINDOW = 0.1
#: At most this many sendings of one message are remembered at a time.
DEPTH = 64


class Echoes:
    """Messages sent in the last :data:`WINDOW` seconds, each to be recognised once when it comes back."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._sent: dict[Hashable, deque[float]] = {}
        self._lock = threading.Lock()
        self._swept = 0.0
        #: Messages that came back and were dropped.
        self.recognised = 0

    def sent(self, key: Hashable, now: float) -> None:
        """``key`` went out at ``now`` (``time.monotonic()``)."""
        with self._lock:
            times = self._sent.get(key)
            if times is None:
                if now - self._swept > self.window:
                    self._sweep(now)
                times = self._sent[key] = deque(maxlen=DEPTH)
            times.append(now)

    def back(self, key: Hashable, now: float) -> bool:
        """True when ``key`` came in at ``now`` as the echo of a sending still in the window (used up then)."""
        if not self._sent:
            return False  # nothing sent lately: no lock taken
        with self._lock:
            times = self._sent.get(key)
            if times is None:
                return False
            while times and now - times[0] > self.window:
                times.popleft()
            if not times:
                del self._sent[key]
                return False
            times.popleft()
            self.recognised += 1
            return True

    def _sweep(self, now: float) -> None:
        """Forget every key whose last sending left the window (at most once per window)."""
        self._swept = now
        for key in [k for k, times in self._sent.items() if not times or now - times[-1] > self.window]:
            del self._sent[key]
