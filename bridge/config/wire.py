"""What a control carries on the wire: its ``osc`` and ``midi`` tables, curves, and ``on``/``off``.

``osc = "/addr"``, or ``osc = { address, args, types, range, curve }``;
``midi = { channel, cc | note | pitchbend, hires, feedback, range, curve }``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bridge.config.reader import NUMBER, OSC_ADDRESS_RE, Reader
from bridge.mapping import check_table
from bridge.midi.codec import FOURTEEN_BIT_TOP, SEVEN_BIT_TOP, kind_top
from bridge.model import VALUE, MidiBinding, OscArg, Payload, Scale

RESERVED_OSC_PREFIX = "/bridge/"
#: The placeholder of the value among an OSC message's arguments.
VALUE_TEXT = "{value}"
#: OSC type tags a ``types`` string may use, and what each can carry.
TAGS = {"i": "an integer", "h": "an integer", "f": "a number", "d": "a number", "s": "a string", "T": "", "F": ""}
OSC_TABLE_KEYS = {"address", "args", "types", "range", "curve", "json"}
MIDI_KEYS = {"channel", "cc", "hires", "note", "pitchbend", "program", "nrpn", "feedback", "range", "curve"}


def osc_address(reader: Reader, value: object, where: str, cid: str, templated: bool = False) -> str:
    """A control's OSC address; with ``templated``, one path segment may be ``{value}`` (``/cue/{value}/start``)."""
    plain = value.replace(f"/{VALUE_TEXT}/", "/x/") if isinstance(value, str) and templated else value
    if isinstance(plain, str) and templated and plain.endswith(f"/{VALUE_TEXT}"):
        plain = plain[: -len(VALUE_TEXT)] + "x"
    if not isinstance(plain, str) or not OSC_ADDRESS_RE.match(plain):
        reader.fail(where, f'expected an OSC address such as "/{cid}" (no spaces or #*,?[]{{}}), got {value!r}')
    assert isinstance(value, str)  # noqa: S101 - plain is value with {value} stood in for
    if value.count(VALUE_TEXT) > 1:
        reader.fail(where, f'"{VALUE_TEXT}" may stand for one path segment once, got {value!r}')
    if value.startswith(RESERVED_OSC_PREFIX) or value == "/bridge":
        reader.fail(where, f"addresses under /bridge are the bridge's own, got {value!r}")
    return value


@dataclass(frozen=True)
class OscForm:
    """What an ``osc`` key says: the address, the argument template, the type tags, the scale, a JSON field."""

    address: str
    args: tuple[OscArg, ...] | None = None
    types: str | None = None
    scale: Scale | None = None
    json: str | None = None


def osc_form(
    reader: Reader, raw: object, where: str, cid: str, ctype: str, has_value: bool, span: tuple[float, float]
) -> OscForm:
    """The ``osc`` key of a control (a string or a table), checked."""
    if raw is None:
        return OscForm(f"/{cid}")
    if isinstance(raw, str):
        address = osc_address(reader, raw, where, cid, templated=has_value)
        return OscForm(address, () if VALUE_TEXT in address else None)
    if not isinstance(raw, dict):
        reader.fail(where, 'expected "/address" or a table { address = "/address", args = [...], ... }')
    reader.keys(raw, where, OSC_TABLE_KEYS)
    address = osc_address(reader, raw.get("address"), f"{where}.address", cid, templated=has_value)
    in_address = VALUE_TEXT in address
    args: tuple[OscArg, ...] | None = () if in_address else None
    if "args" in raw:
        args = _args(reader, raw["args"], f"{where}.args", has_value and not in_address)
        if in_address and VALUE in args:
            reader.fail(f"{where}.args", f'"{VALUE_TEXT}" is in the address already: remove it from args')
    types = None
    if "types" in raw:
        types = _types(reader, raw["types"], f"{where}.types", args)
    scale = scale_of(reader, raw, where, ctype, span, None)
    field = reader.get(raw, "json", f"{where}.json", str, None)
    if field is not None and not all(part.isidentifier() or part.isdigit() for part in field.split(".")):
        reader.fail(f"{where}.json", f'expected a field of the JSON text such as "data" or "data.name", got {field!r}')
    return OscForm(address, args, types, scale, field)


def _args(reader: Reader, raw: object, where: str, has_value: bool) -> tuple[OscArg, ...]:
    if not isinstance(raw, list):
        reader.fail(where, f'expected a list of constants and "{VALUE_TEXT}", e.g. ["cue", 5, "{VALUE_TEXT}"]')
    args: list[OscArg] = []
    for i, item in enumerate(raw):
        if item == VALUE_TEXT:
            args.append(VALUE)
        elif isinstance(item, bool | int | str) or (isinstance(item, float) and math.isfinite(item)):
            args.append(item)
        else:
            reader.fail(f"{where}[{i}]", f'expected a number, a string, true/false or "{VALUE_TEXT}", got {item!r}')
    slots = args.count(VALUE)
    if slots > 1:
        reader.fail(where, f'"{VALUE_TEXT}" may appear once, got it {slots} times')
    if has_value and slots == 0:
        reader.fail(where, f'this control has a value: put "{VALUE_TEXT}" where it goes, e.g. ["cue", "{VALUE_TEXT}"]')
    return tuple(args)


def _types(reader: Reader, raw: object, where: str, args: tuple[OscArg, ...] | None) -> str:
    template: tuple[OscArg, ...] = args if args is not None else (VALUE,)
    if not isinstance(raw, str) or any(tag not in TAGS for tag in raw):
        reader.fail(where, f"expected OSC type tags, one per argument, from {''.join(TAGS)}; got {raw!r}")
    if len(raw) != len(template):
        reader.fail(where, f"expected {len(template)} type tags, one per argument of {_shown(template)}, got {raw!r}")
    for i, (tag, arg) in enumerate(zip(raw, template, strict=True)):
        if arg is not VALUE and not tag_fits(tag, arg):
            reader.fail(where, f"type tag {tag!r} (argument {i + 1}) does not fit {arg!r}")
    return raw


def tag_fits(tag: str, arg: object) -> bool:
    """Whether OSC type tag ``tag`` can carry ``arg``."""
    number = isinstance(arg, int | float) and not isinstance(arg, bool)
    return {
        "i": number and isinstance(arg, int),
        "h": number and isinstance(arg, int),
        "f": number,
        "d": number,
        "s": isinstance(arg, str),
        "T": arg is True,
        "F": arg is False,
    }[tag]


def _shown(template: tuple[OscArg, ...]) -> str:
    return "[" + ", ".join(f'"{VALUE_TEXT}"' if a is VALUE else repr(a) for a in template) + "]"


def scale_of(
    reader: Reader,
    raw: dict[str, Any],
    where: str,
    ctype: str,
    span: tuple[float, float],
    limits: tuple[int, int] | None,
) -> Scale | None:
    """The ``range`` and ``curve`` of an ``osc`` or ``midi`` table; ``limits`` bound a MIDI range."""
    if "range" not in raw and "curve" not in raw:
        return None
    if ctype not in ("range", "knob", "meter"):
        key = "range" if "range" in raw else "curve"
        reader.fail(f"{where}.{key}", f"only a range, knob or meter has a wire range or curve; this is a {ctype}")
    lo_shown, hi_shown = span
    curve = raw.get("curve", "linear")
    if isinstance(curve, list):
        if "range" in raw:
            reader.fail(f"{where}.range", "a breakpoint table sets the wire values itself: remove range")
        points = _points(reader, curve, f"{where}.curve")
        if points[0][0] != lo_shown or points[-1][0] != hi_shown:
            reader.fail(
                f"{where}.curve",
                f"the table's first and last displays must be min and max ({lo_shown:g}, {hi_shown:g}), "
                f"got {points[0][0]:g} and {points[-1][0]:g}",
            )
        _within(reader, [p[1] for p in points], f"{where}.curve", limits)
        return Scale(points[0][1], points[-1][1], "table", points)
    if curve not in ("linear", "log", "exp"):
        reader.fail(f"{where}.curve", f'expected "linear", "log", "exp" or [[display, wire], ...], got {curve!r}')
    default = (0.0, float(limits[1])) if limits is not None else (0.0, 1.0)
    pair = raw.get("range", list(default))
    if (
        not isinstance(pair, list)
        or len(pair) != 2
        or not all(isinstance(x, NUMBER) and not isinstance(x, bool) and math.isfinite(x) for x in pair)
        or pair[0] == pair[1]
    ):
        reader.fail(f"{where}.range", f"expected [low, high], two different numbers, got {pair!r}")
    lo, hi = float(pair[0]), float(pair[1])
    _within(reader, [lo, hi], f"{where}.range", limits)
    if curve == "log" and lo_shown <= 0:
        reader.fail(f"{where}.curve", f'"log" needs min above 0 (the logarithm of the shown value), got {lo_shown:g}')
    if curve == "exp" and (lo <= 0 or hi <= 0):
        reader.fail(f"{where}.curve", f'"exp" needs a wire range above 0, got [{lo:g}, {hi:g}]')
    return Scale(lo, hi, curve)


def _points(reader: Reader, raw: list[Any], where: str) -> tuple[tuple[float, float], ...]:
    points: list[tuple[float, float]] = []
    for i, pair in enumerate(raw):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(x, NUMBER) and not isinstance(x, bool) and math.isfinite(x) for x in pair)
        ):
            reader.fail(f"{where}[{i}]", f"expected a [display, wire] pair of numbers, got {pair!r}")
        points.append((float(pair[0]), float(pair[1])))
    problem = check_table(points)
    if problem:
        reader.fail(where, f"{problem} (a breakpoint table must be monotone)")
    return tuple(points)


def _within(reader: Reader, numbers: list[float], where: str, limits: tuple[int, int] | None) -> None:
    if limits is not None and not all(limits[0] <= x <= limits[1] for x in numbers):
        reader.fail(where, f"MIDI numbers are {limits[0]}-{limits[1]}, got {numbers}")


def payload(reader: Reader, raw: dict[str, Any], key: str, where: str) -> Payload | None:
    """An ``on`` or ``off``: a number, a string, or ``[]`` for an OSC message with no argument."""
    if key not in raw:
        return None
    value = raw[key]
    if value == [] and isinstance(value, list):
        return ()
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        reader.fail(f"{where}.{key}", f"expected a number, a string, or [] (no argument), got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        reader.fail(f"{where}.{key}", f"expected a finite number, got {value!r}")
    return value


def midi_binding(
    reader: Reader, raw: object, where: str, ctype: str, span: tuple[float, float], options: tuple[object, ...] = ()
) -> MidiBinding:
    """A ``midi`` table, checked; ``options`` are a select's values (for a program change)."""
    if not isinstance(raw, dict):
        reader.fail(where, "expected a table such as { channel = 1, cc = 7 }")
    reader.keys(raw, where, MIDI_KEYS)
    channel = reader.get(raw, "channel", f"{where}.channel", int, 1)
    if not 1 <= channel <= 16:
        reader.fail(f"{where}.channel", f"expected 1-16, got {channel}")
    chosen = [k for k in ("cc", "note", "pitchbend", "program", "nrpn") if k in raw]
    if len(chosen) != 1:
        reader.fail(where, "expected exactly one of cc = N, note = N, nrpn = N, pitchbend = true or program = true")
    kind = chosen[0]
    hires = reader.get(raw, "hires", f"{where}.hires", bool, False)
    if hires and kind != "cc":
        reader.fail(f"{where}.hires", "only applies to cc (an nrpn is 14-bit already)")
    number = 0
    if kind in ("pitchbend", "program"):
        if reader.get(raw, kind, f"{where}.{kind}", bool, True) is not True:
            reader.fail(f"{where}.{kind}", "expected true (or leave it out)")
    else:
        number = reader.get(raw, kind, f"{where}.{kind}", int, 0)
        top = FOURTEEN_BIT_TOP if kind == "nrpn" else 31 if hires else SEVEN_BIT_TOP
        if not 0 <= number <= top:
            extra = " (a 14-bit cc uses N and N+32)" if hires else ""
            reader.fail(f"{where}.{kind}", f"expected 0-{top}{extra}, got {number}")
    if kind == "program":
        _program_fits(reader, raw, where, ctype, span, options)
    feedback_default = kind == "note" and ctype in ("toggle", "button")
    feedback = reader.get(raw, "feedback", f"{where}.feedback", bool, feedback_default)
    final_kind = "cc14" if hires else kind
    top_number = kind_top(final_kind)
    scale = scale_of(reader, raw, where, ctype, span, (0, top_number))
    return MidiBinding(channel=channel, kind=final_kind, number=number, feedback=feedback, scale=scale)  # type: ignore[arg-type]


def takes_program(ctype: str, span: tuple[float, float], options: tuple[object, ...]) -> bool:
    """Whether a control can carry a program number 0-127 as it is: a select of them, or a range within."""
    numbers = all(isinstance(o, int) and not isinstance(o, bool) and 0 <= o <= 127 for o in options)
    return (ctype == "select" and bool(options) and numbers) or (ctype == "range" and 0 <= span[0] and span[1] <= 127)


def _program_fits(
    reader: Reader, raw: dict[str, Any], where: str, ctype: str, span: tuple[float, float], options: tuple[object, ...]
) -> None:
    """A program change carries a program number 0-127 as it is: a select of them, or a range within 0-127."""
    if "range" in raw or "curve" in raw:
        reader.fail(f"{where}.program", "a program number goes as it is: remove range and curve")
    if takes_program(ctype, span, options):
        return
    reader.fail(
        f"{where}.program",
        "needs a select whose options are program numbers 0-127, or a range within min = 0, max = 127",
    )
