"""MIDI scaling and message tables, without ports.

The round-trip properties are the ones ``bridge.midi.codec`` states: every MIDI
number survives when the control can tell the numbers apart, every value on
a coarse step grid survives, and one trip settles any value. Ranges are
drawn with ends within +-1e6 and a span of at least 1e-3, where a float has
hundreds of steps per 14-bit MIDI number.
"""

from __future__ import annotations

import math

import mido
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bridge.midi.codec import (
    FOURTEEN_BIT_TOP,
    SEVEN_BIT_TOP,
    Decoder,
    encode,
    from_midi,
    input_table,
    slot_of,
    to_midi,
)
from bridge.model import Control, MidiBinding, Value
from bridge.validation import normalize, snap

pytestmark = pytest.mark.unit

TOPS = st.sampled_from([SEVEN_BIT_TOP, FOURTEEN_BIT_TOP])


@st.composite
def ranges(draw: st.DrawFn) -> Control:
    """A range control as the config allows it: min < max, 0 <= step <= max - min."""
    if draw(st.booleans()):
        lo: float = draw(st.integers(-1000, 1000))
        span: float = draw(st.integers(1, 100_000))
        step: float = draw(st.sampled_from([0, 1, 2, 5, 10]))
        step = min(step, span)
    else:
        # Ends with at most 6 decimals, as people write them.
        lo = round(draw(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)), 6)
        span = round(draw(st.floats(1e-3, 1e6, allow_nan=False, allow_infinity=False)), 6)
        kind = draw(st.sampled_from(["continuous", "fraction", "any"]))
        if kind == "continuous":
            step = 0.0
        elif kind == "fraction":
            step = span / draw(st.integers(1, 40_000))
        else:
            # The config refuses steps below a billionth of the span.
            step = draw(st.floats(span * 1e-9, span, allow_nan=False, allow_infinity=False))
    hi = round(lo + span, 6)
    assume(hi > lo)
    control = Control("r", "range", "R", lo, "/r", min=float(lo), max=float(hi), step=float(step))
    return control


def trip(control: Control, value: float, top: int) -> Value:
    """Value -> MIDI -> value."""
    return from_midi(control, to_midi(control, value, top), top)


def grid(control: Control) -> list[Value]:
    """Every value a stepped range can store."""
    count = math.floor((control.max - control.min) / control.step + 1e-9)
    points = {snap(control, control.min + k * control.step) for k in range(count + 1)}
    points.add(snap(control, control.max))
    return sorted(points)


def tells_every_number_apart(control: Control, top: int) -> bool:
    return control.step == 0 or control.step * top < control.max - control.min


@settings(max_examples=300, deadline=None)
@given(control=ranges(), top=TOPS)
def test_ends_map_to_ends_exactly(control: Control, top: int) -> None:
    assert to_midi(control, control.min, top) == 0
    assert to_midi(control, control.max, top) == top
    assert from_midi(control, 0, top) == snap(control, control.min) == normalize(control, control.min)
    assert from_midi(control, top, top) == snap(control, control.max)


@settings(max_examples=300, deadline=None)
@given(control=ranges())
def test_every_7_bit_number_survives_when_the_range_tells_them_apart(control: Control) -> None:
    assume(tells_every_number_apart(control, SEVEN_BIT_TOP))
    for number in range(SEVEN_BIT_TOP + 1):
        value = from_midi(control, number, SEVEN_BIT_TOP)
        assert normalize(control, value) == value  # a value the control stores as is
        assert to_midi(control, float(value), SEVEN_BIT_TOP) == number


@settings(max_examples=300, deadline=None)
@given(control=ranges(), numbers=st.lists(st.integers(0, FOURTEEN_BIT_TOP), min_size=1, max_size=64))
def test_every_14_bit_number_survives_when_the_range_tells_them_apart(control: Control, numbers: list[int]) -> None:
    assume(tells_every_number_apart(control, FOURTEEN_BIT_TOP))
    for number in [0, 1, FOURTEEN_BIT_TOP - 1, FOURTEEN_BIT_TOP, *numbers]:
        assert to_midi(control, float(from_midi(control, number, FOURTEEN_BIT_TOP)), FOURTEEN_BIT_TOP) == number


@settings(max_examples=300, deadline=None)
@given(control=ranges(), top=TOPS)
def test_every_grid_value_survives_when_the_grid_is_coarser_than_midi(control: Control, top: int) -> None:
    assume(control.step > 0 and not tells_every_number_apart(control, top))
    for value in grid(control):
        assert trip(control, float(value), top) == value


@settings(max_examples=400, deadline=None)
@given(control=ranges(), top=TOPS, where=st.floats(-0.1, 1.1), number=st.integers(0, FOURTEEN_BIT_TOP))
def test_one_trip_settles_any_value_and_any_number(control: Control, top: int, where: float, number: int) -> None:
    value = control.min + where * (control.max - control.min)
    once = trip(control, value, top)
    assert control.min <= once <= control.max
    assert trip(control, float(once), top) == once
    number = min(number, top)
    settled = to_midi(control, float(from_midi(control, number, top)), top)
    assert to_midi(control, float(from_midi(control, settled, top)), top) == settled


@settings(max_examples=200, deadline=None)
@given(control=ranges(), top=TOPS, a=st.floats(-0.1, 1.1), b=st.floats(-0.1, 1.1))
def test_scaling_keeps_order(control: Control, top: int, a: float, b: float) -> None:
    span = control.max - control.min
    low, high = sorted((control.min + a * span, control.min + b * span))
    assert 0 <= to_midi(control, low, top) <= to_midi(control, high, top) <= top


# -- the test config's controls -------------------------------------------------
SLIDER = Control("slider1", "range", "S", 25, "/s", 0, 50, 1, MidiBinding(1, "cc", 1))
FINE = Control("fine", "range", "F", 0.0, "/f", -1.0, 1.0, 0.0, MidiBinding(2, "cc14", 7))
BEND = Control("bend", "range", "B", 0.5, "/b", 0.0, 1.0, 0.0, MidiBinding(3, "pitchbend"))
TOGGLE = Control("toggle1", "toggle", "T", 0, "/t", midi=MidiBinding(1, "note", 60, feedback=True))
BUTTON = Control("button1", "button", "B", 0, "/b1", midi=MidiBinding(1, "note", 61, feedback=True))
PAD = Control("pad", "range", "P", 0.0, "/p", 0.0, 1.0, 0.0, MidiBinding(10, "note", 36))
SWITCH_CC = Control("sw", "toggle", "W", 0, "/w", midi=MidiBinding(5, "cc", 64))
CONTROLS = [SLIDER, FINE, BEND, TOGGLE, BUTTON, PAD, SWITCH_CC]


def cc(channel: int, control: int, value: int) -> mido.Message:
    return mido.Message("control_change", channel=channel - 1, control=control, value=value)


def note_on(channel: int, note: int, velocity: int) -> mido.Message:
    return mido.Message("note_on", channel=channel - 1, note=note, velocity=velocity)


def note_off(channel: int, note: int) -> mido.Message:
    return mido.Message("note_off", channel=channel - 1, note=note)


@pytest.mark.parametrize(
    ("control", "value", "number", "messages"),
    [
        (SLIDER, 40, 102, [cc(1, 1, 102)]),
        (SLIDER, 0, 0, [cc(1, 1, 0)]),
        (SLIDER, 50, 127, [cc(1, 1, 127)]),
        (FINE, 1.0, 16383, [cc(2, 7, 127), cc(2, 39, 127)]),
        (FINE, 0.5, 12287, [cc(2, 7, 95), cc(2, 39, 127)]),
        (BEND, 0.0, 0, [mido.Message("pitchwheel", channel=2, pitch=-8192)]),
        (BEND, 1.0, 16383, [mido.Message("pitchwheel", channel=2, pitch=8191)]),
        (TOGGLE, 1, 127, [note_on(1, 60, 127)]),
        (TOGGLE, 0, 0, [mido.Message("note_off", channel=0, note=60, velocity=0)]),
        (PAD, 0.5, 64, [note_on(10, 36, 64)]),
        (SWITCH_CC, 1, 127, [cc(5, 64, 127)]),
    ],
)
def test_encode_gives_the_messages_on_the_wire(
    control: Control, value: Value, number: int, messages: list[mido.Message]
) -> None:
    assert encode(control, value) == (number, tuple(messages))


def test_encode_refuses_what_has_no_midi_form() -> None:
    with pytest.raises(ValueError, match="no MIDI mapping"):
        encode(Control("x", "range", "X", 0, "/x"), 1)
    with pytest.raises(ValueError, match="text"):
        encode(SLIDER, "loud")


def test_input_table_holds_both_halves_of_a_14_bit_cc() -> None:
    table = input_table(CONTROLS)
    assert table[("cc", 2, 7)].part == "msb" and table[("cc", 2, 39)].part == "lsb"
    assert table[("pitchbend", 3, 0)].control is BEND
    assert table[("note", 1, 60)].control is TOGGLE
    assert slot_of(mido.Message("clock")) is None


def decode_all(messages: list[mido.Message], values: dict[str, Value] | None = None) -> list[tuple[str, Value]]:
    """Decode as the adapter does: each pair is stored before the next is asked for."""
    store: dict[str, Value] = {c.id: c.default for c in CONTROLS} | (values or {})
    out = []
    for control, value in Decoder(CONTROLS).decode(messages, lambda c: store[c.id]):
        store[control.id] = value
        out.append((control.id, value))
    return out


def test_decode_scales_each_kind() -> None:
    assert decode_all([cc(1, 1, 102), cc(1, 1, 127), cc(1, 1, 0)]) == [("slider1", 40), ("slider1", 50), ("slider1", 0)]
    assert decode_all([mido.Message("pitchwheel", channel=2, pitch=8191)]) == [("bend", 1.0)]
    assert decode_all([mido.Message("pitchwheel", channel=2, pitch=-8192)]) == [("bend", 0.0)]
    assert decode_all([note_on(10, 36, 127), note_off(10, 36)]) == [("pad", 1.0), ("pad", 0.0)]
    assert decode_all([cc(5, 64, 64), cc(5, 64, 63)]) == [("sw", 1), ("sw", 0)]


def test_unmapped_and_system_messages_are_skipped() -> None:
    assert decode_all([cc(16, 1, 5), note_on(1, 99, 10), mido.Message("clock"), mido.Message("sysex", data=[1])]) == []


def test_toggle_flips_on_each_press_and_ignores_releases() -> None:
    presses = [note_on(1, 60, 100), note_off(1, 60), note_on(1, 60, 90), note_on(1, 60, 0), note_on(1, 60, 1)]
    assert decode_all(presses) == [("toggle1", 1), ("toggle1", 0), ("toggle1", 1)]


def test_button_follows_press_and_release() -> None:
    messages = [note_on(1, 61, 100), note_off(1, 61), note_on(1, 61, 5), note_on(1, 61, 0)]
    assert decode_all(messages) == [("button1", 1), ("button1", 0), ("button1", 1), ("button1", 0)]


def test_14_bit_msb_then_lsb_sets_once_and_a_lone_msb_moves_at_once() -> None:
    assert decode_all([cc(2, 7, 95), cc(2, 39, 127)]) == [("fine", from_midi(FINE, 12287, FOURTEEN_BIT_TOP))]
    # A 7-bit-only fader: the LSB is 0, as the MIDI spec tells a receiver.
    assert decode_all([cc(2, 7, 127)]) == [("fine", from_midi(FINE, 127 << 7, FOURTEEN_BIT_TOP))]


def test_14_bit_lone_lsb_lands_next_to_the_last_msb() -> None:
    decoder = Decoder(CONTROLS)
    store: dict[str, Value] = {"fine": 0.0}
    first = list(decoder.decode([cc(2, 7, 100)], lambda c: store[c.id]))
    assert first == [(FINE, from_midi(FINE, 100 << 7, FOURTEEN_BIT_TOP))]
    fine_move = list(decoder.decode([cc(2, 39, 5)], lambda c: store[c.id]))
    assert fine_move == [(FINE, from_midi(FINE, (100 << 7) | 5, FOURTEEN_BIT_TOP))]


def test_14_bit_lsb_before_any_msb_uses_the_stored_value() -> None:
    # Stored 0.5 is 12287 = MSB 95; a fine move keeps that MSB.
    got = decode_all([cc(2, 39, 0)], {"fine": 0.5})
    assert got == [("fine", from_midi(FINE, 95 << 7, FOURTEEN_BIT_TOP))]
