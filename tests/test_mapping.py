"""Between what the page shows and what the wire carries: curves both ways, float32 as written, OSC templates."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.errors import InvalidValue
from bridge.mapping import float32_as_written, from_wire, to_wire, travel, travel_at
from bridge.model import VALUE, Control, Option, Scale
from bridge.osc.codec import ArgsMismatch, arguments, encode, value_from_args, values_for
from bridge.osc.packets import address_table
from bridge.validation import snap

pytestmark = pytest.mark.unit

#: The Behringer X32 fader law: four linear dB segments over 0..1.
X32 = Scale(0.0, 1.0, "table", ((-90.0, 0.0), (-60.0, 0.0625), (-30.0, 0.25), (-10.0, 0.5), (10.0, 1.0)))


def fader(lo: float, hi: float, step: float = 0.0, scale: Scale | None = None, **kw: object) -> Control:
    return Control("f", "range", "F", lo, "/f", lo, hi, step, osc_scale=scale, **kw)  # type: ignore[arg-type]


def trip(control: Control, shown: float) -> float:
    """Display -> wire -> display, as the bridge does for a value that goes out and comes back."""
    assert control.osc_scale is not None
    wire = to_wire(control.osc_scale, control.min, control.max, shown)
    return snap(control, from_wire(control.osc_scale, control.min, control.max, wire))


@st.composite
def scaled(draw: st.DrawFn) -> Control:
    lo = draw(st.floats(-1000, 1000, allow_nan=False))
    hi = lo + draw(st.floats(0.01, 10_000))
    step = draw(st.sampled_from([0.0, 0.0, 0.5, 1.0, (hi - lo) / 7]))
    kind = draw(st.sampled_from(["linear", "log", "exp", "table"]))
    if kind == "log":
        lo, hi = abs(lo) + 0.01, abs(lo) + 0.01 + (hi - lo)
    if kind == "table":
        middle = sorted(draw(st.lists(st.floats(0.05, 0.95), min_size=1, max_size=3, unique=True)))
        displays = [lo] + [lo + m * (hi - lo) for m in middle] + [hi]
        assume(all(b - a > 1e-6 * (hi - lo) for a, b in zip(displays, displays[1:], strict=False)))
        wires = sorted(draw(st.lists(st.floats(0, 1), min_size=len(displays), max_size=len(displays), unique=True)))
        assume(all(b - a > 1e-6 for a, b in zip(wires, wires[1:], strict=False)))
        if draw(st.booleans()):
            wires.reverse()
        points = tuple(zip(displays, wires, strict=True))
        return fader(lo, hi, step, Scale(points[0][1], points[-1][1], "table", points))
    w_lo = draw(st.floats(0.01, 100)) if kind == "exp" else draw(st.floats(-100, 100))
    w_hi = w_lo + draw(st.floats(0.01, 1000)) * draw(st.sampled_from([1, -1] if kind != "exp" else [1]))
    return fader(lo, hi, step, Scale(w_lo, w_hi, kind))  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(control=scaled(), at=st.floats(0, 1))
def test_every_curve_settles_in_one_round_trip(control: Control, at: float) -> None:
    shown = snap(control, control.min + at * (control.max - control.min))
    once = trip(control, shown)
    # Back within one step of where it was (continuous: within the 12 significant digits kept)...
    magnitude = max(abs(control.min), abs(control.max), 1.0)
    tolerance = max(control.step, (control.max - control.min) * 1e-9) + magnitude * 1e-10
    assert abs(once - shown) <= tolerance
    # ...and a second trip leaves it where the first put it: no creep.
    assert trip(control, once) == once


@settings(max_examples=300, deadline=None)
@given(at=st.floats(0, 1))
def test_the_x32_law_round_trips_from_the_wire(at: float) -> None:
    control = fader(-90, 10, 0.0, X32)
    shown = from_wire(X32, -90, 10, at)
    wire = to_wire(X32, -90, 10, shown)
    assert abs(wire - at) < 1e-9 and from_wire(X32, -90, 10, wire) == shown
    assert trip(control, shown) == shown


def test_the_x32_law_at_its_breakpoints() -> None:
    for shown, wire in ((-90, 0.0), (-60, 0.0625), (-30, 0.25), (-10, 0.5), (0, 0.75), (10, 1.0)):
        assert to_wire(X32, -90, 10, shown) == wire
        assert from_wire(X32, -90, 10, wire) == shown
    assert to_wire(X32, -90, 10, -200) == 0.0 and from_wire(X32, -90, 10, 3.0) == 10.0  # clamped


def test_log_and_exp_are_each_others_mirror() -> None:
    hz = fader(20, 20000, 0.0, Scale(0.0, 1.0, "log"))
    assert to_wire(hz.osc_scale, 20, 20000, 632.455532) == pytest.approx(0.5)  # type: ignore[arg-type]
    assert from_wire(hz.osc_scale, 20, 20000, 0.5) == pytest.approx(632.455532)  # type: ignore[arg-type]
    percent = fader(0, 100, 0.0, Scale(20.0, 20000.0, "exp"))
    assert to_wire(percent.osc_scale, 0, 100, 50) == pytest.approx(632.455532)  # type: ignore[arg-type]
    assert from_wire(percent.osc_scale, 0, 100, 632.455532) == pytest.approx(50)  # type: ignore[arg-type]


def float32(x: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", x))[0])


@pytest.mark.parametrize(("sent", "read"), [(8.871, 8.871), (0.1, 0.1), (1e-7, 1e-7), (16777217, 16777216.0)])
def test_float32_is_read_as_written(sent: float, read: float) -> None:
    assert float32(sent) != read or sent == 16777217  # what python-osc hands over...
    assert float32_as_written(float32(sent)) == read  # ...and what the bridge stores


@settings(max_examples=2000, deadline=None)
@given(bits=st.integers(0, 2**32 - 1))
def test_every_finite_float32_reads_as_its_shortest_decimal(bits: int) -> None:
    (x,) = struct.unpack(">f", bits.to_bytes(4, "big"))
    assume(math.isfinite(x))
    written = float32_as_written(x)
    assert float32(written) == x  # the same float32
    text = repr(written)
    digits = len(text.replace("-", "").replace(".", "").split("e")[0].strip("0"))
    shorter = float(f"{x:.{max(1, digits - 1)}g}")
    assert digits <= 1 or float32(shorter) != x  # and no shorter decimal is


def message(address: str, *args: object, tags: str | None = None) -> OscMessage:
    builder = OscMessageBuilder(address=address)
    for i, arg in enumerate(args):
        builder.add_arg(arg, tags[i] if tags else None)
    return OscMessage(builder.build().dgram)


def test_arguments_read_float32_as_written() -> None:
    assert arguments(message("/a", 8.871, "x", 3, tags="fsi")) == [8.871, "x", 3]


def test_templates_match_on_constants_and_take_the_value_at_its_place() -> None:
    cue5 = Control("cue5", "range", "", 0, "/eos/cue", 0, 100, osc_args=("fire", 5, VALUE))
    cue6 = Control("cue6", "range", "", 0, "/eos/cue", 0, 100, osc_args=("fire", 6, VALUE))
    table = address_table([cue5, cue6])
    assert values_for("/eos/cue", ["fire", 5, 40.0], table) == ([(cue5, 40.0)], [])
    assert values_for("/eos/cue", ["fire", 6.0, 3], table) == ([(cue6, 3)], [])  # 6.0 is 6
    assert values_for("/eos/cue", ["fire", 7, 3], table) == ([], ["no control takes these arguments"])
    with pytest.raises(ArgsMismatch):
        value_from_args(cue5, ["go", 5, 1.0])
    with pytest.raises(InvalidValue):
        value_from_args(cue5, ["fire", 5, "loud"])
    assert OscMessage(encode("/eos/cue", cue5, 40)).params == ["fire", 5, 40.0]
    typed = Control("t", "range", "", 0, "/t", 0, 10, osc_args=("cue", 5, VALUE), osc_types="sid")
    raw = encode("/t", typed, 2.5)
    assert raw[raw.index(b",") : raw.index(b",") + 4] == b",sid"


def test_on_and_off_payloads_both_ways() -> None:
    go = Control("go", "button", "", 0, "/go", mode="trigger", on=())
    assert OscMessage(encode("/go", go, 1)).params == []
    assert value_from_args(go, []) == 1
    power = Control("power", "toggle", "", 0, "/power", on="start", off="stop")
    assert OscMessage(encode("/power", power, 1)).params == ["start"]
    assert OscMessage(encode("/power", power, 0)).params == ["stop"]
    assert value_from_args(power, ["start"]) == 1 and value_from_args(power, ["stop"]) == 0
    assert value_from_args(power, [1]) == 1  # plain 0/1 still work
    listed = Control("list", "select", "", "a", "/list", options=())
    assert OscMessage(encode("/list", listed, "b")).params == ["b"]
    scaled_db = fader(-90, 10, 0.0, X32)
    assert OscMessage(encode("/f", scaled_db, -10)).params == [0.5]
    assert value_from_args(scaled_db, [0.25]) == -30.0


def test_a_value_may_stand_in_the_address() -> None:
    cue = Control(
        "cue", "select", "", "1", "/cue/{value}/start", osc_args=(), options=(Option("1", "1"), Option(2, "Two"))
    )
    assert OscMessage(encode("/cue/{value}/start", cue, 2)).address == "/cue/2/start"
    assert OscMessage(encode("/cue/{value}/start", cue, 2)).params == []
    table = address_table([cue])
    assert values_for("/cue/1/start", [], table) == ([(cue, "1")], [])
    assert values_for("/cue/2/start", [], table) == ([(cue, 2)], [])
    assert values_for("/cue/2/stop", [], table)[0] == []
    assert values_for("/cue/a/b/start", [], table)[0] == []  # one segment only
    level = fader(0, 100)
    level = Control("sub", "range", "", 0, "/eos/sub/{value}", 0, 100, osc_args=())
    assert values_for("/eos/sub/42", [], address_table([level])) == ([(level, 42)], [])


@pytest.mark.unit
def test_a_faders_travel_is_its_wires_curve_rising_whichever_way_the_wire_goes() -> None:
    x32 = Scale(0.0, 1.0, "table", ((-90, 0.0), (-60, 0.0625), (-30, 0.25), (-10, 0.5), (10, 1.0)))
    fader = Control(id="bus", type="range", label="Bus", default=0, osc="/b", min=-90, max=10, osc_scale=x32)
    assert [travel_at(fader, v) for v in (-90, -30, 0, 10)] == [0.0, 0.25, 0.75, 1.0]
    upside_down = Scale(1.0, 0.0, "table", ((0, 1.0), (50, 0.2), (100, 0.0)))
    assert (
        travel_at(Control(id="u", type="range", label="U", default=0, osc="/u", max=100, osc_scale=upside_down), 50)
        == 0.8
    )
    eq = Control(
        id="eq", type="knob", label="EQ", default=20, osc="/eq", min=20, max=20000, osc_scale=Scale(0, 1, "log")
    )
    assert travel(eq) == {"log": True} and math.isclose(travel_at(eq, math.sqrt(20 * 20000)), 0.5)
    grow = Control(id="g", type="range", label="G", default=0, osc="/g", max=100, osc_scale=Scale(20, 20000, "exp"))
    assert travel_at(grow, 0) == 0.0 and travel_at(grow, 100) == 1.0 and travel_at(grow, 50) < 0.05
    # A linear range, or none: straight over min..max.
    plain = Control(id="p", type="range", label="P", default=0, osc="/p", max=10, osc_scale=Scale(0.0, 1.0))
    assert travel(plain) is None and travel_at(plain, 2.5) == 0.25
