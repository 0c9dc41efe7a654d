"""Value checks per control type, and properties of the hub under random input."""

from __future__ import annotations

import math
import threading
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.config import parse_config
from bridge.errors import InvalidValue, UnknownControl
from bridge.hub import Hub
from bridge.model import MAX_TEXT_LENGTH, Change, Control, Origin
from bridge.validation import normalize
from tests.helpers import CONTROLS_TOML, assert_in_bounds

pytestmark = pytest.mark.unit

TEST_CONFIG = parse_config(tomllib.loads(CONTROLS_TOML), Path("test.toml"))
RANGE = Control("r", "range", "R", 0, "/r", min=0, max=50, step=1)
FINE = Control("f", "range", "F", 0.0, "/f", min=-1.0, max=1.0, step=0.1)
CONT = Control("c", "range", "C", 0.0, "/c", min=0.0, max=1.0)
TOGGLE = Control("t", "toggle", "T", 0, "/t")
TEXT = Control("x", "text", "X", "", "/x")


@pytest.mark.parametrize(
    ("control", "raw", "stored"),
    [
        (RANGE, 25, 25),
        (RANGE, 25.4, 25),
        (RANGE, 60, 50),
        (RANGE, -3, 0),
        (RANGE, 24.6, 25),
        (FINE, 0.3, 0.3),
        (FINE, 0.34, 0.3),
        (FINE, 2, 1.0),
        (CONT, 0.123456, 0.123456),
        (TOGGLE, True, 1),
        (TOGGLE, 0, 0),
        (TOGGLE, 1.0, 1),
        (TEXT, "hello", "hello"),
        # A whole min and step with a fractional max: the end is kept, as a float.
        (Control("h", "range", "H", 0, "/h", min=0, max=1.5, step=1), 9, 1.5),
        (Control("h", "range", "H", 0, "/h", min=0, max=1.5, step=1), 1.2, 1.0),
        # An end with many decimals is never rounded out of bounds.
        (Control("e", "range", "E", 7.7e-233, "/e", min=7.7e-233, max=1.0, step=0.5), 0, 7.7e-233),
        (TEXT, "x" * (MAX_TEXT_LENGTH + 5), "x" * MAX_TEXT_LENGTH),
    ],
)
def test_normalize(control: Control, raw: object, stored: object) -> None:
    value = normalize(control, raw)
    assert value == stored
    assert type(value) is type(stored)


@pytest.mark.parametrize(
    ("control", "raw"),
    [
        (RANGE, "25"),
        (RANGE, None),
        (RANGE, True),
        (RANGE, math.nan),
        (RANGE, math.inf),
        (RANGE, -math.inf),
        (RANGE, [1]),
        (TOGGLE, 2),
        (TOGGLE, "on"),
        (TOGGLE, 0.5),
        (TEXT, 5),
        (TEXT, None),
    ],
)
def test_normalize_refuses(control: Control, raw: object) -> None:
    with pytest.raises(InvalidValue) as info:
        normalize(control, raw)
    assert info.value.control_id == control.id


@pytest.mark.parametrize("raw", [None, [1], {"v": 1}])
def test_a_label_refuses_what_is_neither_text_nor_a_number_and_says_so(raw: object) -> None:
    with pytest.raises(InvalidValue) as info:
        normalize(Control("l", "label", "L", "", "/l"), raw)
    assert info.value.reason == "expected a string or a number"


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.changes: list[Change] = []

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def send(self, change: Change) -> None:
        self.changes.append(change)


def test_hub_fans_out_once_with_origin(hub: Hub) -> None:
    rec = Recorder()
    hub.add_adapter(rec)
    origin = Origin("web", "sid1")
    applied = hub.set("slider1", 30, origin)
    assert applied.changed and applied.value == 30
    again = hub.set("slider1", 30.0, Origin("osc", "x"))
    assert not again.changed and not again.adjusted  # 30.0 is 30: nothing to tell the sender
    assert hub.set("slider1", 30.4, Origin("osc", "x")).adjusted  # stepped back to 30
    assert [(c.control_id, c.value, c.origin) for c in rec.changes] == [("slider1", 30, origin)]


def test_hub_refuses_unknown_and_keeps_values(hub: Hub) -> None:
    before = hub.values()
    with pytest.raises(UnknownControl):
        hub.set("nope", 1, Origin("web"))
    with pytest.raises(UnknownControl):
        hub.set(["slider1"], 1, Origin("web"))
    with pytest.raises(InvalidValue):
        hub.set("slider1", "abc", Origin("web"))
    assert hub.values() == before


def test_hub_last_value_wins_across_threads(hub: Hub) -> None:
    rec = Recorder()
    hub.add_adapter(rec)

    def sweep(offset: int) -> None:
        for i in range(2000):
            hub.set("slider1", (i + offset) % 51, Origin("web", str(offset)))

    threads = [threading.Thread(target=sweep, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Adapters saw changes in store order: the last one they saw is the stored value.
    assert rec.changes[-1].value == hub.get("slider1")


def _payloads() -> st.SearchStrategy[object]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=50),
        st.binary(max_size=10),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=8,
    )


@settings(max_examples=400, deadline=None)
@given(
    who=st.one_of(st.sampled_from(["slider1", "fine", "bend", "txt1", "toggle1", "button1"]), _payloads()),
    data=_payloads(),
)
def test_random_payloads_never_escape_or_break_bounds(who: object, data: object) -> None:
    hub = Hub(TEST_CONFIG.controls)
    try:
        hub.set(who, data, Origin("web", "fuzz"))
    except (UnknownControl, InvalidValue):
        pass
    assert_in_bounds(hub)
