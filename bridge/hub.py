"""The hub: the one owner of the current values.

Every change, from any source, goes through :meth:`Hub.set`: it is checked
against its control, stored under a lock, and handed to every adapter with
its origin. A trigger button's press is handed on without being stored: it
is an event, not a state, and no late joiner or recall ever replays it.
Adapters are called outside the value lock but one change at a time and in
the order the values were stored, so no adapter ever ends on a value older
than the store's. The hub imports no transport.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from bridge.errors import InvalidValue, UnknownControl
from bridge.model import Change, Control, Origin, Value
from bridge.validation import normalize

log = logging.getLogger(__name__)


class Adapter(Protocol):
    """What the hub needs of an adapter. Each applies its own no-echo rule.

    One may also say ``hand_last = True``: it is handed each change after
    the adapters that do not (the web's fan-out to every browser is the
    longest hand-off, and desks and synths get a change first).
    """

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def send(self, change: Change) -> None: ...


@dataclass(frozen=True)
class Applied:
    """What :meth:`Hub.set` did: the value now stored, whether the store changed,
    and whether the stored value differs from the one given (clamped, stepped,
    cut), so that its sender can be told."""

    control: Control
    value: Value
    changed: bool
    adjusted: bool = False


@dataclass(frozen=True)
class Reshaped:
    """What a new set of controls changed (a config reload): ids added, removed, and redefined,
    and the values the new definitions refused (reset to the default) or clamped."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    redefined: tuple[str, ...]
    adjusted: dict[str, tuple[Value, Value]]  # id -> (value before, value now)
    #: Of those, the ones taken from their value before an earlier reload changed them: id -> that value.
    recalled: dict[str, Value] = field(default_factory=dict)
    #: Controls renamed (the editor): new id -> old id (the old one is in ``removed``, the new in ``added``).
    renamed: dict[str, str] = field(default_factory=dict)


#: Origins whose change of a control to the value it has counts as a move (people at a page, scripts, scenes).
BY_HAND = frozenset({"web", "http", "scene"})
#: Where the changes a reload makes to values (clamped, reset) come from.
RELOAD = Origin("config", "reload")
#: The editor's "send test": a control's value sent out once more, stored nowhere.
TEST = Origin("test", "editor")


class Hub:
    """Owns the values; validates, stores and fans out every change."""

    def __init__(self, controls: Iterable[Control], values: Mapping[str, Value] | None = None) -> None:
        self.controls: dict[str, Control] = {c.id: c for c in controls}
        self._values: dict[str, Value] = {cid: c.default for cid, c in self.controls.items()}
        if values:
            self.restore(values)
        self._adapters: list[Adapter] = []
        self._handing: list[Adapter] = []  # the same, in the order a change is handed to them
        self._lock = threading.Lock()
        self._dispatch_lock = threading.Lock()
        self._outbox: deque[Change] = deque()
        #: Values of controls a reload removed, kept for when they come back.
        self._parked: dict[str, Value] = {}
        #: Controls a reload had to change (clamped, reset) and nothing moved since: the value before it.
        self._displaced: dict[str, Value] = {}
        self.version = 0

    # -- adapters --------------------------------------------------------
    def add_adapter(self, adapter: Adapter) -> None:
        self.replace_adapter(None, adapter)

    def replace_adapter(self, old: Adapter | None, new: Adapter | None) -> None:
        """Put ``new`` where ``old`` was (or last); None removes, or adds nothing.

        The list is replaced whole, under the dispatch lock: a change being
        handed out meanwhile goes to the adapters it started with.
        """
        with self._dispatch_lock:
            self._replace(old, new)

    def _replace(self, old: Adapter | None, new: Adapter | None) -> None:
        """:meth:`replace_adapter`, under the dispatch lock."""
        adapters = list(self._adapters)
        if old is not None and old in adapters:
            at = adapters.index(old)
            if new is None:
                del adapters[at]
            else:
                adapters[at] = new
        elif new is not None:
            adapters.append(new)
        self._adapters = adapters
        self._handing = sorted(adapters, key=lambda adapter: bool(getattr(adapter, "hand_last", False)))

    def hand_over(self, held: Held, new: Adapter) -> None:
        """Put ``new`` (started) where ``held`` stood in for it, handing it first, in order, what
        ``held`` kept; under the dispatch lock, so no change is lost or handed twice."""
        with self._dispatch_lock:
            for change in held.take():
                _hand(change, (new,))
            self._replace(held, new)  # in the same hold: nothing reaches ``held`` after its take

    @property
    def adapters(self) -> tuple[Adapter, ...]:
        return tuple(self._adapters)

    # -- values ------------------------------------------------------------
    def control(self, control_id: object) -> Control:
        """The control called ``control_id``, or :class:`UnknownControl`."""
        if not isinstance(control_id, str) or control_id not in self.controls:
            raise UnknownControl(control_id)
        return self.controls[control_id]

    def get(self, control_id: str) -> Value:
        with self._lock:
            return self._values[self.control(control_id).id]

    def values(self) -> dict[str, Value]:
        """A copy of every current value, in config order."""
        with self._lock:
            return dict(self._values)

    def restore(self, values: Mapping[str, Value]) -> None:
        """Load already checked values (saved state, a cluster's) without fanning them out."""
        with self._lock:
            for cid, value in values.items():
                if cid in self._values:
                    if cid in self._displaced and not same_value(self._values[cid], value):
                        del self._displaced[cid]  # moved elsewhere (another process of a cluster)
                        self.version += 1
                    self._values[cid] = value

    def with_values(self, use: Callable[[dict[str, Value]], None]) -> None:
        """Call ``use`` with every current value, in dispatch order.

        No change is handed to an adapter while ``use`` runs, so a client
        sent these values as a snapshot cannot miss a later change.
        """
        with self._dispatch_lock:
            use(self.values())

    def set(self, control_id: object, raw: object, origin: Origin) -> Applied:
        """Check ``raw``, store it and hand it to every adapter.

        Raises :class:`UnknownControl` or :class:`InvalidValue`; nothing is
        stored then. A value equal to the stored one is not fanned out.
        """
        while True:
            control = self.control(control_id)
            value = normalize(control, raw)
            if control.trigger:
                return self._fire(control, value, origin)
            with self._lock:
                if self.controls.get(control.id) is not control:
                    continue  # a reload replaced or removed it since the check: checked again
                if control.id in self._displaced:
                    held = self._values[control.id]
                    # Moved: kept no more. To the value it has, only by hand or with another value asked for
                    # (a desk or a motor fader confirming what the reload sent it is no move).
                    if origin.kind in BY_HAND or not same_value(held, value) or not same_value(held, raw):
                        del self._displaced[control.id]
                        self.version += 1  # the state file's before_reload drops it too
                if same_value(self._values[control.id], value):
                    return Applied(
                        control, self._values[control.id], changed=False, adjusted=not same_value(value, raw)
                    )
                self._values[control.id] = value
                self.version += 1
                self._outbox.append(Change(control, value, origin))
            break
        self._dispatch()
        return Applied(control, value, changed=True, adjusted=not same_value(value, raw))

    def _fire(self, control: Control, value: Value, origin: Origin) -> Applied:
        """A trigger: a press goes to every adapter and is never stored; a release does nothing."""
        if not value:
            return Applied(control, 0, changed=False)
        with self._lock:
            self._outbox.append(Change(control, 1, origin))
        self._dispatch()
        return Applied(control, 1, changed=True)

    def reshape(
        self, controls: Iterable[Control], apply: Callable[[Reshaped], None], carried: Mapping[str, str] | None = None
    ) -> Reshaped:
        """Take a new set of controls, keeping every value that still fits; ``apply`` runs before any later change.

        A control whose id stays keeps its value (clamped or stepped into a
        new range; reset to its new default when its new definition refuses
        it). A new control starts from its parked value (the state file's
        at start, or the one it had before a reload removed it), else from
        its default. A removed control's value is parked for when it comes
        back. A control a reload had to change, and that nothing moved
        since, is taken from its value before that reload: a range narrowed
        by a typo and put right gives the fader its value back. ``apply`` (the
        adapters taking the new controls) runs under the dispatch lock, so
        no change reaches an adapter between the new controls and it; the
        values that had to change then go to every adapter. ``carried``: new id -> old id, controls
        renamed (the editor): each starts from the old one's value, and what was kept for it, and that
        value goes to every adapter, at the new address; the old id parks nothing.
        """
        fresh = {c.id: c for c in controls}
        with self._dispatch_lock:
            self._drain()  # what was stored under the old controls goes out under them
            with self._lock:
                old, values = self.controls, self._values
                kept = [cid for cid in fresh if cid in old]
                added = tuple(cid for cid in fresh if cid not in old)
                removed = tuple(cid for cid in old if cid not in fresh)
                # Where a table stands in the file is no part of what it is: a control added above
                # another does not redefine it (it stopped its fade, and its MIDI learn).
                redefined = tuple(cid for cid in kept if replace(fresh[cid], where="") != replace(old[cid], where=""))
                new_values: dict[str, Value] = {}
                adjusted: dict[str, tuple[Value, Value]] = {}
                recalled: dict[str, Value] = {}
                displaced, self._displaced = self._displaced, {}
                renames = {new: was for new, was in (carried or {}).items() if new in added and was in removed}
                for cid, control in fresh.items():
                    source = renames.get(cid, cid)
                    if source in old:
                        before = values[source]
                        self._parked.pop(cid, None)  # (renamed into a parked id: the rename's value wins)
                    else:
                        before = self._parked.pop(cid, control.default)
                    wanted = displaced.get(source, before)
                    now = control.default
                    # The value before an earlier reload first; when this definition refuses it, the value now.
                    for candidate in (wanted, before) if source in displaced else (before,):
                        try:
                            now = normalize(control, candidate)
                            break
                        except InvalidValue:
                            continue
                    if control.trigger:
                        now = wanted = control.default
                    new_values[cid] = now
                    if not same_value(now, wanted):
                        self._displaced[cid] = wanted
                    if source in old and not same_value(now, before):
                        adjusted[cid] = (before, now)
                        if source in displaced:
                            recalled[cid] = wanted
                for cid in removed:
                    if cid not in renames.values():
                        self._parked[cid] = displaced.get(cid, values[cid])
                self.controls, self._values = fresh, new_values
                self.version += 1
                for cid, (_before, now) in adjusted.items():
                    self._outbox.append(Change(fresh[cid], now, RELOAD))
                for cid in renames:
                    if cid not in adjusted and not fresh[cid].trigger:
                        self._outbox.append(Change(fresh[cid], new_values[cid], RELOAD))  # told at its new address
            reshaped = Reshaped(added, removed, redefined, adjusted, recalled, renames)
            apply(reshaped)
            self._drain()
        return reshaped

    def displace(self, values: Mapping[str, Value]) -> None:
        """Values a start or a reload had to change (the state file's), for a reload that takes them again."""
        with self._lock:
            self._displaced.update((cid, value) for cid, value in values.items() if cid in self.controls)

    def displaced(self) -> dict[str, Value]:
        """Controls a reload had to change and nobody moved since: their values before it."""
        with self._lock:
            return dict(self._displaced)

    def park(self, values: Mapping[str, Value]) -> None:
        """Keep values of controls the config does not have (from the state file) for when it does."""
        with self._lock:
            for cid, value in values.items():
                if cid not in self.controls:
                    self._parked[cid] = value

    def send_test(self, cid: str, adapters: Iterable[Adapter]) -> Value:
        """Hand ``cid``'s stored value to ``adapters`` once more (the editor's "send test"), in dispatch order.

        Nothing is stored and no other adapter sees it; an adapter that skips
        a value its device shows already sends it anyway (origin ``test``).
        """
        with self._dispatch_lock:
            control = self.controls.get(cid)
            if control is None:
                raise UnknownControl(cid)
            value = self.get(cid)
            _hand(Change(control, value, TEST), adapters)
        return value

    def parked(self) -> dict[str, Value]:
        """Values of controls a reload removed (kept in the state file for when they come back)."""
        with self._lock:
            return dict(self._parked)

    def _dispatch(self) -> None:
        # Whoever holds the dispatch lock drains the outbox in store order,
        # including changes queued by other threads meanwhile.
        with self._dispatch_lock:
            self._drain()

    def _drain(self) -> None:
        """Hand every queued change to every adapter (under the dispatch lock)."""
        while True:
            try:
                change = self._outbox.popleft()
            except IndexError:
                return
            _hand(change, self._handing)


class Held:
    """Stands in the hub for an adapter a reload restarts, from before the old one stops until the
    new one runs (its ports are the old one's: they cannot both be open): keeps every change handed
    to it, in order, for :meth:`Hub.hand_over`. Before, a change made in that moment was lost: a
    fader moved once then stayed wrong on the desk."""

    #: At most this many changes are kept (a reload waiting on a slow name lookup, a flood meanwhile).
    KEEP = 10_000
    #: A trigger's press (a GO) older than this (seconds) when the new side runs is not handed on:
    #: a cue fired late is worse than one not fired.
    FIRE_WITHIN = 0.5

    def __init__(self, name: str) -> None:
        self.name = name
        self._changes: deque[tuple[Change, float]] = deque(maxlen=self.KEEP)

    def start(self) -> None:
        """Nothing to open."""

    def stop(self) -> None:
        """Nothing to close."""

    def send(self, change: Change) -> None:
        self._changes.append((change, time.monotonic()))  # (under the hub's dispatch lock)

    def take(self) -> list[Change]:
        now = time.monotonic()
        changes = [c for c, at in self._changes if not c.control.trigger or now - at <= self.FIRE_WITHIN]
        self._changes.clear()
        return changes


def _hand(change: Change, adapters: Iterable[Adapter]) -> None:
    """Give ``change`` to each of ``adapters``; one's fault never stops the others."""
    for adapter in adapters:
        try:
            adapter.send(change)
        except Exception:
            log.exception("adapter %s failed to send %s", adapter.name, change.control_id)


def same_value(a: object, b: object) -> bool:
    """Equal as JSON sees values: 25 and 25.0 are one number, True is 1, "1" is not 1."""
    if isinstance(a, str) or isinstance(b, str):
        return type(a) is type(b) and a == b
    return a == b
