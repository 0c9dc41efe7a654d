"""MIDI at the edge: values <-> 7/14-bit numbers, messages <-> controls.

Pure translation, no ports: a control's value becomes a MIDI number
(0-127, or 0-16383 for 14-bit Control Change and pitch bend) and back, and a
message is looked up in a table keyed the way the config names a slot
(kind, channel 1-16, number).

Scaling is linear between the control's min-max and 0-top, rounded to the
nearest MIDI number, with the ends mapped to the ends exactly. Coming in, the
value is then snapped to the control's step like any other input. What
survives a round trip:

* every MIDI number, when the control can tell them apart: a continuous
  range, or a step finer than one MIDI number (``step * top < max - min``);
* every value on the step grid, when the grid is coarser than MIDI (a
  0-50 range with step 1 has 51 values for 128 numbers);
* for any range, one trip settles it: ``value -> MIDI -> value`` gives a
  value that the next trip leaves unchanged, and likewise ``MIDI -> value ->
  MIDI`` for numbers.

``tests/test_midi_codec.py`` checks these with Hypothesis on random ranges and
steps.

Toggles and buttons are 0 or 1: they send 0 or top, and any number from the
upper half (64-127, 8192-16383) reads as 1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import mido

from bridge.mapping import from_wire, to_wire
from bridge.model import Control, MidiBinding, Value
from bridge.validation import snap

log = logging.getLogger(__name__)

SEVEN_BIT_TOP = 127
#: The most messages one change takes: an NRPN trigger's hit (the press's four, then the release's).
MOST_MESSAGES = 8
FOURTEEN_BIT_TOP = 16383
#: mido's pitch is -8192..8191; the MIDI number on the wire is pitch + 8192.
PITCH_OFFSET = 8192
#: A 14-bit CC sends its low 7 bits on this CC number plus the MSB's.
LSB_OFFSET = 32
#: NRPN: the parameter's MSB and LSB, then the value's (data entry) MSB and LSB.
NRPN_MSB, NRPN_LSB, DATA_MSB, DATA_LSB = 99, 98, 6, 38
#: CCs that carry NRPNs on a channel: parameter MSB and LSB, data entry MSB and LSB.
NRPN_CARRIERS = (NRPN_MSB, NRPN_LSB, DATA_MSB, DATA_LSB)
#: RPN's parameter CCs: once one is seen, data entry is an RPN's, no NRPN's.
RPN_MSB, RPN_LSB = 101, 100

#: (kind, channel 1-16, number) as in the config; pitch bend has number 0.
Slot = tuple[str, int, int]
Part = Literal["whole", "msb", "lsb"]


#: The kinds of binding whose numbers are 14 bits.
FOURTEEN_BIT_KINDS = ("cc14", "pitchbend", "nrpn")


def top(binding: MidiBinding) -> int:
    """The largest MIDI number of ``binding``: 127, or 16383 for 14-bit kinds."""
    return kind_top(binding.kind)


def kind_top(kind: str) -> int:
    """The largest MIDI number of a binding of ``kind``."""
    return FOURTEEN_BIT_TOP if kind in FOURTEEN_BIT_KINDS else SEVEN_BIT_TOP


def to_midi(control: Control, value: Value, top_number: int) -> int:
    """``value`` of ``control`` as a MIDI number 0..``top_number`` (clamped, ends exact).

    A range, knob or meter is scaled from min..max (through the binding's
    ``range`` and ``curve`` when it has them); a switch is its ``on``/``off``
    when those are MIDI numbers, else top/0; a select is its option's share
    of 0..top; a label or a coloured LED sends its number as it is.
    """
    scale = control.midi.scale if control.midi is not None else None
    if control.midi is not None and control.midi.kind == "program":
        return 0 if isinstance(value, str) else min(max(round(value), 0), SEVEN_BIT_TOP)  # the number as it is
    if control.switch:
        return _switch_number(control, bool(value), top_number)
    if control.type == "select":
        index = control.option_index(value) or 0
        return round(index * top_number / max(1, len(control.options) - 1))
    if isinstance(value, str):
        return 0
    if not control.numeric:
        return min(max(round(value), 0), top_number)
    if scale is not None:
        return min(max(round(to_wire(scale, control.min, control.max, float(value))), 0), top_number)
    if value <= control.min:
        return 0
    if value >= control.max:
        return top_number
    number = round((value - control.min) / (control.max - control.min) * top_number)
    return min(max(number, 0), top_number)


def about(message: mido.Message) -> tuple[int, ...]:
    """What a message is about, for the echo memory: its status with its note or controller number (a
    pitch bend, a program change: its status), so that a clock or another fader in between is not."""
    data = message.bytes()
    return tuple(data[:2]) if len(data) == 3 and message.type != "pitchwheel" else tuple(data[:1])


def same_number(control: Control, a: Value, b: Value) -> bool:
    """Whether ``a`` and ``b`` are one MIDI number on ``control``'s binding: what came in is the number its
    value goes out as (a motor fader reporting where it was sent), so taking it would only round the value."""
    binding = control.midi
    return binding is not None and to_midi(control, a, top(binding)) == to_midi(control, b, top(binding))


def from_midi(control: Control, number: int, top_number: int) -> Value:
    """MIDI ``number`` (0..``top_number``) as the value ``control`` stores."""
    if control.switch:
        for state in (1, 0):
            payload = control.on if state else control.off
            if _is_number(payload, top_number) and number == payload:
                return state
        # The upper half is on, as a fader's switch point.
        return 1 if 2 * number >= top_number else 0
    if control.type == "select":
        return control.options[round(number * (len(control.options) - 1) / top_number)].value
    if not control.numeric:
        return number
    scale = control.midi.scale if control.midi is not None else None
    if scale is not None:
        return snap(control, from_wire(scale, control.min, control.max, float(number)))
    if number <= 0:
        raw = control.min
    elif number >= top_number:
        raw = control.max
    else:
        raw = control.min + (control.max - control.min) * number / top_number
    return snap(control, raw)


def _switch_number(control: Control, on: bool, top_number: int) -> int:
    payload = control.on if on else control.off
    if _is_number(payload, top_number):
        return int(payload)  # type: ignore[arg-type]
    return top_number if on else 0


def _is_number(payload: object, top_number: int) -> bool:
    return isinstance(payload, int) and not isinstance(payload, bool) and 0 <= payload <= top_number


def slots(binding: MidiBinding) -> list[tuple[Slot, Part]]:
    """The slots ``binding`` listens on, and which part of the value each carries."""
    if binding.kind == "cc14":
        return [
            (("cc", binding.channel, binding.number), "msb"),
            (("cc", binding.channel, binding.number + LSB_OFFSET), "lsb"),
        ]
    if binding.kind in ("pitchbend", "program"):
        return [((binding.kind, binding.channel, 0), "whole")]
    return [((binding.kind, binding.channel, binding.number), "whole")]


def slot_of(message: mido.Message) -> Slot | None:
    """The slot a channel message arrives on; None for anything else (clock, sysex...)."""
    kind = message.type
    if kind == "control_change":
        return ("cc", message.channel + 1, message.control)
    if kind in ("note_on", "note_off"):
        return ("note", message.channel + 1, message.note)
    if kind == "pitchwheel":
        return ("pitchbend", message.channel + 1, 0)
    if kind == "program_change":
        return ("program", message.channel + 1, 0)
    return None


@dataclass(frozen=True)
class Listener:
    """One entry of the input table: a control listening on a slot, and the part of its value it carries."""

    control: Control
    part: Part


def input_table(controls: Iterable[Control]) -> dict[Slot, Listener]:
    """Every slot a control listens on, like mido's spec tables: one lookup per message."""
    table: dict[Slot, Listener] = {}
    for control in controls:
        if control.midi is None:
            continue
        for slot, part in slots(control.midi):
            table[slot] = Listener(control, part)
    return table


#: Bindings on which a trigger's press goes out as a hit (press, then release), as a pad sends it.
HIT_KINDS = ("note", "cc", "cc14")


def has_midi_form(control: Control, value: Value) -> bool:
    """Text has none (a label showing words, say); everything else is a MIDI number."""
    return not isinstance(value, str) or control.type == "select"


def outgoing(control: Control, value: Value) -> tuple[int | None, tuple[mido.Message, ...]]:
    """What ``value`` of a bound ``control`` sends: its MIDI number (None for a trigger's press: an event,
    never "shown already") and the messages. On a note or CC a press is a hit: the release follows, so
    no note hangs on a synth and a receiver that waits for the button to come up sees the next press."""
    number, messages = encode(control, value)
    if not control.trigger:
        return number, messages
    assert control.midi is not None  # noqa: S101 - encode refused it otherwise
    if control.midi.kind in HIT_KINDS:
        messages += encode(control, 0)[1]
    return None, messages


def encode(control: Control, value: Value) -> tuple[int, tuple[mido.Message, ...]]:
    """The MIDI number for ``value`` and the messages that carry it.

    A 14-bit CC is MSB then LSB. A note is ``note_on`` with the number as its
    velocity (127 for a toggle or button at 1), or ``note_off`` (velocity 0)
    for 0, which every controller reads as "LED off".
    """
    binding = control.midi
    if binding is None:
        raise ValueError(f"{control.id} has no MIDI mapping (binding)")
    if isinstance(value, str) and control.type != "select":
        raise ValueError(f"{control.id}: text has no MIDI form")
    number = to_midi(control, value, top(binding))
    channel = binding.channel - 1
    if binding.kind == "cc":
        return number, (mido.Message("control_change", channel=channel, control=binding.number, value=number),)
    if binding.kind == "cc14":
        return number, (
            mido.Message("control_change", channel=channel, control=binding.number, value=number >> 7),
            mido.Message("control_change", channel=channel, control=binding.number + LSB_OFFSET, value=number & 0x7F),
        )
    if binding.kind == "note":
        if number > 0:
            return number, (mido.Message("note_on", channel=channel, note=binding.number, velocity=number),)
        return number, (mido.Message("note_off", channel=channel, note=binding.number, velocity=0),)
    if binding.kind == "program":
        return number, (mido.Message("program_change", channel=channel, program=number),)
    if binding.kind == "nrpn":
        parameter = binding.number
        return number, (
            mido.Message("control_change", channel=channel, control=NRPN_MSB, value=parameter >> 7),
            mido.Message("control_change", channel=channel, control=NRPN_LSB, value=parameter & 0x7F),
            mido.Message("control_change", channel=channel, control=DATA_MSB, value=number >> 7),
            mido.Message("control_change", channel=channel, control=DATA_LSB, value=number & 0x7F),
        )
    return number, (mido.Message("pitchwheel", channel=channel, pitch=number - PITCH_OFFSET),)


class Decoder:
    """Turns incoming messages into (control, value) pairs.

    It remembers the last MSB of each 14-bit CC, so that a lone LSB (a fine
    move) lands next to it.
    """

    def __init__(self, controls: Iterable[Control]) -> None:
        self.table = input_table(controls)
        self._msb: dict[str, int] = {}
        #: Channels with NRPN bindings: their CC 99/98/6/38 are read as NRPNs.
        self._nrpn_channels = {slot[1] for slot in self.table if slot[0] == "nrpn"}
        self._nrpn: dict[int, _Nrpn] = {}

    def decode(
        self, messages: Sequence[mido.Message], current: Callable[[Control], Value]
    ) -> Iterator[tuple[Control, Value]]:
        """Yield the value each message sets, in order; unmapped messages are skipped.

        Lazy on purpose: ``current`` (the stored value, for a toggle's flip or
        a lone LSB) is asked when a pair is produced, so a caller that stores
        each pair before taking the next sees two flips in a row cancel out.

        14-bit CC: an MSB sets the value at once with its LSB taken as 0 (as
        the MIDI spec asks of a receiver), so a 7-bit-only fader still moves;
        an MSB directly followed by its LSB in ``messages`` sets the value
        once, with no coarse step in between. A lone MSB that is the value's
        own (a motor fader reporting where it was sent, its LSB in the next
        read) stands for the value itself: taken with an LSB of 0 it dipped
        the value, and the LSB then left it a hair off.
        """
        i = 0
        while i < len(messages):
            message = messages[i]
            i += 1
            slot = slot_of(message)
            if slot is None:
                continue  # clock, sysex, ...: not a control's business, and too frequent to log
            if slot[0] == "cc" and slot[1] in self._nrpn_channels and slot[2] in _NRPN_CCS:
                found, used = self._nrpn_step(message, messages[i] if i < len(messages) else None, current)
                i += used
                if found is not None:
                    yield found
                continue
            listener = self.table.get(slot)
            if listener is None:
                log.debug("MIDI %s: no control on %s", message, slot)
                continue
            control, binding = listener.control, listener.control.midi
            if binding is None:  # never: only mapped controls are in the table
                continue
            if listener.part == "msb":
                self._msb[control.id] = message.value
                lsb = 0
                if i < len(messages) and _is_lsb_of(messages[i], binding):
                    lsb = messages[i].value
                    i += 1
                elif message.value == to_midi(control, current(control), FOURTEEN_BIT_TOP) >> 7:
                    # A lone MSB within the value's own coarse step: the hardware is at the value (a pickup
                    # fader is picked up), and nothing changes (its LSB, if any, says).
                    yield control, current(control)
                    continue
                yield control, from_midi(control, (message.value << 7) | lsb, FOURTEEN_BIT_TOP)
            elif listener.part == "lsb":
                msb = self._msb.get(control.id)
                if msb is None:
                    msb = to_midi(control, current(control), FOURTEEN_BIT_TOP) >> 7
                yield control, from_midi(control, (msb << 7) | message.value, FOURTEEN_BIT_TOP)
            elif binding.kind == "pitchbend":
                yield control, from_midi(control, message.pitch + PITCH_OFFSET, FOURTEEN_BIT_TOP)
            elif binding.kind == "program":
                yield control, message.program  # the program number as it is
            elif binding.kind == "note":
                pair = _note(control, message, current)
                if pair is not None:
                    yield pair
            else:
                yield control, from_midi(control, message.value, SEVEN_BIT_TOP)

    def _nrpn_step(
        self, message: mido.Message, following: mido.Message | None, current: Callable[[Control], Value]
    ) -> tuple[tuple[Control, Value] | None, int]:
        """One carrier CC of an NRPN: the value it completes (if any), and whether it used ``following``.

        A data entry MSB (CC 6) sets the value at once with its LSB taken as 0,
        or with the LSB (CC 38) that directly follows it; a lone LSB is joined
        to the last MSB, as for a 14-bit CC.
        """
        channel = message.channel + 1
        state = self._nrpn.setdefault(channel, _Nrpn())
        number, value = message.control, message.value
        if number == NRPN_MSB:
            state.msb = value
            return None, 0
        if number == NRPN_LSB:
            state.lsb = value
            return None, 0
        if number in (RPN_MSB, RPN_LSB):
            state.msb = state.lsb = None  # data entry is an RPN's from here on
            return None, 0
        if state.msb is None or state.lsb is None:
            return None, 0  # data entry for no NRPN (an RPN's, or one we never saw the start of)
        listener = self.table.get(("nrpn", channel, state.msb << 7 | state.lsb))
        if listener is None:
            return None, 0
        control = listener.control
        if number == DATA_MSB:
            state.data = value
            lsb = 0
            used = _is_data_lsb(following, message.channel)
            if used and following is not None:
                lsb = following.value
            return (control, from_midi(control, value << 7 | lsb, FOURTEEN_BIT_TOP)), int(used)
        msb = state.data
        if msb is None:
            msb = to_midi(control, current(control), FOURTEEN_BIT_TOP) >> 7
        return (control, from_midi(control, msb << 7 | value, FOURTEEN_BIT_TOP)), 0


_NRPN_CCS = (NRPN_MSB, NRPN_LSB, DATA_MSB, DATA_LSB, RPN_MSB, RPN_LSB)


def _is_data_lsb(message: mido.Message | None, channel: int) -> bool:
    return (
        message is not None
        and message.type == "control_change"
        and message.channel == channel
        and message.control == DATA_LSB
    )


class _Nrpn:
    """Where an NRPN stream stands on one channel."""

    __slots__ = ("msb", "lsb", "data")

    def __init__(self) -> None:
        self.msb: int | None = None
        self.lsb: int | None = None
        self.data: int | None = None


def _note(control: Control, message: mido.Message, current: Callable[[Control], Value]) -> tuple[Control, Value] | None:
    pressed = message.type == "note_on" and message.velocity > 0
    if control.type == "toggle":
        # Each press flips it; the release says nothing.
        return (control, 0 if current(control) else 1) if pressed else None
    if control.type == "button":
        return control, 1 if pressed else 0
    # A range takes the velocity; a release (velocity 0) is the bottom.
    return control, from_midi(control, message.velocity if pressed else 0, SEVEN_BIT_TOP)


def _is_lsb_of(message: mido.Message, binding: MidiBinding) -> bool:
    return (
        message.type == "control_change"
        and message.channel == binding.channel - 1
        and message.control == binding.number + LSB_OFFSET
    )
