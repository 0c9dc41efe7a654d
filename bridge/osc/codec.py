"""OSC arguments <-> values: a control's message out, and what a message in means for it.

Pure functions, no sockets. A control's message is its address with its
argument template (``osc.args``): constants around the value's place, or
no argument at all; ``osc.types`` sets the tags. Coming in, a message
matches a control on the address and the constant arguments, and the value
is taken from its place. Packets themselves are :mod:`bridge.osc.packets`'.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.errors import InvalidValue
from bridge.mapping import float32_as_written, from_wire, to_wire
from bridge.model import VALUE, Control, OscArg, Payload, Scale, Value, address_text
from bridge.osc.packets import controls_at


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
    if control.osc_json is not None:
        payload = _field(control, payload, control.osc_json)
    if control.switch:
        if control.on is not None and _same_payload(payload, control.on):
            return 1
        if control.off is not None and _same_payload(payload, control.off):
            return 0
        if control.trigger and (payload == EMPTY or payload is None):
            return 1  # no argument, or OSC's nil (N), as OSCQuery advertises a bare trigger
        if isinstance(payload, bool | int | float) and not isinstance(payload, tuple):
            return payload  # T/F, 0/1, 0.0/1.0: the hub refuses anything else
        raise InvalidValue(control.id, payload, "expected 0, 1, T or F")
    if control.numeric or (control.type == "led" and control.colors):
        if isinstance(payload, bool) or not isinstance(payload, int | float):
            raise InvalidValue(control.id, payload, "expected an int or float argument")
        if control.osc_scale is not None:
            return _shown(control, control.osc_scale, float(payload))
        return payload
    if control.type == "label":
        return "" if payload == EMPTY else payload
    if control.type == "select":
        if payload == EMPTY:
            raise InvalidValue(control.id, [], "expected one of the options as the argument")
        if isinstance(payload, str) and options_tag(control) == "s" and control.option_index(payload) is None:
            # Text and numbers mixed: described as text (OSCQuery's one TYPE), so "3" is the option 3.
            for option in control.options:
                if not isinstance(option.value, str) and address_text(option.value) == payload:
                    return option.value
        return payload
    if not isinstance(payload, str):
        raise InvalidValue(control.id, payload, "expected a string argument")
    return payload


def _shown(control: Control, scale: Scale, wire: float) -> float:
    """What ``wire`` shows on ``control``: beyond its range when the wire was beyond the curve's, so that the
    hub clamps it and says so (an OSCQuery client that sent 2.0 to a 0-1 fader is sent the value it got)."""
    shown = from_wire(scale, control.min, control.max, wire)
    ends = [p[1] for p in scale.points] if scale.curve == "table" else [scale.lo, scale.hi]
    if min(ends) <= wire <= max(ends):
        return shown
    span = control.max - control.min
    return control.max + span if shown >= control.max else control.min - span


def _field(control: Control, payload: object, path: str) -> object:
    """The field ``path`` ("data", "data.name") of an argument that is JSON text."""
    try:
        found = json.loads(payload) if isinstance(payload, str) else None
        for part in path.split("."):
            found = found[int(part)] if isinstance(found, list) and part.isdigit() else found[part]  # type: ignore[index]
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise InvalidValue(control.id, payload, f"expected JSON text with a {path!r} field") from err
    if isinstance(found, dict | list) or found is None:
        raise InvalidValue(control.id, payload, f"the {path!r} field is not a number or a text")
    return found


def value_from_address(control: Control, address: str, args: list[object]) -> object:
    """The value of a control whose address carries it (``/cue/{value}/start``): the segment's text."""
    template = control.osc_args or ()
    if len(args) != len(template) or not all(_same_arg(w, g) for w, g in zip(template, args, strict=True)):
        raise ArgsMismatch(control.id, args, f"expected the arguments {list(template)!r}")
    text = _segment(control.osc, address)
    if control.type == "select":
        for option in control.options:
            if address_text(option.value) == text:
                return option.value
        return text
    if control.numeric or control.switch or (control.type == "led" and control.colors):
        try:
            number = float(text)
        except ValueError as err:
            raise InvalidValue(control.id, text, "expected a number in the address") from err
        return int(number) if number.is_integer() else number
    return text


def _segment(template: str, address: str) -> str:
    head, _, tail = template.partition(VALUE_IN_ADDRESS)
    return address[len(head) : len(address) - len(tail)]


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


VALUE_IN_ADDRESS = "{value}"


def encode(address: str, control: Control, value: Value, arg_type: str = "auto") -> bytes:
    """One OSC message carrying ``value`` with the type a target asked for.

    ``auto``: float for a range, knob or meter, int 0/1 for a toggle or
    button (or its ``on``/``off`` as written), string for text, the option's
    own type for a select. ``float`` or ``int`` force the numeric type (text
    stays a string). A template (``osc.args``) puts constants around the
    value; ``osc.types`` sets every tag.
    """
    wired = wire_value(control, value)
    if VALUE_IN_ADDRESS in address:
        address = address.replace(VALUE_IN_ADDRESS, address_text(wired))
    builder = OscMessageBuilder(address=address)
    template = control.osc_args if control.osc_args is not None else (VALUE,)
    types = control.osc_types
    for i, arg in enumerate(template):
        tag = types[i] if types else None
        if arg is VALUE:
            if wired == EMPTY:
                continue
            _add(builder, wired, tag or _auto_tag(control, wired, arg_type))
        else:
            _add(builder, arg, tag or natural_tag(arg))
    return bytes(builder.build().dgram)


def natural_tag(arg: object) -> str:
    """The tag python-osc would give ``arg``: T/F, i, f, else s."""
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
    if control.type == "select" and isinstance(wired, int | float) and options_tag(control) == "f":
        return "f"  # numbers of both kinds: a float, as OSCQuery's TYPE says
    return natural_tag(wired)


def options_tag(control: Control) -> str:
    """A select's type tag: its options' own, ``f`` when they mix whole numbers and fractions
    (``[1, 2.5]``), ``s`` when any is text."""
    tags = {natural_tag(option.value) for option in control.options}
    return tags.pop() if len(tags) == 1 else "f" if "s" not in tags else "s"


def _add(builder: OscMessageBuilder, arg: object, tag: str) -> None:
    if tag in ("T", "F"):
        builder.add_arg(bool(arg))
    elif tag == "s":
        builder.add_arg(plain_text(arg), "s")
    elif tag in ("i", "h"):
        number = float(arg) if isinstance(arg, int | float) else 0.0
        # Round half away from zero, as a person reading a desk would.
        builder.add_arg(int(math.floor(abs(number) + 0.5) * (1 if number >= 0 else -1)), tag)
    else:
        builder.add_arg(float(arg) if isinstance(arg, int | float) else 0.0, tag)


def plain_text(arg: object) -> str:
    """A number as text, 3 not 3.0 (a desk's argument shown as a label, a number sent as a string)."""
    if isinstance(arg, float) and arg.is_integer():
        return str(int(arg))
    return str(arg)


def values_for(
    address: str,
    args: list[object],
    table: Mapping[str, tuple[Control, ...]],
    only: Sequence[Control] | None = None,
    complete: bool = True,
) -> tuple[list[tuple[Control, object]], list[str]]:
    """Each control a message sets with its raw value, and the reasons it set no other.

    A control whose constant arguments are not the message's is left out
    quietly when another control at the address takes the message; when
    none does, its reason is reported. Raises :class:`MalformedPacket` for
    an unreadable pattern.
    """
    controls = controls_at(address, table) if only is None else only  # (only: some of those at the address)
    if not controls:
        return [], ["no control at this address"]
    found: list[tuple[Control, object]] = []
    problems: list[str] = []
    mismatches: list[str] = []
    for control in controls:
        try:
            if VALUE_IN_ADDRESS in control.osc:
                found.append((control, value_from_address(control, address, args)))
            else:
                found.append((control, value_from_args(control, args)))
        except ArgsMismatch as err:
            mismatches.append(err.reason)
        except InvalidValue as err:
            problems.append(err.reason)
    if not found and not problems and complete:  # (not complete: ``only`` leaves out some it may take)
        problems = ["no control takes these arguments" if len(controls) > 1 else mismatches[0]]
    return found, problems
