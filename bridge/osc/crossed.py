"""Which change from an OSC peer crossed what the bridge sent it, so that it goes back to that peer.

What a peer sends is not sent back to it. But a phone and the desk moved one
fader at once: the desk took the phone's value after its own move and told
nobody (an X32 reports a change to every client but the one that made it),
while every page showed the desk's. The two stayed apart for good. So a
change from a peer goes back to it when the last change of that control came
from elsewhere, and its value is none the bridge sent it lately from
elsewhere: a DAW that echoes what it is sent late, or rounded, is no
crossing (sent back, its old value dragged a fade back, round after round).
The peer's own values do not count (a desk's drag ends near its own last
report). What else the peer reports for :data:`AFTER` seconds after a
crossing was on its way before it had the value sent back: it goes back too,
or the desk ends on the first and the pages on the last.
"""

from __future__ import annotations

from collections import deque

from bridge.model import Control, Value

#: How long (seconds) a value sent out is one a peer may echo back: later, it is taken for the peer's own.
RECENT = 1.0
#: How long (seconds) after a crossing what the peer reports goes back to it too (its reports in flight).
AFTER = 0.25
#: Values remembered per control (a fast fade sends one every 10 ms).
KEPT = 128
#: A peer's value this close to one sent to it, as a share of the control's range, is that one, rounded.
ROUNDING = 0.005
#: Where a value sent out came from: an OSC peer, None for any other, or ("back", peer) when it was sent back.
Origin = str | tuple[str, str] | None


class Crossed:
    """Per control, the peer its last change came from, the values sent out lately (and where each came
    from), and the crossing under way."""

    def __init__(self) -> None:
        self._from: dict[str, str | None] = {}
        self._sent: dict[str, deque[tuple[float, Value, Origin]]] = {}
        self._crossing: dict[str, tuple[str, float]] = {}

    def check(self, control: Control, value: Value, source: str | None, now: float) -> bool:
        """Note a change of ``control`` going out (``source``: the OSC peer it came from, None for any other);
        True when it came from a peer and crossed what was sent to that peer."""
        cid = control.id
        last, self._from[cid] = self._from.get(cid, source), source
        sent = self._sent.get(cid)
        if sent is None:
            sent = self._sent[cid] = deque(maxlen=KEPT)
        crossed = False
        if source is not None:
            peer, until = self._crossing.get(cid, ("", 0.0))
            after = peer == source and now <= until  # (its reports on their way when it was sent one back)
            if (after or last != source) and not _among(control, value, source, sent, now - RECENT):
                crossed = True
                if not after:
                    self._crossing[cid] = (source, now + AFTER)
        # A value sent back to its peer: its exact echo is no crossing, but its next report a step from it is
        # still its hand's (it took the value sent back over that report, and ended a step off).
        sent.append((now, value, ("back", source) if crossed and source is not None else source))
        return crossed


def _among(control: Control, value: Value, peer: str, sent: deque[tuple[float, Value, Origin]], since: float) -> bool:
    """Whether ``value`` is one sent to ``peer`` since ``since``: from elsewhere, within rounding (numbers); sent
    back to it, exactly; its own values do not count."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    near = max(control.step or 0.0, ROUNDING * abs(control.max - control.min)) if number else 0.0
    for at, sent_value, origin in sent:
        if at < since or origin == peer:
            continue
        if origin == ("back", peer) or not number or not isinstance(sent_value, int | float):
            if sent_value == value:
                return True
        elif abs(sent_value - value) <= near:  # type: ignore[operator]
            return True
    return False
