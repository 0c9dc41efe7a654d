"""Between what the page shows and what the wire carries: curves, and floats read as written.

Pure functions. A control shows its own unit (``min``..``max``, e.g. -90..+10
dB) while OSC or MIDI carry another range (e.g. 0..1) through a curve
(:class:`bridge.model.Scale`):

``linear``
    straight between the two ranges;
``log``
    the wire follows the logarithm of the shown value: equal steps on the
    wire are equal ratios on the page (20 Hz..20 kHz shown, 0..1 sent);
    the control's min must be above 0;
``exp``
    the other way round: equal steps on the page are equal ratios on the
    wire (0..100 % shown, 20..20000 sent); the wire range must be above 0;
``table``
    ``[display, wire]`` breakpoints, linear between them, the displays
    rising, the wires rising or falling (the Behringer X32 fader law is four
    such segments).

Incoming values go through the inverse, and what it gives is rounded to
12 significant digits, so a value that comes in and goes out again settles
in one round trip instead of creeping by the last bit (what goes out is a
float32 or a MIDI number anyway).

An OSC float is a float32: :func:`float32_as_written` gives the shortest
decimal that is the same float32, so what a desk sent as 8.871 is stored,
shown and saved as 8.871, not 8.871000289916992.
"""

from __future__ import annotations

import bisect
import functools
import math
import struct

from bridge.model import Control, Scale

#: Significant digits kept from a curve's arithmetic: far below any fader's resolution, above float noise.
DIGITS = 12


def tidy(x: float) -> float:
    """``x`` rounded to :data:`DIGITS` significant digits (no trailing float noise)."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, DIGITS - 1 - math.floor(math.log10(abs(x))))


def float32_as_written(x: float) -> float:
    """The shortest decimal that is the same float32 as ``x`` (which came from a float32)."""
    if not math.isfinite(x):
        return x
    try:
        (target,) = struct.unpack(">f", struct.pack(">f", x))
    except OverflowError:
        return x
    for digits in range(1, 10):  # 9 significant digits always suffice for a float32
        candidate = float(f"{target:.{digits}g}")
        if struct.unpack(">f", struct.pack(">f", candidate))[0] == target:
            return candidate
    return target


def to_wire(scale: Scale, lo: float, hi: float, value: float) -> float:
    """The shown ``value`` of a control whose range is ``lo``..``hi``, as the wire carries it."""
    if scale.curve == "table":
        return _along(scale.points, value, 0, 1)
    u = _clamp01((value - lo) / (hi - lo))
    if scale.curve == "log":
        u = _clamp01(math.log(max(value, lo) / lo) / math.log(hi / lo))
    if scale.curve == "exp":
        return scale.lo * (scale.hi / scale.lo) ** u
    return scale.lo + u * (scale.hi - scale.lo)


def from_wire(scale: Scale, lo: float, hi: float, wire: float) -> float:
    """What the page shows for ``wire`` (clamped to the wire range): the inverse of :func:`to_wire`."""
    if scale.curve == "table":
        return tidy(_along(scale.points, wire, 1, 0))
    w_lo, w_hi = scale.lo, scale.hi
    if scale.curve == "exp":
        w = min(max(wire, min(w_lo, w_hi)), max(w_lo, w_hi))
        u = math.log(w / w_lo) / math.log(w_hi / w_lo)
    else:
        u = _clamp01((wire - w_lo) / (w_hi - w_lo))
    if scale.curve == "log":
        return tidy(min(max(lo * (hi / lo) ** u, lo), hi))
    return tidy(lo + _clamp01(u) * (hi - lo))


def _clamp01(u: float) -> float:
    return 0.0 if u < 0 else 1.0 if u > 1 else u


@functools.lru_cache(maxsize=256)
def _columns(
    points: tuple[tuple[float, float], ...], source: int, target: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Columns ``source`` and ``target`` of a table, rising in ``source`` (made once per table and way)."""
    xs = [p[source] for p in points]
    ys = [p[target] for p in points]
    if xs[0] > xs[-1]:  # a falling column: read it backwards
        xs.reverse()
        ys.reverse()
    return tuple(xs), tuple(ys)


def _along(points: tuple[tuple[float, float], ...], x: float, source: int, target: int) -> float:
    """Piecewise-linear lookup of ``x`` in column ``source`` of monotone ``points``, read in ``target``."""
    xs, ys = _columns(points, source, target)
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x) - 1
    x0, x1, y0, y1 = xs[i], xs[i + 1], ys[i], ys[i + 1]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def check_table(points: list[tuple[float, float]]) -> str | None:
    """What is wrong with a breakpoint table, or None: two points at least, displays rising, wires monotone."""
    if len(points) < 2:
        return "needs at least two [display, wire] points"
    displays = [p[0] for p in points]
    wires = [p[1] for p in points]
    if any(b <= a for a, b in zip(displays, displays[1:], strict=False)):
        return f"displays must rise from point to point, got {displays}"
    rising = all(b > a for a, b in zip(wires, wires[1:], strict=False))
    falling = all(b < a for a, b in zip(wires, wires[1:], strict=False))
    if not (rising or falling):
        return f"wire values must rise (or fall) from point to point, got {wires}"
    return None


def travel(control: Control) -> dict[str, object] | None:
    """How a fader's or knob's travel follows its wire, for the page: the curve of its OSC mapping (else its
    MIDI one), so that it moves as the desk's own fader does (the X32's 0 dB three quarters up, a log EQ knob
    even in octaves). None: straight over ``min``..``max``. A falling wire does not turn the travel over."""
    chosen = None
    for scale in (control.osc_scale, control.midi.scale if control.midi is not None else None):
        if scale is not None and scale.curve != "linear":
            chosen = scale
            break
    if chosen is None:
        return None
    if chosen.curve == "log":
        return {"log": True}
    if chosen.curve == "exp":
        return {"exp": chosen.hi / chosen.lo}
    first, last = chosen.points[0][1], chosen.points[-1][1]
    return {"points": [[display, (wire - first) / (last - first)] for display, wire in chosen.points]}


def travel_at(control: Control, value: object) -> float:
    """Where ``value`` stands on ``control``'s travel, 0..1 (see :func:`travel`)."""
    if not isinstance(value, int | float) or control.max <= control.min:
        return 0.0
    lo, hi = control.min, control.max
    u = _clamp01((value - lo) / (hi - lo))
    shape = travel(control)
    if shape is None:
        return u
    if "log" in shape:
        return _clamp01(math.log(max(value, lo) / lo) / math.log(hi / lo))
    if "exp" in shape:
        ratio = float(shape["exp"])  # type: ignore[arg-type]
        return (ratio**u - 1) / (ratio - 1)
    points = tuple((float(d), float(w)) for d, w in shape["points"])  # type: ignore[attr-defined]
    return _clamp01(_along(points, float(value), 0, 1))
