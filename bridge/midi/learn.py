"""MIDI learn: which message a control listens to, chosen by moving the hardware.

Two parts, both without ports:

* :class:`Learner` watches the messages coming in while a control waits to
  be bound and decides what the performer moved: a Control Change, a note,
  pitch bend, or a 14-bit pair (CC n and n+32 seen together within
  :data:`PAIR_WINDOW`).
* :class:`BindingStore` keeps the learned bindings in a JSON file beside the
  config (``<config name>.mappings.json``), written atomically. Its entries
  override the config's ``midi`` tables control by control; ``null`` means
  "unbound here, whatever the config says". The config file itself is never
  written: it is the user's, with its comments and layout.

The file holds one table per control in the config's own words, so an entry
can be copied into the config as it is::

    {"version": 1, "bindings": {"fader1": {"channel": 1, "cc": 7},
                                "fine": {"channel": 1, "cc": 10, "hires": true},
                                "slider2": null}}
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mido

from bridge.config.controls import parse_midi_binding
from bridge.config.wire import takes_program
from bridge.errors import ConfigError
from bridge.midi.codec import DATA_LSB, DATA_MSB, LSB_OFFSET, NRPN_CARRIERS, NRPN_LSB, NRPN_MSB, Slot, slots
from bridge.model import Control, MidiBinding
from bridge.state import SavedFile, read_document

log = logging.getLogger(__name__)

#: Seconds to wait after a CC 0-63 for its partner (n+32 or n-32) before taking it as 7-bit.
PAIR_WINDOW = 0.25
FORMAT_VERSION = 1
#: CC numbers below this may be half of a 14-bit pair (MSB 0-31, LSB 32-63).
_PAIRED_CCS = 2 * LSB_OFFSET


def bindings_path(config_path: Path) -> Path:
    """Where the learned bindings of the config at ``config_path`` live: beside it."""
    return config_path.with_name(f"{config_path.stem}.mappings.json")


def label(binding: MidiBinding | None) -> str:
    """A binding as a performer reads it on the control: "CC 7 ch 1", "Note 36 ch 10"."""
    if binding is None:
        return ""
    if binding.kind == "cc":
        return f"CC {binding.number} ch {binding.channel}"
    if binding.kind == "cc14":
        return f"CC {binding.number}+{binding.number + LSB_OFFSET} ch {binding.channel}"
    if binding.kind == "note":
        return f"Note {binding.number} ch {binding.channel}"
    if binding.kind == "nrpn":
        return f"NRPN {binding.number} ch {binding.channel}"
    if binding.kind == "program":
        return f"Program ch {binding.channel}"
    return f"Pitch bend ch {binding.channel}"


def default_feedback(binding_kind: str, control_type: str) -> bool:
    """The config's default: toggles and buttons on notes light the controller."""
    return binding_kind == "note" and control_type in ("toggle", "button")


def to_table(binding: MidiBinding, control_type: str) -> dict[str, Any]:
    """``binding`` as the config would write its ``midi`` table."""
    table: dict[str, Any] = {"channel": binding.channel}
    if binding.kind in ("pitchbend", "program"):
        table[binding.kind] = True
    elif binding.kind in ("note", "nrpn"):
        table[binding.kind] = binding.number
    else:
        table["cc"] = binding.number
        if binding.kind == "cc14":
            table["hires"] = True
    if binding.feedback != default_feedback(binding.kind, control_type):
        table["feedback"] = binding.feedback
    return table


def describe(binding: MidiBinding | None, control_type: str, learned: bool) -> dict[str, Any] | None:
    """What pages and the HTTP API are told about one control's binding."""
    if binding is None:
        return None
    return {**to_table(binding, control_type), "label": label(binding), "learned": learned}


def overlaps(a: MidiBinding, b: MidiBinding) -> bool:
    """True when ``a`` and ``b`` cannot both be bound: they listen on a slot in common (CC 39 and
    CC 7+39 do), or one is an NRPN and the other a CC that carries the NRPNs of its channel (the
    config refuses both)."""
    mine: set[Slot] = {slot for slot, _part in slots(a)}
    return any(slot in mine for slot, _part in slots(b)) or _carries(a, b) or _carries(b, a)


def _carries(nrpn: MidiBinding, other: MidiBinding) -> bool:
    if nrpn.kind != "nrpn" or other.kind not in ("cc", "cc14") or other.channel != nrpn.channel:
        return False
    return any(slot[2] in NRPN_CARRIERS for slot, _part in slots(other))


# -- the learned bindings on disk ---------------------------------------------------------
class BindingStore:
    """Learned bindings by control id, loaded from and saved to ``path``.

    Entries for controls that are not in the config (a control renamed or
    removed for one show) are kept in the file untouched, and come back to
    life with their control.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._raw: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._file = SavedFile(path, "MIDI bindings")

    def load(self, controls: Mapping[str, Control]) -> dict[str, MidiBinding | None]:
        """Read the file; returns the overrides that fit a control of the config.

        A corrupt file is moved aside with a warning; an entry that does not
        fit its control is left out with a warning (and kept in the file).
        """
        with self._lock:
            self._raw = self._read()
        return self.overrides(controls)

    def overrides(self, controls: Mapping[str, Control]) -> dict[str, MidiBinding | None]:
        """The entries read (and learned since) that fit a control of ``controls``; no disk read."""
        with self._lock:
            raw = dict(self._raw)
        overrides: dict[str, MidiBinding | None] = {}
        for cid, table in raw.items():
            control = controls.get(cid)
            if control is None:
                log.info(
                    "MIDI bindings file %s: no control %r in the config; its binding is kept for later", self.path, cid
                )
                continue
            if table is None:
                overrides[cid] = None
                continue
            if control.type == "text":
                log.warning(
                    "MIDI bindings file %s: %s is a text control, which has no MIDI form; ignored", self.path, cid
                )
                continue
            try:
                overrides[cid] = parse_midi_binding(table, f"bindings.{cid}", control, str(self.path))
            except ConfigError as err:
                log.warning("MIDI bindings file %s; %s keeps its config binding", err, cid)
        return overrides

    def _read(self) -> dict[str, Any]:
        bindings = read_document(self.path, "bindings", "MIDI bindings file", "the config's bindings are used")
        return bindings if bindings is not None else {}

    def rename(self, old: str, new: str) -> bool:
        """A control renamed: its entry (a learned binding, or "unbound") goes to the new id; True when it had one."""
        with self._lock:
            if old not in self._raw:
                return False
            table = self._raw[old]
        self.update({new: table}, removals=[old])
        return True

    def update(self, changes: Mapping[str, dict[str, Any] | None], removals: Iterable[str] = ()) -> bool:
        """Set entries (a ``midi`` table, or None for "unbound") and drop others, then save.

        True when the file is written; False when the disk refused, in which
        case the file keeps its previous content and the entries are written
        as soon as the disk takes them (see :class:`~bridge.state.SavedFile`).
        """
        with self._lock:
            self._raw.update(changes)
            for cid in removals:
                self._raw.pop(cid, None)
            body = {"version": FORMAT_VERSION, "bindings": dict(self._raw)}
            payload = json.dumps(body, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"
            return self._file.write(payload)

    def close(self) -> None:
        """Stop retrying a write that failed (after one last try)."""
        self._file.close()


def effective(
    controls: Iterable[Control], overrides: Mapping[str, MidiBinding | None], where: str
) -> dict[str, MidiBinding | None]:
    """Each control's binding: the learned one, else the config's.

    A config binding on a slot that a learned one took is dropped with a
    warning: the learned one is the newer decision. Two learned bindings on
    one slot (a hand-edited file): the first wins, likewise.
    """
    result: dict[str, MidiBinding | None] = {}
    taken: list[tuple[MidiBinding, str]] = []
    ordered = list(controls)
    learned = [c for c in ordered if c.id in overrides]
    configured = [c for c in ordered if c.id not in overrides]
    for control in learned + configured:
        binding = overrides[control.id] if control.id in overrides else control.midi
        if binding is not None:
            clash = next((cid for other, cid in taken if overlaps(other, binding)), None)
            if clash is not None:
                source = "learned" if control.id in overrides else "config"
                log.warning(
                    "MIDI %s: %s's %s binding %s is already %s's; %s has no MIDI binding",
                    where,
                    control.id,
                    source,
                    label(binding),
                    clash,
                    control.id,
                )
                binding = None
            else:
                taken.append((binding, control.id))
        result[control.id] = binding
    return {c.id: result[c.id] for c in ordered}


# -- watching the hardware ------------------------------------------------------------------
@dataclass(frozen=True)
class Learned:
    """What the learner decided: bind ``control_id`` to ``binding``."""

    control_id: str
    binding: MidiBinding


def program_fits(control: Control) -> bool:
    """Whether ``control`` can carry a program change, as the config would take it bound so."""
    return takes_program(control.type, (control.min, control.max), tuple(o.value for o in control.options))


class Learner:
    """Waits for the performer to move something, for one control at a time.

    :meth:`feed` takes each batch of incoming messages before they are
    decoded and keeps the ones it uses; :meth:`poll` ends the wait for a
    14-bit partner once :data:`PAIR_WINDOW` has passed without one.
    """

    def __init__(self, window: float = PAIR_WINDOW) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._target: Control | None = None
        self._first: tuple[int, int, float] | None = None  # channel (1-16), CC number, when seen
        self._nrpn: dict[int, list[int | None]] = {}  # channel -> [parameter MSB, LSB] seen while learning

    @property
    def target(self) -> str | None:
        """The id of the control waiting to be bound, or None."""
        with self._lock:
            return None if self._target is None else self._target.id

    def start(self, control: Control) -> None:
        with self._lock:
            self._target = control
            self._first = None
            self._nrpn = {}

    def cancel(self) -> str | None:
        """Stop waiting; returns the control that was waiting, if any."""
        with self._lock:
            target, self._target, self._first = self._target, None, None
        return None if target is None else target.id

    def feed(self, messages: Sequence[mido.Message], now: float) -> tuple[Learned | None, list[mido.Message]]:
        """What these messages bind, and the messages left for the controls.

        The message that binds is used up (it set nothing before it was
        bound). Messages of other kinds, or from other hardware while a
        14-bit partner is awaited, pass through.
        """
        rest: list[mido.Message] = []
        with self._lock:
            decided: Learned | None = None
            for message in messages:
                if decided is None and self._target is not None:
                    decided, used = self._take(message, now)
                    if used:
                        continue
                rest.append(message)
            return decided, rest

    def poll(self, now: float) -> Learned | None:
        """A lone CC whose partner never came: bound as a 7-bit CC once the window passed."""
        with self._lock:
            if self._target is None or self._first is None or now - self._first[2] < self.window:
                return None
            channel, number, _ = self._first
            return self._done(MidiBinding(channel, "cc", number))

    # -- under the lock ----------------------------------------------------------------------
    def _take(self, message: mido.Message, now: float) -> tuple[Learned | None, bool]:
        """Whether ``message`` decides the binding, and whether it is used up."""
        kind = message.type
        channel = getattr(message, "channel", 0) + 1
        nrpn = self._nrpn_part(message, channel)
        if nrpn is not None:
            return nrpn
        if self._first is not None:
            first_channel, first, since = self._first
            if now - since >= self.window:
                lone = self._done(MidiBinding(first_channel, "cc", first))
                return lone, False
            if kind != "control_change" or message.channel + 1 != first_channel:
                return None, False
            if message.control == first:
                return None, True  # the same control still moving: keep waiting for its partner
            if message.control == _partner(first):
                return self._done(MidiBinding(first_channel, "cc14", min(first, message.control))), True
            return None, False
        if kind == "control_change":
            if message.control < _PAIRED_CCS:
                self._first = (channel, message.control, now)
                return None, True
            return self._done(MidiBinding(channel, "cc", message.control)), True
        if kind == "note_on" and message.velocity > 0:
            return self._done(MidiBinding(channel, "note", message.note)), True
        if kind == "pitchwheel":
            return self._done(MidiBinding(channel, "pitchbend")), True
        target = self._target
        if kind == "program_change" and target is not None and program_fits(target):
            return self._done(MidiBinding(channel, "program")), True  # (else it could not carry it: not learned)
        return None, False

    def _nrpn_part(self, message: mido.Message, channel: int) -> tuple[Learned | None, bool] | None:
        """An NRPN's parameter (CC 99, 98) is kept; its data entry (CC 6 or 38) then binds it."""
        if message.type != "control_change":
            return None
        if message.control in (NRPN_MSB, NRPN_LSB):
            parts = self._nrpn.setdefault(channel, [None, None])
            parts[0 if message.control == NRPN_MSB else 1] = message.value
            self._first = None  # not the start of a 14-bit pair after all
            return None, True
        msb, lsb = self._nrpn.get(channel, [None, None])
        if message.control in (DATA_MSB, DATA_LSB) and msb is not None and lsb is not None:
            return self._done(MidiBinding(channel, "nrpn", msb << 7 | lsb)), True
        return None

    def _done(self, binding: MidiBinding) -> Learned:
        target = self._target
        assert target is not None  # noqa: S101 - only called while a control waits
        self._target, self._first, self._nrpn = None, None, {}
        feedback = default_feedback(binding.kind, target.type)
        configured = target.midi
        if configured is not None and configured.feedback != default_feedback(configured.kind, target.type):
            feedback = configured.feedback  # chosen in the config (a motorized fader): kept
        return Learned(target.id, MidiBinding(binding.channel, binding.kind, binding.number, feedback))


def _partner(number: int) -> int:
    """The other half of a 14-bit pair: MSB n (0-31) with LSB n+32, and back."""
    return number + LSB_OFFSET if number < LSB_OFFSET else number - LSB_OFFSET
