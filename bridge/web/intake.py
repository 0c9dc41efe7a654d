"""Changes coming in from browsers, each browser held to ``max_rate`` a second.

A token bucket per browser allows ``max_rate`` changes a second, in bursts
up to one second's worth. Beyond it, the browser's changes are held, its
latest value per control, and let through as its budget allows, so the last
value of a gesture always lands and one flooding browser cannot slow the
others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from bridge.flow import Buckets, Latest

#: Apply one browser change: (sid, control id, data).
Apply = Callable[[str, str, object], None]
#: ``rejected`` answers a browser gets a second at most (bursts of as many): a script sending a
#: wrong id in a loop got one per event, tens of thousands a second it could not read, until the
#: server's memory and every other browser gave way.
REJECTIONS_PER_SECOND = 20
#: Scene saves and recalls a browser may ask for a second (bursts of twice as many): each writes
#: the scenes file or starts a fade; a script asking in a loop held the scenes' readers for 10 s.
COMMANDS_PER_SECOND = 5


class Intake:
    """The way in from browsers: token buckets and what is held while a browser is over its rate."""

    def __init__(self, max_rate: int) -> None:
        self._lock = threading.Lock()
        self._changes: Buckets[str] = Buckets(max_rate, max_rate)  # per browser
        self._held: dict[str, Latest[str, object]] = {}  # sid -> latest data per control, over the rate
        self._told: set[str] = set()
        self._answers: Buckets[str] = Buckets(REJECTIONS_PER_SECOND, REJECTIONS_PER_SECOND)  # rejected answers
        self._commands: Buckets[str] = Buckets(COMMANDS_PER_SECOND, 2 * COMMANDS_PER_SECOND)  # scene commands
        self.throttled = 0
        self.unanswered = 0

    @property
    def max_rate(self) -> float:
        return self._changes.rate

    @max_rate.setter
    def max_rate(self, rate: float) -> None:
        """A reload's new ``max_rate`` (browsers met from now on; the others keep their budget)."""
        self._changes.rate = self._changes.burst = rate

    def admit(self, sid: str, who: str, data: object) -> tuple[bool, bool]:
        """Whether to apply this change now; if not (it is held), whether to tell the browser it is throttled."""
        with self._lock:
            held = self._held.get(sid)
            if held is None and self._changes.take(sid):
                return True, False
            # Over its rate: keep only this browser's latest value per control.
            if held is None:
                held = self._held[sid] = Latest()
            held.put(who, data)
            self.throttled += 1
            tell = sid not in self._told
            self._told.add(sid)
            return False, tell

    def may_answer(self, sid: str) -> bool:
        """Whether a browser's refused change gets its ``rejected`` answer (see :data:`REJECTIONS_PER_SECOND`)."""
        with self._lock:
            if self._answers.take(sid):
                return True
            self.unanswered += 1
            return False

    def may_command(self, sid: str) -> bool:
        """Whether a browser's scene command runs now (see :data:`COMMANDS_PER_SECOND`)."""
        with self._lock:
            return self._commands.take(sid)

    def release(self, connected: Callable[[str], bool], apply: Apply) -> bool:
        """Apply the held changes whose browser has tokens again; True while some remain held.

        Applied under the lock of the way in: once a browser's held value is
        taken out, its next change (which would go straight through) waits
        for it, so an older value never lands last. Nothing on the way from
        the hub to an adapter takes this lock.
        """
        with self._lock:
            for sid in list(self._held):
                held = self._held[sid]
                if not connected(sid):
                    del self._held[sid]
                    continue
                while held and self._changes.take(sid):
                    who, data = held.first()
                    held.pop(who)
                    apply(sid, who, data)
                if not held:
                    del self._held[sid]
            return bool(self._held)

    def forget(self, sid: str) -> None:
        with self._lock:
            self._held.pop(sid, None)
            for buckets in (self._changes, self._answers, self._commands):
                buckets.forget(sid)
            self._told.discard(sid)
