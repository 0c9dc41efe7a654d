"""Checks a raw value against its control and returns the value to store.

Pure functions: no I/O, no locks. Ranges, knobs and meters are clamped to
their bounds and snapped to their step (the caller tells the sender when
that changed the value); every other misfit raises :class:`InvalidValue`.
"""

from __future__ import annotations

import math
import re

from bridge.errors import InvalidValue
from bridge.model import MAX_TEXT_LENGTH, Control, Value


def normalize(control: Control, raw: object) -> Value:
    """Return ``raw`` as ``control`` stores it, or raise :class:`InvalidValue`."""
    if control.numeric:
        return _number_value(control, raw)
    if control.switch:
        return _switch_value(control, raw)
    if control.type == "select":
        return _option_value(control, raw)
    if control.type == "label":
        return _label_value(control, raw)
    if control.type == "led":  # with colours: any finite number, the colour by threshold
        return _finite(control, raw)
    return _text_value(control, raw)


def snap(control: Control, number: float) -> float | int:
    """Clamp ``number`` to the control's bounds and snap it to its step."""
    lo, hi = control.min, control.max
    value = min(max(number, lo), hi)
    if control.step > 0:
        steps = round((value - lo) / control.step)
        value = min(lo + steps * control.step, hi)
        # 0.1 * 3 is 0.30000000000000004; keep what a person would write,
        # but never at the price of leaving the bounds (an end like 1e-233).
        value = min(max(round(value, 12), lo), hi)
    if control.integral:
        return int(round(value))
    return float(value)


#: Half of a UTF-16 pair, alone: JSON can carry it (``"\\ud800"``), UTF-8 cannot.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _finite(control: Control, raw: object) -> float | int:
    # bool is an int in Python, but True is not a fader position.
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise InvalidValue(control.id, raw, "expected a number")
    try:
        finite = math.isfinite(raw)
    except OverflowError:  # an int beyond any float (JSON allows 400 digits)
        finite = False
    if not finite:
        raise InvalidValue(control.id, raw, "expected a finite number")
    return raw


def _text(raw: str) -> str:
    """Text as stored: at most MAX_TEXT_LENGTH characters, a lone surrogate shown as U+FFFD.

    Such a half character (a browser's broken emoji) could be neither saved
    nor sent as UTF-8: kept, it stopped the state file's writer.
    """
    return _LONE_SURROGATE.sub("\ufffd", raw[:MAX_TEXT_LENGTH])


def _number_value(control: Control, raw: object) -> float | int:
    return snap(control, float(_finite(control, raw)))


def _switch_value(control: Control, raw: object) -> int:
    if isinstance(raw, bool):
        return int(raw)
    if isinstance(raw, int | float) and raw in (0, 1):
        return int(raw)
    raise InvalidValue(control.id, raw, "expected 0 or 1 (or true/false)")


def _option_value(control: Control, raw: object) -> Value:
    index = control.option_index(raw)
    if index is None:
        choices = ", ".join(repr(o.value) for o in control.options)
        raise InvalidValue(control.id, raw, f"expected one of the options {choices}")
    return control.options[index].value


def _label_value(control: Control, raw: object) -> Value:
    if isinstance(raw, str):
        return _text(raw)
    if isinstance(raw, bool):
        return int(raw)
    if not isinstance(raw, int | float):
        raise InvalidValue(control.id, raw, "expected a string or a number")
    number = _finite(control, raw)
    return int(number) if isinstance(number, int) else float(number)


def _text_value(control: Control, raw: object) -> str:
    if not isinstance(raw, str):
        raise InvalidValue(control.id, raw, "expected a string")
    return _text(raw)
