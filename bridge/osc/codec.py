"""OSC at the edge: packet checks, address patterns, arguments <-> values.

Pure functions, no sockets. python-osc decodes the packets; what it lets
through silently (a float argument cut off at the end of a datagram is read
as 0.0 by python-osc 1.10) is caught here first, so that a fader never jumps
because a packet was cut short. :func:`decode` is the one way in: whatever
python-osc raises on a bad packet leaves it as :class:`MalformedPacket`.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache

from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.errors import InvalidValue, MalformedPacket
from bridge.mapping import float32_as_written, from_wire, to_wire
from bridge.model import VALUE, Control, OscArg, Payload, Value

BUNDLE_TAG = b"#bundle\x00"
#: Bundles nested deeper than this are refused: no datagram may recurse forever.
MAX_BUNDLE_DEPTH = 8
_FIXED_SIZES = {"i": 4, "f": 4, "c": 4, "r": 4, "m": 4, "d": 8, "h": 8, "t": 8}
_NO_DATA = "TFNI[]"


def _padded_string_end(data: bytes, start: int, what: str) -> int:
    end = data.find(b"\x00", start)
    if end < 0:
        raise MalformedPacket(f"{what} has no terminating NUL")
    return (end // 4 + 1) * 4


def check_packet(data: bytes, depth: int = 0) -> None:
    """Raise :class:`MalformedPacket` unless ``data`` is one whole OSC packet."""
    if not data or len(data) % 4:
        raise MalformedPacket(f"length {len(data)} is not a positive multiple of 4")
    if data.startswith(BUNDLE_TAG):
        _check_bundle(data, depth)
    elif data.startswith(b"/"):
        _check_message(data)
    else:
        raise MalformedPacket("neither a message (starts with /) nor a bundle (#bundle)")


def _check_bundle(data: bytes, depth: int) -> None:
    if depth >= MAX_BUNDLE_DEPTH:
        raise MalformedPacket(f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
    pos = len(BUNDLE_TAG) + 8  # time tag
    if len(data) < pos:
        raise MalformedPacket("bundle cut short in its time tag")
    while pos < len(data):
        if pos + 4 > len(data):
            raise MalformedPacket("bundle element size cut short")
        (size,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if size <= 0 or pos + size > len(data):
            raise MalformedPacket(f"bundle element of size {size} does not fit the datagram")
        check_packet(data[pos : pos + size], depth + 1)
        pos += size


def _check_message(data: bytes) -> None:
    pos = _padded_string_end(data, 0, "address")
    if pos > len(data):
        raise MalformedPacket("address cut short")
    if pos == len(data):
        return  # no type tag string: an old-style message without arguments
    if data[pos : pos + 1] != b",":
        raise MalformedPacket("type tag string does not start with ','")
    tags_end = _padded_string_end(data, pos, "type tag string")
    tags = data[pos + 1 : data.find(b"\x00", pos)].decode("ascii", errors="replace")
    pos = tags_end
    for tag in tags:
        if tag in _FIXED_SIZES:
            pos += _FIXED_SIZES[tag]
        elif tag in "sS":
            pos = _padded_string_end(data, pos, "string argument")
        elif tag == "b":
            if pos + 4 > len(data):
                raise MalformedPacket("blob size cut short")
            (size,) = struct.unpack_from(">i", data, pos)
            if size < 0:
                raise MalformedPacket("negative blob size")
            pos += 4 + (size + 3) // 4 * 4
        elif tag not in _NO_DATA:
            raise MalformedPacket(f"unknown type tag {tag!r}")
        if pos > len(data):
            raise MalformedPacket(f"argument {tag!r} cut short")
    if pos != len(data):
        raise MalformedPacket(f"{len(data) - pos} bytes after the last argument")


def decode(data: bytes) -> list[OscMessage]:
    """Every message in the packet ``data``, in order; :class:`MalformedPacket` for anything else."""
    try:
        check_packet(data)
        return list(messages(data))
    except MalformedPacket:
        raise
    except Exception as err:  # python-osc's ParseError and whatever its parsers let escape
        raise MalformedPacket(f"not decodable: {err}") from err


def messages(data: bytes) -> Iterator[OscMessage]:
    """Every message in a checked packet, bundles unpacked depth-first, in order.

    Time tags are not waited for: a bundle's messages are applied on arrival.
    """
    if data.startswith(BUNDLE_TAG):
        for element in OscBundle(data):
            if isinstance(element, OscBundle):
                yield from messages(element.dgram)
            else:
                yield element
    else:
        yield OscMessage(data)


_PATTERN_CHARS = re.compile(r"[*?\[\]{}]")


def is_pattern(address: str) -> bool:
    return bool(_PATTERN_CHARS.search(address))


@lru_cache(maxsize=1024)
def pattern_regex(pattern: str) -> re.Pattern[str]:
    """The regex for an OSC 1.0 address pattern (``*``, ``?``, ``[a-z]``, ``[!a-z]``, ``{a,b}``)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise MalformedPacket(f"unclosed [ in address pattern {pattern!r}")
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            # Keep ranges (a-z), escape everything else.
            parts = [re.escape(c) if c != "-" else "-" for c in body]
            if parts and parts[0] == "-":
                parts[0] = r"\-"
            if parts and parts[-1] == "-" and len(parts) > 1:
                parts[-1] = r"\-"
            out.append(("[^" if negate else "[") + "".join(parts) + "]")
            i = end
        elif ch == "{":
            end = pattern.find("}", i + 1)
            if end < 0:
                raise MalformedPacket(f"unclosed {{ in address pattern {pattern!r}")
            choices = pattern[i + 1 : end].split(",")
            out.append("(?:" + "|".join(re.escape(c) for c in choices) + ")")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    try:
        return re.compile("".join(out) + r"\Z")
    except re.error as err:
        raise MalformedPacket(f"bad address pattern {pattern!r}: {err}") from err


class ArgsMismatch(InvalidValue):
    """A message at a control's address whose constant arguments are another control's."""


#: An empty place for the value: a message with no argument where the value would go.
EMPTY: tuple[()] = ()


def arguments(message: OscMessage) -> list[object]:
    """A message's arguments, float32s read as written (8.871, not 8.871000289916992)."""
    params = list(message.params)
    tags = _type_tags(message.dgram)
    if tags is None or "[" in tags or len(tags) != len(params):
        return params
    return [
        float32_as_written(p) if tag == "f" and isinstance(p, float) else p for tag, p in zip(tags, params, strict=True)
    ]


def _type_tags(dgram: bytes) -> str | None:
    start = dgram.find(b"\x00")
    start = (start // 4 + 1) * 4
    if dgram[start : start + 1] != b",":
        return None
    end = dgram.find(b"\x00", start)
    return dgram[start + 1 : end].decode("ascii", errors="replace")


def value_from_args(control: Control, args: list[object]) -> object:
    """The raw value an OSC argument list carries for ``control`` (checked later by the hub).

    Raises :class:`ArgsMismatch` when the constant arguments are not the
    control's (another control may share the address), :class:`InvalidValue`
    when the value cannot fit the control's type.
    """
    template = control.osc_args if control.osc_args is not None else (VALUE,)
    empty_ok = control.trigger or control.on == EMPTY or control.off == EMPTY
    if VALUE in template:
        k = template.index(VALUE)
        constants = template[:k] + template[k + 1 :]
        if len(args) == len(template):
            payload: object = args[k]
            rest = args[:k] + args[k + 1 :]
        elif len(args) == len(template) - 1 and empty_ok:
            payload, rest = EMPTY, args
        else:
            raise _count(control, args, len(template), constants)
    else:
        if len(args) != len(template):
            raise _count(control, args, len(template), template)
        payload, rest, constants = EMPTY, args, template
    for want, got in zip(constants, rest, strict=True):
        if not _same_arg(want, got):
            raise ArgsMismatch(control.id, args, f"constant arguments {list(constants)!r} do not match")
    return _raw(control, payload)


def _count(control: Control, args: list[object], wanted: int, constants: tuple[OscArg, ...]) -> InvalidValue:
    if constants:
        return ArgsMismatch(control.id, args, f"expected {wanted} arguments, got {len(args)}")
    noun = "argument" if wanted == 1 else "arguments"
    return InvalidValue(control.id, args, f"expected {'one' if wanted == 1 else wanted} {noun}, got {len(args)}")


def _same_arg(want: OscArg, got: object) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return want is got
    if isinstance(want, int | float) and isinstance(got, int | float):
        return float(want) == float(got)
    return type(want) is type(got) and want == got


def _raw(control: Control, payload: object) -> object:
    """What the hub is handed for the argument at the value's place."""
    if control.switch:
        if control.on is not None and _same_payload(payload, control.on):
            return 1
        if control.off is not None and _same_payload(payload, control.off):
            return 0
        if payload == EMPTY and control.trigger:
            return 1
        if isinstance(payload, bool | int | float) and not isinstance(payload, tuple):
            return payload  # T/F, 0/1, 0.0/1.0: the hub refuses anything else
        raise InvalidValue(control.id, payload, "expected 0, 1, T or F")
    if control.numeric or (control.type == "led" and control.colors):
        if isinstance(payload, bool) or not isinstance(payload, int | float):
            raise InvalidValue(control.id, payload, "expected an int or float argument")
        if control.osc_scale is not None:
            return from_wire(control.osc_scale, control.min, control.max, float(payload))
        return payload
    if control.type == "label":
        return "" if payload == EMPTY else payload
    if control.type == "select":
        if payload == EMPTY:
            raise InvalidValue(control.id, [], "expected one of the options as the argument")
        return payload
    if not isinstance(payload, str):
        raise InvalidValue(control.id, payload, "expected a string argument")
    return payload


def _same_payload(got: object, want: Payload) -> bool:
    if isinstance(want, tuple) or isinstance(got, tuple):
        return want == got  # both empty
    return _same_arg(want, got)


def wire_value(control: Control, value: Value) -> object:
    """What the wire carries at the value's place: the ``on``/``off`` of a switch, a scaled number..."""
    if control.switch:
        payload = control.on if value else control.off
        return (1 if value else 0) if payload is None else payload
    if control.numeric and control.osc_scale is not None and isinstance(value, int | float):
        return to_wire(control.osc_scale, control.min, control.max, float(value))
    return value


def encode(address: str, control: Control, value: Value, arg_type: str = "auto") -> bytes:
    """One OSC message carrying ``value`` with the type a target asked for.

    ``auto``: float for a range, knob or meter, int 0/1 for a toggle or
    button (or its ``on``/``off`` as written), string for text, the option's
    own type for a select. ``float`` or ``int`` force the numeric type (text
    stays a string). A template (``osc.args``) puts constants around the
    value; ``osc.types`` sets every tag.
    """
    builder = OscMessageBuilder(address=address)
    template = control.osc_args if control.osc_args is not None else (VALUE,)
    types = control.osc_types
    wired = wire_value(control, value)
    for i, arg in enumerate(template):
        tag = types[i] if types else None
        if arg is VALUE:
            if wired == EMPTY:
                continue
            _add(builder, wired, tag or _auto_tag(control, wired, arg_type))
        else:
            _add(builder, arg, tag or _natural_tag(arg))
    return bytes(builder.build().dgram)


def _natural_tag(arg: object) -> str:
    if isinstance(arg, bool):
        return "T" if arg else "F"
    if isinstance(arg, int):
        return "i"
    if isinstance(arg, float):
        return "f"
    return "s"


def _auto_tag(control: Control, wired: object, arg_type: str) -> str:
    if isinstance(wired, str):
        return "s"
    if isinstance(wired, bool):
        return "T" if wired else "F"
    if arg_type in ("int", "float"):
        return "i" if arg_type == "int" else "f"
    if control.numeric or (control.type == "led" and control.colors):
        return "f"
    return _natural_tag(wired)


def _add(builder: OscMessageBuilder, arg: object, tag: str) -> None:
    if tag in ("T", "F"):
        builder.add_arg(bool(arg))
    elif tag == "s":
        builder.add_arg(_text(arg), "s")
    elif tag in ("i", "h"):
        number = float(arg) if isinstance(arg, int | float) else 0.0
        # Round half away from zero, as a person reading a desk would.
        builder.add_arg(int(math.floor(abs(number) + 0.5) * (1 if number >= 0 else -1)), tag)
    else:
        builder.add_arg(float(arg) if isinstance(arg, int | float) else 0.0, tag)


def _text(arg: object) -> str:
    if isinstance(arg, float) and arg.is_integer():
        return str(int(arg))
    return str(arg)


def address_table(
    controls: Iterable[Control], address: Callable[[Control], str | None] = lambda c: c.osc
) -> dict[str, tuple[Control, ...]]:
    """The controls at each OSC address (several when their constant arguments differ).

    ``address`` picks the address: the control's own by default, or another
    it listens to (``label_from``); controls for which it gives None are left out.
    """
    table: dict[str, list[Control]] = {}
    for control in controls:
        at = address(control)
        if at is not None:
            table.setdefault(at, []).append(control)
    return {address: tuple(found) for address, found in table.items()}


def controls_at(address: str, table: Mapping[str, tuple[Control, ...]]) -> list[Control]:
    """The controls an incoming ``address`` names: those at it, or at every match of an OSC 1.0 pattern.

    Raises :class:`MalformedPacket` for a pattern that cannot be read.
    """
    if is_pattern(address):
        regex = pattern_regex(address)
        return [control for a, found in table.items() if regex.match(a) for control in found]
    return list(table.get(address, ()))


def values_for(
    address: str, args: list[object], table: Mapping[str, tuple[Control, ...]]
) -> tuple[list[tuple[Control, object]], list[str]]:
    """Each control a message sets with its raw value, and the reasons it set no other.

    A control whose constant arguments are not the message's is left out
    quietly when another control at the address takes the message; when
    none does, its reason is reported. Raises :class:`MalformedPacket` for
    an unreadable pattern.
    """
    controls = controls_at(address, table)
    if not controls:
        return [], ["no control at this address"]
    found: list[tuple[Control, object]] = []
    problems: list[str] = []
    mismatches: list[str] = []
    for control in controls:
        try:
            found.append((control, value_from_args(control, args)))
        except ArgsMismatch as err:
            mismatches.append(err.reason)
        except InvalidValue as err:
            problems.append(err.reason)
    if not found and not problems:
        problems = ["no control takes these arguments" if len(controls) > 1 else mismatches[0]]
    return found, problems
