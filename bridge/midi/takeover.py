"""Soft takeover: a hardware fader picks a value up instead of jumping to it.

A fader without a motor stays where the performer left it when the value is
changed from elsewhere (a browser, OSC, a scene, the HTTP API). With
``takeover = "jump"`` its next move sets the value at once, and the sound
jumps by the distance between the two. With ``"pickup"``, its moves are
ignored until the hardware reaches the current value: it crosses it between
two successive messages, or comes within one step of it (the control's
step, or one 7-bit MIDI step, counted on the wire: on a ``curve``, a
"log" EQ knob's one step near 20 Hz is a few hertz, near 20 kHz some
hundreds). From then on it is followed again, until the value is changed
elsewhere once more.

At start the hardware's position is unknown and the value was restored or
defaulted, so a pickup fader starts out waiting to be picked up too.

While a fader waits, the value its position stands for is its *ghost*: the
MIDI adapter pushes it to every page, which draws a marker there.

The default is ``"pickup"`` for ranges bound to a Control Change (7- or
14-bit), an NRPN or pitch bend without ``feedback``: a motorized fader that is sent
every change follows the value by itself, and a note is a pad, not a fader.
Everything else jumps.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from bridge.mapping import to_wire
from bridge.midi.codec import top
from bridge.model import Control, MidiBinding, Takeover

#: Values closer than this share one number, whatever the float arithmetic did.
_EPSILON = 1e-9
#: Bindings a hardware fader or knob sends on: pickup by default.
FADER_KINDS = ("cc", "cc14", "nrpn", "pitchbend")
#: A 7-bit MIDI step is this fraction of a range.
_SEVEN_BIT_STEPS = 127


def mode(control: Control, binding: MidiBinding | None) -> Takeover:
    """How ``control`` meets values set elsewhere when bound to ``binding``."""
    if control.takeover is not None:
        return control.takeover
    if control.fader and binding is not None and binding.kind in FADER_KINDS and not binding.feedback:
        return "pickup"
    return "jump"


def near(control: Control, a: float, b: float) -> bool:
    """Whether ``a`` is near enough ``b`` for the hardware to pick it up: within one step of the control,
    or of a 7-bit MIDI step of its binding, counted in MIDI numbers (through its ``range`` and ``curve``)."""
    if abs(a - b) <= control.step + _EPSILON:
        return True
    binding = control.midi
    scale = binding.scale if binding is not None else None
    if binding is None or scale is None:
        return abs(a - b) <= (control.max - control.min) / _SEVEN_BIT_STEPS + _EPSILON
    apart = to_wire(scale, control.min, control.max, a) - to_wire(scale, control.min, control.max, b)
    return abs(apart) <= top(binding) / _SEVEN_BIT_STEPS + _EPSILON


@dataclass
class _Fader:
    """One pickup fader: is it waiting, where the hardware was last, what the pages show."""

    waiting: bool = True
    hardware: float | None = None
    shown: float | None = None  # the ghost the pages show, None for none


#: A ghost to push: the control's id and the hardware's value, or None to remove it.
Ghost = tuple[str, float | None]


class SoftTakeover:
    """The takeover state of every pickup fader, safe to use from any thread.

    The MIDI reader asks :meth:`hardware` about each incoming value; the
    adapter's ``send`` tells :meth:`moved_elsewhere` about every change that
    did not come from the hardware. Both return the ghost to push, if it
    changed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faders: dict[str, _Fader] = {}

    def configure(self, modes: Mapping[str, Takeover]) -> list[Ghost]:
        """Set each control's mode; a control that turns pickup starts waiting.

        A control that stays pickup keeps its state. Returns the ghosts to
        remove (controls that no longer wait with a ghost shown).
        """
        removed: list[Ghost] = []
        with self._lock:
            for cid in list(self._faders):
                if modes.get(cid) != "pickup":
                    if self._faders.pop(cid).shown is not None:
                        removed.append((cid, None))
            for cid, chosen in modes.items():
                if chosen == "pickup" and cid not in self._faders:
                    self._faders[cid] = _Fader()
        return removed

    def reset(self, cid: str) -> Ghost | None:
        """Forget where the hardware is (a new binding): it must be picked up again."""
        with self._lock:
            fader = self._faders.get(cid)
            if fader is None:
                return None
            shown = fader.shown
            self._faders[cid] = _Fader()
        return (cid, None) if shown is not None else None

    def mode(self, cid: str) -> Takeover:
        with self._lock:
            return "pickup" if cid in self._faders else "jump"

    def waiting(self, cid: str) -> bool:
        """True while the hardware of ``cid`` waits to pick the value up."""
        with self._lock:
            fader = self._faders.get(cid)
            return fader is not None and fader.waiting

    def ghosts(self) -> dict[str, float]:
        """Every ghost shown now, by control id."""
        with self._lock:
            return {cid: f.shown for cid, f in self._faders.items() if f.shown is not None}

    def moved_elsewhere(self, cid: str, value: object = None, control: Control | None = None) -> Ghost | None:
        """The value of ``cid`` was changed (to ``value``) by something other than its hardware."""
        with self._lock:
            fader = self._faders.get(cid)
            if fader is None:
                return None
            if fader.hardware is not None and isinstance(value, int | float) and control is not None:
                if near(control, fader.hardware, value):
                    # Set to where the hardware stands: picked up already (it would have to come
                    # back from one side, however it moved from there).
                    fader.waiting = False
                    if fader.shown is None:
                        return None
                    fader.shown = None
                    return cid, None
            fader.waiting = True
            if fader.hardware is None or fader.shown == fader.hardware:
                return None  # where the hardware is, nobody knows yet
            fader.shown = fader.hardware
            return cid, fader.shown

    def hardware(self, control: Control, value: float, current: float) -> tuple[bool, Ghost | None]:
        """The hardware of ``control`` stands for ``value`` now; should it set the control?

        Returns whether to apply ``value`` and the ghost to push, if any.
        """
        with self._lock:
            fader = self._faders.get(control.id)
            if fader is None:
                return True, None
            before, fader.hardware = fader.hardware, value
            if fader.waiting:
                crossed = before is not None and (before - current) * (value - current) <= 0
                if not (near(control, value, current) or crossed):
                    if fader.shown == value:
                        return False, None
                    fader.shown = value
                    return False, (control.id, value)
                fader.waiting = False
            if fader.shown is None:
                return True, None
            fader.shown = None
            return True, (control.id, None)
