"""What a start reads back from the state file: the values, the desk's labels and colours, and the values from
before a reload changed them.

The file is written by :class:`bridge.state.StateStore`; ``"values"`` is the
only part a start cannot do without, and the one whose faults are said and
moved aside (:func:`bridge.state.read_document`). The other parts are read
as far as they go.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from bridge.errors import InvalidValue
from bridge.model import MAX_TEXT_LENGTH, Control, Value
from bridge.state import read_document
from bridge.validation import normalize

log = logging.getLogger(__name__)

#: The state file's part with the values a reload (or a start) had to change, for controls nobody moved since.
BEFORE_RELOAD = "before_reload"


def load_state(
    path: Path,
    controls: dict[str, Control],
    elsewhere: dict[str, Any] | None = None,
    displaced: dict[str, Value] | None = None,
    looks: dict[str, Any] | None = None,
) -> dict[str, Value]:
    """Read saved values; a corrupt file is moved aside and ``{}`` returned.

    A number out of its control's new range (the config changed) is clamped
    into it, as a reload does; any other value that no longer fits is left
    out, so its control starts at its default; both with a warning, and the
    value it had goes to ``displaced`` when given (the hub gives it back at a
    reload that takes it). A value a reload had changed comes back when this
    config takes it again. A push pad or a trigger starts released: nobody
    holds it after a restart. Values of controls the config no longer has go
    to ``elsewhere`` when given (the hub keeps them for when the control comes
    back). The labels and colours a desk gave go to ``looks`` when given: the
    file is read once.
    """
    if not os.path.lexists(path):
        log.info("no state file at %s yet; every control starts from its value in the config", path)
        return {}
    document: dict[str, Any] = {}
    saved = read_document(path, "values", "state file", "starting from defaults", rest=document)
    if saved is None:
        return {}
    if looks is not None:
        looks.update(part(document, "looks"))
    earlier = {cid: value for cid, value in part(document, BEFORE_RELOAD).items() if plain(value)}
    values: dict[str, Value] = {}
    absent = [cid for cid in saved if cid not in controls]
    if absent:  # one line, however many a show's edits left (a list of 150 at every start was noise)
        shown = ", ".join(absent[:8]) + (f" and {len(absent) - 8} more" if len(absent) > 8 else "")
        log.info(
            "state file %s: %d values of controls not in the config kept for when they are: %s",
            path,
            len(absent),
            shown,
        )
    for cid, raw in saved.items():
        control = controls.get(cid)
        if control is None:
            kept = earlier.get(cid, raw)  # the value from before a reload, if it is of the saved one's kind
            if not isinstance(kept, str) == isinstance(raw, str):
                kept = raw
            if elsewhere is not None and plain(kept):
                elsewhere[cid] = kept
            continue
        if control.push or control.trigger:
            continue  # released: a pad held at a crash or a stop has nobody on it now
        if cid in earlier:  # a reload (or a start) had changed it, and nobody moved it since
            wanted = earlier[cid]
            try:
                value = fitted(control, wanted)
            except InvalidValue:
                value = None  # still refused: the saved value, as if nothing were kept
            if value is not None and value == wanted:
                values[cid] = value
                if value != raw:
                    log.info(
                        "state file %s: %s given back its %r, its value before a reload changed it", path, cid, value
                    )
                continue
            if displaced is not None:
                displaced[cid] = wanted
            if value is not None:  # clamped from it, as a reload clamps
                if value != raw:
                    log.warning(
                        "state file %s: %s=%r (before a reload) fits its range now as %r", path, cid, wanted, value
                    )
                values[cid] = value
                continue
        try:
            value = fitted(control, raw)
        except InvalidValue as err:
            log.warning("state file %s: %s; %s reset to its default %r", path, err, cid, control.default)
            if displaced is not None:
                displaced.setdefault(cid, raw)
            continue
        if value != raw:
            log.warning("state file %s: %s=%r does not fit its range or step now; set to %r", path, cid, raw, value)
            if displaced is not None:
                displaced.setdefault(cid, raw)
        values[cid] = value
    return values


def fitted(control: Control, value: object) -> Value:
    """``value`` as ``control`` stores it: a number clamped or stepped into its range; anything else it must take
    as it is. Raises :class:`InvalidValue`."""
    stored = normalize(control, value)
    if stored != value and not control.numeric:
        raise InvalidValue(control.id, value, "no longer fits its control")
    return stored


def plain(value: object) -> bool:
    """A value a control could have: a finite number, a flag, a short text (not what a hand left in a file)."""
    if isinstance(value, str):
        return len(value) <= MAX_TEXT_LENGTH
    if isinstance(value, int):  # (a bool too)
        return abs(value) <= 2**53
    return isinstance(value, float) and math.isfinite(value)


def part(document: dict[str, Any], key: str) -> dict[str, Any]:
    """An object of the state file beside its values, ``{}`` when there is none (or not an object)."""
    found = document.get(key)
    return found if isinstance(found, dict) else {}
