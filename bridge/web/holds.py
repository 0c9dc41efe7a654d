"""Which browsers hold which push pads down: a pad is down while any of them holds it.

Two phones on one talkback pad: the first finger that lifts must not cut the
mic under the second. And a phone whose Wi-Fi drops with a finger on a pad
lifts it where the bridge cannot hear: the pads it held are released when
it leaves, unless another browser holds them too.
"""

from __future__ import annotations

import threading


class Holds:
    """Push pads held down, per browser (its Socket.IO sid)."""

    def __init__(self) -> None:
        self._held: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def press(self, sid: str, cid: str) -> None:
        """``sid`` holds ``cid`` down (even when another held it already)."""
        with self._lock:
            self._held.setdefault(sid, set()).add(cid)

    def lift(self, sid: str, cid: str) -> bool:
        """``sid`` lets go of ``cid``; True when another browser still holds it (it stays down). A browser
        that did not hold it releases it for everyone (a script's release)."""
        with self._lock:
            mine = self._held.get(sid)
            if mine is None or cid not in mine:
                return False
            mine.discard(cid)
            return any(cid in pads for pads in self._held.values())

    def released(self, cid: str) -> None:
        """``cid`` went up, from anywhere (the last finger, OSC, MIDI, a scene): nobody holds it now."""
        with self._lock:
            for pads in self._held.values():
                pads.discard(cid)

    def leave(self, sid: str) -> set[str]:
        """``sid`` is gone: the pads it held that no other browser holds (to release)."""
        with self._lock:
            pads = self._held.pop(sid, set())
            return pads - set().union(*self._held.values())
