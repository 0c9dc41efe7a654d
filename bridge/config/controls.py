"""The ``[[controls]]`` tables: each checked and built into a frozen :class:`Control` once."""

from __future__ import annotations

import math
from dataclasses import replace

from bridge.config.reader import ID_RE, NUMBER, OSC_ADDRESS_RE, Reader, number_text
from bridge.midi.codec import Slot, slots
from bridge.model import CONTROL_TYPES, MAX_TEXT_LENGTH, TAKEOVER_MODES, Control, MidiBinding
from bridge.validation import snap

_RESERVED_OSC_PREFIX = "/bridge/"

CONTROL_KEYS = {
    "id",
    "type",
    "label",
    "min",
    "max",
    "step",
    "value",
    "osc",
    "midi",
    "group",
    "unit",
    "decimals",
    "scene",
    "takeover",
}


def controls(reader: Reader, raw_controls: object) -> tuple[Control, ...]:
    """Every control of the config, checked one by one and then against each other."""
    if not isinstance(raw_controls, list) or not raw_controls:
        reader.fail("controls", "at least one [[controls]] table")
    built = tuple(control(reader, raw, i) for i, raw in enumerate(raw_controls))
    check_unique(reader, built)
    return built


def control(reader: Reader, raw: object, index: int) -> Control:
    where = f"controls[{index}]"
    if not isinstance(raw, dict):
        reader.fail(where, "must be a table")
    cid = reader.get(raw, "id", f"{where}.id", str, None)
    if cid is None or not ID_RE.match(cid):
        reader.fail(f"{where}.id", f"expected an id of letters, digits, _ or -, starting with a letter, got {cid!r}")
    where = f"controls[{index}] ({cid})"
    reader.keys(raw, where, CONTROL_KEYS)
    ctype = reader.get(raw, "type", f"{where}.type", str, None)
    if ctype not in CONTROL_TYPES:
        reader.fail(f"{where}.type", f"expected one of {', '.join(CONTROL_TYPES)}, got {ctype!r}")
    label = reader.get(raw, "label", f"{where}.label", str, cid)
    osc = reader.get(raw, "osc", f"{where}.osc", str, f"/{cid}")
    if not OSC_ADDRESS_RE.match(osc):
        reader.fail(f"{where}.osc", f'expected an OSC address such as "/{cid}" (no spaces or #*,?[]{{}}), got {osc!r}')
    if osc.startswith(_RESERVED_OSC_PREFIX) or osc == "/bridge":
        reader.fail(f"{where}.osc", f"addresses under /bridge are the bridge's own, got {osc!r}")
    group = reader.get(raw, "group", f"{where}.group", str, "")
    unit = reader.get(raw, "unit", f"{where}.unit", str, "")
    decimals = reader.get(raw, "decimals", f"{where}.decimals", int, None)
    if decimals is not None and not 0 <= decimals <= 6:
        reader.fail(f"{where}.decimals", f"expected 0-6, got {decimals}")
    scene = reader.get(raw, "scene", f"{where}.scene", bool, True)
    if ctype == "text" and "midi" in raw:
        reader.fail(f"{where}.midi", "a text control has no MIDI form; remove this key")
    midi = midi_binding(reader, raw["midi"], f"{where}.midi", ctype) if "midi" in raw else None
    takeover = reader.get(raw, "takeover", f"{where}.takeover", str, None)
    if takeover is not None and takeover not in TAKEOVER_MODES:
        reader.fail(f"{where}.takeover", f'expected "jump" or "pickup", got {takeover!r}')
    if takeover is not None and ctype != "range":
        reader.fail(f"{where}.takeover", f"only a range has takeover; this control is a {ctype}")

    if ctype == "range":
        lo = float(reader.get(raw, "min", f"{where}.min", NUMBER, 0.0))
        hi = float(reader.get(raw, "max", f"{where}.max", NUMBER, 1.0))
        step = float(reader.get(raw, "step", f"{where}.step", NUMBER, 0.0))
        for key, number in (("min", lo), ("max", hi), ("step", step)):
            if not math.isfinite(number):
                reader.fail(f"{where}.{key}", f"expected a finite number, got {number}")
        if lo >= hi:
            reader.fail(f"{where}.min", f"must be less than max (got min={number_text(lo)}, max={number_text(hi)})")
        if step < 0 or step > hi - lo:
            reader.fail(
                f"{where}.step",
                f"expected 0 (continuous) up to max-min={number_text(hi - lo)}, got {number_text(step)}",
            )
        if 0 < step < (hi - lo) * 1e-9:
            reader.fail(f"{where}.step", f"expected 0 (continuous) or at least a billionth of max-min, got {step}")
        default = reader.get(raw, "value", f"{where}.value", NUMBER, lo)
        if not lo <= default <= hi:
            reader.fail(
                f"{where}.value",
                f"default must lie within min-max ({number_text(lo)}-{number_text(hi)}), got {number_text(default)}",
            )
        built = Control(
            cid, "range", label, 0, osc, lo, hi, step, midi, group, unit, decimals, scene=scene, takeover=takeover
        )
        return replace(built, default=snap(built, float(default)))
    for key in ("min", "max", "step"):
        if key in raw:
            reader.fail(f"{where}.{key}", f"only a range has {key}; this control is a {ctype}")
    if ctype == "text":
        default_text = reader.get(raw, "value", f"{where}.value", str, "")
        if len(default_text) > MAX_TEXT_LENGTH:
            reader.fail(f"{where}.value", f"at most {MAX_TEXT_LENGTH} characters")
        return Control(cid, "text", label, default_text, osc, midi=midi, group=group, unit=unit, scene=scene)
    default_switch = reader.get(raw, "value", f"{where}.value", (int, bool), 0)
    if default_switch not in (0, 1):
        reader.fail(f"{where}.value", f"expected 0 or 1 (or true/false), got {default_switch!r}")
    return Control(cid, ctype, label, int(default_switch), osc, 0.0, 1.0, 1.0, midi, group, unit, scene=scene)


def parse_midi_binding(raw: object, where: str, ctype: str, name: str) -> MidiBinding:
    """A ``midi`` table as the config writes it, checked by the config's rules.

    Raises :class:`ConfigError` naming ``name`` (the file it came from) and ``where``.
    """
    return midi_binding(Reader(name), raw, where, ctype)


def midi_binding(reader: Reader, raw: object, where: str, ctype: str) -> MidiBinding:
    if not isinstance(raw, dict):
        reader.fail(where, "expected a table such as { channel = 1, cc = 7 }")
    reader.keys(raw, where, {"channel", "cc", "hires", "note", "pitchbend", "feedback"})
    channel = reader.get(raw, "channel", f"{where}.channel", int, 1)
    if not 1 <= channel <= 16:
        reader.fail(f"{where}.channel", f"expected 1-16, got {channel}")
    chosen = [k for k in ("cc", "note", "pitchbend") if k in raw]
    if len(chosen) != 1:
        reader.fail(where, "expected exactly one of cc = N, note = N or pitchbend = true")
    kind = chosen[0]
    hires = reader.get(raw, "hires", f"{where}.hires", bool, False)
    if hires and kind != "cc":
        reader.fail(f"{where}.hires", "only applies to cc")
    number = 0
    if kind == "pitchbend":
        if reader.get(raw, "pitchbend", f"{where}.pitchbend", bool, True) is not True:
            reader.fail(f"{where}.pitchbend", "expected true (or leave it out)")
    else:
        number = reader.get(raw, kind, f"{where}.{kind}", int, 0)
        top = 31 if hires else 127
        if not 0 <= number <= top:
            extra = " (a 14-bit cc uses N and N+32)" if hires else ""
            reader.fail(f"{where}.{kind}", f"expected 0-{top}{extra}, got {number}")
    feedback_default = kind == "note" and ctype in ("toggle", "button")
    feedback = reader.get(raw, "feedback", f"{where}.feedback", bool, feedback_default)
    final_kind = "cc14" if hires else kind
    return MidiBinding(channel=channel, kind=final_kind, number=number, feedback=feedback)  # type: ignore[arg-type]


def check_unique(reader: Reader, built: tuple[Control, ...]) -> None:
    """No two controls share an id, an OSC address or a MIDI slot."""
    ids: dict[str, int] = {}
    oscs: dict[str, str] = {}
    midis: dict[Slot, str] = {}
    for i, control in enumerate(built):
        if control.id in ids:
            reader.fail(f"controls[{i}].id", f"duplicate id {control.id!r} (also controls[{ids[control.id]}])")
        ids[control.id] = i
        if control.osc in oscs:
            reader.fail(
                f"controls[{i}] ({control.id}).osc",
                f"OSC address {control.osc!r} is already used by {oscs[control.osc]!r}",
            )
        oscs[control.osc] = control.id
        if control.midi is None:
            continue
        for slot, _part in slots(control.midi):
            if slot in midis:
                reader.fail(
                    f"controls[{i}] ({control.id}).midi",
                    f"{describe_slot(slot)} is already used by {midis[slot]!r}",
                )
            midis[slot] = control.id


def describe_slot(slot: Slot) -> str:
    kind, channel, number = slot
    if kind == "pitchbend":
        return f"MIDI channel {channel} pitch bend"
    return f"MIDI channel {channel} {kind} {number}"
