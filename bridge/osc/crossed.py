"""Which change from an OSC peer crossed what the bridge sent it, so that it goes back to that peer once.

What a peer sends is not sent back to it. But a phone and the desk moved one
fader at once: the desk took the phone's value after its own move and told
nobody (an X32 reports a change to every client but the one that made it),
while every page showed the desk's. The two stayed apart for good. So a
change from a peer goes back to it when the last change of that control came
from elsewhere, and its value is none the bridge sent out lately: a DAW that
echoes what it is sent late, or rounded, is no crossing (sent back, its old
value dragged a fade back, round after round).
"""

from __future__ import annotations

from collections import deque

from bridge.model import Control, Value

#: How long (seconds) a value sent out is one a peer may echo back: later, it is taken for the peer's own.
RECENT = 1.0
#: Values remembered per control (a fast fade sends one every 10 ms).
KEPT = 128
#: A peer's value this close to one sent out, as a share of the control's range, is that one, rounded.
ROUNDING = 0.005


class Crossed:
    """Per control, the peer its last change came from, and the values sent out lately."""

    def __init__(self) -> None:
        self._from: dict[str, str | None] = {}
        self._sent: dict[str, deque[tuple[float, Value]]] = {}

    def check(self, control: Control, value: Value, source: str | None, now: float) -> bool:
        """Note a change of ``control`` going out (``source``: the OSC peer it came from, None for any other);
        True when it came from a peer and crossed what was sent to that peer."""
        last, self._from[control.id] = self._from.get(control.id, source), source
        sent = self._sent.get(control.id)
        if sent is None:
            sent = self._sent[control.id] = deque(maxlen=KEPT)
        crossed = source is not None and last != source and not _among(control, value, sent, now - RECENT)
        sent.append((now, value))
        return crossed


def _among(control: Control, value: Value, sent: deque[tuple[float, Value]], since: float) -> bool:
    """Whether ``value`` is one sent out since ``since`` (numbers: within rounding of it)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        near = max(control.step or 0.0, ROUNDING * abs(control.max - control.min))
        return any(at >= since and isinstance(v, int | float) and abs(v - value) <= near for at, v in sent)
    return any(at >= since and v == value for at, v in sent)
