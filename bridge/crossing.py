"""Values that cross on the wire, and the confirmation that settles them.

The protocol never sends a browser its own change back. That is right as
long as nothing else moves the same control meanwhile; but when another
browser (or OSC, MIDI, another bridge process) changes it at the same time,
an ``update value`` can be on its way to a browser while that browser's own
change is on its way to the bridge. The two cross: the bridge stores the
browser's value last, the browser shows the other one last, and nothing
would ever tell it.

:class:`Crossings` notices when that may have happened: a browser's change
arrived after the bridge had sent it another value of that control (since
its previous change), or after the bridge answered it directly (a clamped
value, an earlier confirmation). The browser then gets the stored value
once more, when it has paused for :data:`CONFIRM_DELAY`, so a drag costs at
most one confirmation per pause, and only while somebody else moves the
same control. Without contention nothing changes on the wire.

Pure bookkeeping, no transport: the web adapter calls it under its locks.
"""

from __future__ import annotations

#: A browser that may show a crossed value gets the stored one this long after its last change.
CONFIRM_DELAY = 0.05


class Crossings:
    """Per control, the broadcasts sent; per browser, what it may have missed."""

    def __init__(self, delay: float = CONFIRM_DELAY) -> None:
        self.delay = delay
        self._seq: dict[str, int] = {}  # control -> broadcasts so far
        # control -> (sender of the latest broadcasts, number of the first of that run)
        self._run: dict[str, tuple[str | None, int]] = {}
        self._marks: dict[str, dict[str, int]] = {}  # sid -> control -> broadcasts at its last change
        self._told: dict[str, set[str]] = {}  # sid -> controls answered to it since its last change
        self._due: dict[str, dict[str, float]] = {}  # sid -> control -> when to confirm
        self.confirmed = 0

    @property
    def pending(self) -> bool:
        return bool(self._due)

    def broadcast(self, control_id: str, sender: str | None) -> None:
        """A value of ``control_id`` went to every browser but ``sender`` (None: to all)."""
        seq = self._seq.get(control_id, 0) + 1
        self._seq[control_id] = seq
        last = self._run.get(control_id)
        if sender is None or last is None or last[0] != sender:
            self._run[control_id] = (sender, seq)

    def joined(self, sid: str) -> None:
        """``sid`` was sent the snapshot: no broadcast before it can reach it any more."""
        self._marks[sid] = dict(self._seq)

    def told(self, sid: str, control_id: str) -> None:
        """The bridge sent ``sid`` a value of ``control_id`` for it alone (an echo, a confirmation)."""
        self._told.setdefault(sid, set()).add(control_id)

    def changed(self, sid: str, control_id: str, now: float) -> bool:
        """``sid`` sent a change of ``control_id`` that the hub took; True when a confirmation is due."""
        seq = self._seq.get(control_id, 0)
        marks = self._marks.setdefault(sid, {})
        # Not known since it joined: any broadcast may have been on its way.
        mark = marks.get(control_id, 0)
        sender, first = self._run.get(control_id, (None, 0))
        if sender == sid:
            # Broadcasts from ``first`` on were its own; others came before them.
            crossed = mark < first - 1
        else:
            crossed = mark < seq
        told = self._told.get(sid)
        if told is not None and control_id in told:
            crossed = True
            told.discard(control_id)
        marks[control_id] = seq
        due = self._due.get(sid)
        if crossed or (due is not None and control_id in due):
            # Pushed back while it keeps sending: confirmed once it pauses.
            self._due.setdefault(sid, {})[control_id] = now + self.delay
            return True
        return False

    def take_due(self, now: float) -> list[tuple[str, str]]:
        """The (sid, control) pairs to confirm now; each counts as told."""
        found: list[tuple[str, str]] = []
        for sid in list(self._due):
            due = self._due[sid]
            for control_id, when in list(due.items()):
                if when <= now:
                    del due[control_id]
                    found.append((sid, control_id))
                    self.told(sid, control_id)
            if not due:
                del self._due[sid]
        self.confirmed += len(found)
        return found

    def forget(self, sid: str) -> None:
        """``sid`` left."""
        self._marks.pop(sid, None)
        self._told.pop(sid, None)
        self._due.pop(sid, None)
