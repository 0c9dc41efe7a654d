"""The ``[[controls]]`` (and ``[[repeat]]``) tables: each checked and built into a frozen :class:`Control` once."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from bridge.config import wire
from bridge.config.reader import ID_RE, NUMBER, OSC_ADDRESS_RE, Reader, number_text
from bridge.config.repeat import expand
from bridge.midi.codec import NRPN_CARRIERS, Slot, slots
from bridge.model import (
    CONTROL_TYPES,
    MAX_TEXT_LENGTH,
    TAKEOVER_MODES,
    VALUE,
    ColorFrom,
    Control,
    MidiBinding,
    Option,
    is_color,
)
from bridge.validation import snap

COMMON_KEYS = {"id", "type", "label", "osc", "midi", "group", "page", "color", "scene", "label_from", "color_from"}
#: The keys each type takes besides the common ones.
TYPE_KEYS: dict[str, set[str]] = {
    "range": {"min", "max", "step", "value", "unit", "decimals", "takeover", "orientation", "touch", "reset"},
    "knob": {"min", "max", "step", "value", "unit", "decimals", "takeover", "orientation", "touch", "reset"},
    "meter": {"min", "max", "value", "unit", "decimals", "peak_hold", "orientation"},
    "toggle": {"value", "on", "off"},
    "button": {"value", "on", "off", "mode", "confirm"},
    "select": {"options", "style", "value"},
    "text": {"value"},
    "label": {"value", "unit", "decimals"},
    "led": {"value", "colors"},
}
ALL_KEYS = COMMON_KEYS.union(*TYPE_KEYS.values())
ORIENTATIONS = ("horizontal", "vertical")
TOUCH_MODES = ("relative", "absolute")
BUTTON_MODES = ("push", "trigger")
SELECT_STYLES = ("buttons", "dropdown")
#: How the page's editor shows each key the loader takes (a unit test holds the two together):
#: ``text``, ``number``, ``integer``, ``flag``, ``color``, ``address``, ``choice`` (with its
#: choices), ``value`` (the control's own kind of value) and ``toml`` (a table or a list,
#: edited as one line of TOML).
FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "id": ("text", ()),
    "type": ("choice", CONTROL_TYPES),
    "label": ("text", ()),
    "group": ("text", ()),
    "page": ("text", ()),
    "color": ("color", ()),
    "osc": ("toml", ()),
    "midi": ("toml", ()),
    "min": ("number", ()),
    "max": ("number", ()),
    "step": ("number", ()),
    "value": ("value", ()),
    "unit": ("text", ()),
    "decimals": ("integer", ()),
    "orientation": ("choice", ORIENTATIONS),
    "touch": ("choice", TOUCH_MODES),
    "reset": ("flag", ()),
    "takeover": ("choice", TAKEOVER_MODES),
    "peak_hold": ("number", ()),
    "mode": ("choice", BUTTON_MODES),
    "confirm": ("flag", ()),
    "on": ("toml", ()),
    "off": ("toml", ()),
    "options": ("toml", ()),
    "style": ("choice", SELECT_STYLES),
    "colors": ("toml", ()),
    "scene": ("flag", ()),
    "label_from": ("address", ()),
    "color_from": ("toml", ()),
}
#: What a key means, for the line that says it does not apply.
_KEY_HINTS = {
    "confirm": "a second tap within 3 s",
    "mode": '"push" or "trigger"',
    "takeover": "how a MIDI fader meets a value set elsewhere",
    "options": "the choices of a select",
}


def controls(
    reader: Reader, raw_controls: object, raw_repeat: object = None, order: list[str] | None = None
) -> tuple[Control, ...]:
    """Every control of the config, checked together: the ``[[controls]]`` and what each ``[[repeat]]`` makes.

    None at all is a config too (``controls = []``): a surface to build in the page's editor.

    ``order`` lists "controls" and "repeat" as their tables follow each other
    in the file, so that a strip repeated between two controls stays there;
    without it, the repeats come after the controls.
    """
    plain: list[tuple[str, Any]] = []
    if raw_controls is not None:
        if not isinstance(raw_controls, list):
            reader.fail("controls", "expected [[controls]] tables")
        plain = [(f"controls[{i}]", raw) for i, raw in enumerate(raw_controls)]
    repeats: list[list[tuple[str, Any]]] = []
    if raw_repeat is not None:
        made = expand(reader, raw_repeat)
        repeats = [[m for m in made if m[0].startswith(f"repeat[{i}] ")] for i in range(len(raw_repeat))]  # type: ignore[arg-type]
    tables: list[tuple[str, Any]] = []
    plain_left, repeats_left = iter(plain), iter(repeats)
    for kind in order or []:
        if kind == "controls":
            tables += [next(plain_left, ("", None))]
        else:
            tables += next(repeats_left, [])
    tables = [t for t in tables if t[1] is not None] + list(plain_left) + [t for r in repeats_left for t in r]
    built = tuple(control(reader, raw, where) for where, raw in tables)
    check_unique(reader, built)
    return built


def control(reader: Reader, raw: object, place: str) -> Control:
    if not isinstance(raw, dict):
        reader.fail(place, "must be a table")
    cid = reader.get(raw, "id", f"{place}.id", str, None)
    if cid is None or not ID_RE.match(cid):
        reader.fail(f"{place}.id", f"expected an id of letters, digits, _ or -, starting with a letter, got {cid!r}")
    where = f"{place} ({cid})"
    reader.keys(raw, where, ALL_KEYS)
    ctype = reader.get(raw, "type", f"{where}.type", str, None)
    if ctype not in CONTROL_TYPES:
        reader.fail(f"{where}.type", f"expected one of {', '.join(CONTROL_TYPES)}, got {ctype!r}")
    for key in raw:
        if key not in COMMON_KEYS and key not in TYPE_KEYS[ctype]:
            takers = [t for t, keys in TYPE_KEYS.items() if key in keys]
            notes = ([f"a {' or '.join(takers[1:])} too"] if takers[1:] else []) + [_KEY_HINTS.get(key, "")]
            note = "; ".join(n for n in notes if n)
            reader.fail(
                f"{where}.{key}",
                f"only a {takers[0]} has {key}{f' ({note})' if note else ''}; this control is a {ctype}: remove it",
            )
    common = _common(reader, raw, where, cid, ctype)
    built = _TYPES[ctype](reader, raw, where, replace(common, where=place))
    return _with_wire(reader, raw, where, built)


def _common(reader: Reader, raw: dict[str, Any], where: str, cid: str, ctype: str) -> Control:
    label = reader.get(raw, "label", f"{where}.label", str, cid)
    color = reader.get(raw, "color", f"{where}.color", str, "")
    if color and not is_color(color):
        reader.fail(f"{where}.color", f'expected a colour "#rrggbb", got {color!r}')
    label_from = None
    if "label_from" in raw:
        label_from = _address(reader, raw["label_from"], f"{where}.label_from")
    return Control(
        cid,
        ctype,  # type: ignore[arg-type]
        label,
        0,
        "",
        group=reader.get(raw, "group", f"{where}.group", str, ""),
        page=reader.get(raw, "page", f"{where}.page", str, ""),
        color=color.lower(),
        # A pad is pressed while held: a scene that saved it pressed would hold it down at every recall.
        scene=reader.get(raw, "scene", f"{where}.scene", bool, ctype != "button"),
        label_from=label_from,
        color_from=_color_from(reader, raw, where) if "color_from" in raw else None,
    )


def _address(reader: Reader, value: object, where: str) -> str:
    if not isinstance(value, str) or not OSC_ADDRESS_RE.match(value):
        reader.fail(where, f'expected an OSC address such as "/ch/01/config/name", got {value!r}')
    return value


def _color_from(reader: Reader, raw: dict[str, Any], where: str) -> ColorFrom:
    value = raw["color_from"]
    if isinstance(value, str):
        return ColorFrom(_address(reader, value, f"{where}.color_from"))
    if not isinstance(value, dict):
        reader.fail(f"{where}.color_from", 'expected "/address" or { address = "/address", map = { "1" = "#ff3030" } }')
    reader.keys(value, f"{where}.color_from", {"address", "map"})
    address = _address(reader, value.get("address"), f"{where}.color_from.address")
    mapping = reader.get(value, "map", f"{where}.color_from.map", dict, {})
    for key, color in mapping.items():
        # ("": no colour of the desk's, the control's own: an X32's OFF)
        if not isinstance(color, str) or not (is_color(color) or color == ""):
            reader.fail(f"{where}.color_from.map.{key}", f'expected a colour "#rrggbb" or "", got {color!r}')
    return ColorFrom(address, tuple((str(k), str(c).lower()) for k, c in mapping.items()))


def _span(reader: Reader, raw: dict[str, Any], where: str, integral_step: bool) -> tuple[float, float, float]:
    lo = float(reader.get(raw, "min", f"{where}.min", NUMBER, 0.0))
    hi = float(reader.get(raw, "max", f"{where}.max", NUMBER, 1.0))
    step = float(reader.get(raw, "step", f"{where}.step", NUMBER, 0.0)) if integral_step else 0.0
    for key, number in (("min", lo), ("max", hi), ("step", step)):
        if not math.isfinite(number):
            reader.fail(f"{where}.{key}", f"expected a finite number, got {number}")
    if lo >= hi:
        reader.fail(f"{where}.min", f"must be less than max (got min={number_text(lo)}, max={number_text(hi)})")
    if step < 0 or step > hi - lo:
        reader.fail(
            f"{where}.step", f"expected 0 (continuous) up to max-min={number_text(hi - lo)}, got {number_text(step)}"
        )
    if 0 < step < (hi - lo) * 1e-9:
        reader.fail(f"{where}.step", f"expected 0 (continuous) or at least a billionth of max-min, got {step}")
    return lo, hi, step


def _display(reader: Reader, raw: dict[str, Any], where: str) -> dict[str, Any]:
    decimals = reader.get(raw, "decimals", f"{where}.decimals", int, None)
    if decimals is not None and not 0 <= decimals <= 6:
        reader.fail(f"{where}.decimals", f"expected 0-6, got {decimals}")
    return {"unit": reader.get(raw, "unit", f"{where}.unit", str, ""), "decimals": decimals}


def _choice(reader: Reader, raw: dict[str, Any], key: str, where: str, allowed: tuple[str, ...], default: str) -> Any:
    value = reader.get(raw, key, f"{where}.{key}", str, default)
    if value not in allowed:
        reader.fail(f"{where}.{key}", f"expected {' or '.join(repr(a) for a in allowed)}, got {value!r}")
    return value


def _numeric(reader: Reader, raw: dict[str, Any], where: str, c: Control) -> Control:
    lo, hi, step = _span(reader, raw, where, c.type != "meter")
    default = reader.get(raw, "value", f"{where}.value", NUMBER, lo)
    if not lo <= default <= hi:
        reader.fail(
            f"{where}.value",
            f"default must lie within min-max ({number_text(lo)}-{number_text(hi)}), got {number_text(default)}",
        )
    # Gathered and built once (a reload of a hundred controls built each one five times over).
    fields: dict[str, Any] = {"min": lo, "max": hi, "step": step, **_display(reader, raw, where)}
    fields["orientation"] = _choice(reader, raw, "orientation", where, ORIENTATIONS, "horizontal")
    if c.type == "meter":
        hold = reader.get(raw, "peak_hold", f"{where}.peak_hold", NUMBER, 0.0)
        if not 0 <= hold <= 60:
            reader.fail(f"{where}.peak_hold", f"expected 0 (no peak) to 60 seconds, got {hold}")
        fields["peak_hold"] = float(hold)
    else:
        takeover = reader.get(raw, "takeover", f"{where}.takeover", str, None)
        if takeover is not None and takeover not in TAKEOVER_MODES:
            reader.fail(f"{where}.takeover", f'expected "jump" or "pickup", got {takeover!r}')
        fields["takeover"] = takeover
        fields["touch"] = _choice(reader, raw, "touch", where, TOUCH_MODES, "relative")
        fields["reset"] = reader.get(raw, "reset", f"{where}.reset", bool, False)
    c = replace(c, **fields)
    return replace(c, default=snap(c, float(default)))


def _switch(reader: Reader, raw: dict[str, Any], where: str, c: Control) -> Control:
    default = reader.get(raw, "value", f"{where}.value", (int, bool), 0)
    if default not in (0, 1):
        reader.fail(f"{where}.value", f"expected 0 or 1 (or true/false), got {default!r}")
    on, off = wire.payload(reader, raw, "on", where), wire.payload(reader, raw, "off", where)
    mode: Any = _choice(reader, raw, "mode", where, BUTTON_MODES, "push") if c.type == "button" else "push"
    if mode == "trigger" and default:
        reader.fail(f"{where}.value", "a trigger button stores nothing: leave value out")
    if mode == "push" and on is not None and off is not None and on == off and type(on) is type(off):
        reader.fail(f"{where}.off", f"must differ from on ({on!r}), or nobody can tell them apart")
    confirm = reader.get(raw, "confirm", f"{where}.confirm", bool, False)
    return replace(c, default=int(default), min=0.0, max=1.0, step=1.0, on=on, off=off, mode=mode, confirm=confirm)


def _select(reader: Reader, raw: dict[str, Any], where: str, c: Control) -> Control:
    listed = raw.get("options")
    if not isinstance(listed, list) or not listed:
        reader.fail(
            f"{where}.options", 'expected a list of choices: ["a", "b"], numbers, or { value = 1, label = "One" }'
        )
    options: list[Option] = []
    for i, item in enumerate(listed):
        place = f"{where}.options[{i}]"
        if isinstance(item, dict):
            reader.keys(item, place, {"value", "label"})
            value, label = item.get("value"), item.get("label")
            if label is not None and not isinstance(label, str):
                reader.fail(f"{place}.label", f"expected a string, got {label!r}")
        else:
            value, label = item, None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            reader.fail(place, f"expected a string or a number as the option's value, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            reader.fail(place, f"expected a finite number, got {value!r}")
        option = Option(value, label if label is not None else str(value))
        if Control("x", "select", "", 0, "", options=tuple(options)).option_index(value) is not None:
            reader.fail(place, f"option {value!r} is listed twice")
        options.append(option)
    default = raw.get("value", options[0].value)
    c = replace(c, options=tuple(options), style=_choice(reader, raw, "style", where, SELECT_STYLES, "buttons"))
    index = c.option_index(default)
    if index is None:
        reader.fail(f"{where}.value", f"expected one of the options, got {default!r}")
    return replace(c, default=options[index].value)


def _text(reader: Reader, raw: dict[str, Any], where: str, c: Control) -> Control:
    default = reader.get(raw, "value", f"{where}.value", str, "")
    if len(default) > MAX_TEXT_LENGTH:
        reader.fail(f"{where}.value", f"at most {MAX_TEXT_LENGTH} characters")
    return replace(c, default=default)


def _label(reader: Reader, raw: dict[str, Any], where: str, c: Control) -> Control:
    default = reader.get(raw, "value", f"{where}.value", (str, int, float), "")
    if isinstance(default, str) and len(default) > MAX_TEXT_LENGTH:
        reader.fail(f"{where}.value", f"at most {MAX_TEXT_LENGTH} characters")
    if isinstance(default, float) and not math.isfinite(default):
        reader.fail(f"{where}.value", f"expected a finite number or a string, got {default!r}")
    return replace(c, default=default, **_display(reader, raw, where))


def _led(reader: Reader, raw: dict[str, Any], where: str, c: Control) -> Control:
    thresholds: list[tuple[float, str]] = []
    for i, pair in enumerate(reader.get(raw, "colors", f"{where}.colors", list, [])):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or isinstance(pair[0], bool)
            or not isinstance(pair[0], NUMBER)
            or not isinstance(pair[1], str)
            or not is_color(pair[1])
        ):
            reader.fail(f"{where}.colors[{i}]", f'expected [threshold, "#rrggbb"], got {pair!r}')
        if thresholds and pair[0] <= thresholds[-1][0]:
            reader.fail(f"{where}.colors[{i}]", "thresholds must rise from one colour to the next")
        thresholds.append((float(pair[0]), pair[1].lower()))
    c = replace(c, colors=tuple(thresholds))
    if c.colors:
        default = reader.get(raw, "value", f"{where}.value", NUMBER, thresholds[0][0])
        return replace(c, default=default)
    default = reader.get(raw, "value", f"{where}.value", (int, bool), 0)
    if default not in (0, 1):
        reader.fail(f"{where}.value", f"expected 0 or 1 (or true/false), got {default!r}")
    return replace(c, default=int(default), max=1.0, step=1.0)


_TYPES = {
    "range": _numeric,
    "knob": _numeric,
    "meter": _numeric,
    "toggle": _switch,
    "button": _switch,
    "select": _select,
    "text": _text,
    "label": _label,
    "led": _led,
}


def _with_wire(reader: Reader, raw: dict[str, Any], where: str, c: Control) -> Control:
    """The control's ``osc`` and ``midi`` tables, read once its type and range are known."""
    has_value = not c.trigger
    span = (c.min, c.max)
    form = wire.osc_form(reader, raw.get("osc"), f"{where}.osc", c.id, c.type, has_value, span)
    c = replace(c, osc=form.address, osc_args=form.args, osc_types=form.types, osc_scale=form.scale, osc_json=form.json)
    if form.types is not None and (form.args is None or VALUE in form.args):
        # The value's tag must carry what on and off say ("go" under an "i" went out as i 0).
        tag = form.types[0 if form.args is None else form.args.index(VALUE)]
        for key in ("on", "off"):
            given = getattr(c, key) if key in raw else None
            if given not in (None, ()) and not wire.tag_fits(tag, given):
                reader.fail(f"{where}.{key}", f"{given!r} does not fit the type tag {tag!r} of osc.types")
    if "midi" in raw:
        if c.type == "text" or (c.type == "label" and isinstance(c.default, str)):
            if c.type == "text":
                reader.fail(f"{where}.midi", "a text control has no MIDI form; remove this key")
            # A label's kind is its value's: left out, that is "" (text).
            said = "its value is text" if "value" in raw else 'its value, left out, is text ("")'
            fix = "give it a number (value = 0) or remove this key"
            reader.fail(f"{where}.midi", f"a label of text has no MIDI form ({said}); {fix}")
        options = tuple(o.value for o in c.options)
        binding = wire.midi_binding(reader, raw["midi"], f"{where}.midi", c.type, span, options)
        if c.type == "select" and binding.kind == "note":
            reader.fail(f"{where}.midi", "a select takes cc, nrpn, pitchbend or program (each option a share)")
        c = replace(c, midi=binding)
    return c


def parse_midi_binding(raw: object, where: str, control: Control, name: str) -> MidiBinding:
    """A ``midi`` table for ``control`` as the config writes it, checked by the config's rules.

    Raises :class:`ConfigError` naming ``name`` (the file it came from) and ``where``.
    """
    options = tuple(o.value for o in control.options)
    return wire.midi_binding(Reader(name), raw, where, control.type, (control.min, control.max), options)


def osc_signature(control: Control) -> tuple[object, ...]:
    """What an incoming message must show to reach this control: its address and the constants' places."""
    template = control.osc_args if control.osc_args is not None else (VALUE,)
    return (control.osc, tuple(("value",) if a is VALUE else ("const", _key(a)) for a in template))


def _key(arg: object) -> object:
    if isinstance(arg, bool):
        return ("bool", arg)
    if isinstance(arg, int | float):
        return ("number", float(arg))
    return ("text", arg)


def check_unique(reader: Reader, built: tuple[Control, ...]) -> None:
    """No two controls share an id, an OSC address with the same constants, or a MIDI slot."""
    ids: dict[str, str] = {}
    oscs: dict[tuple[object, ...], str] = {}
    midis: dict[Slot, str] = {}
    nrpn_channels = {c.midi.channel: c.id for c in built if c.midi is not None and c.midi.kind == "nrpn"}
    for control in built:
        where = f"{control.where} ({control.id})"
        if control.id in ids:
            reader.fail(f"{control.where}.id", f"duplicate id {control.id!r} (also {ids[control.id]})")
        ids[control.id] = control.where
        signature = osc_signature(control)
        if signature in oscs:
            same = "" if control.osc_args is None else " with the same constant arguments"
            reader.fail(f"{where}.osc", f"OSC address {control.osc!r}{same} is already used by {oscs[signature]!r}")
        oscs[signature] = control.id
        if control.midi is None:
            continue
        for slot, _part in slots(control.midi):
            if slot in midis:
                reader.fail(f"{where}.midi", f"{describe_slot(slot)} is already used by {midis[slot]!r}")
            midis[slot] = control.id
            kind, channel, number = slot
            if kind == "cc" and number in NRPN_CARRIERS and channel in nrpn_channels:
                reader.fail(
                    f"{where}.midi",
                    f"MIDI channel {channel} cc {number} carries the NRPNs of {nrpn_channels[channel]!r}: "
                    "use another cc or channel",
                )


def describe_slot(slot: Slot) -> str:
    kind, channel, number = slot
    if kind == "pitchbend":
        return f"MIDI channel {channel} pitch bend"
    if kind == "program":
        return f"MIDI channel {channel} program change"
    return f"MIDI channel {channel} {kind} {number}"
