"""The hub on its own: checks, stores, fans out in store order, and keeps one adapter's fault to itself."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from bridge.config import Config
from bridge.errors import InvalidValue, UnknownControl
from bridge.hub import Held, Hub
from bridge.model import Change, Control, Option, Origin

pytestmark = pytest.mark.unit

WEB = Origin("web", "s1")


class Recorder:
    """An adapter that writes down what it is handed."""

    name = "recorder"

    def __init__(self) -> None:
        self.changes: list[Change] = []

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def send(self, change: Change) -> None:
        self.changes.append(change)


class Broken(Recorder):
    name = "broken"

    def send(self, change: Change) -> None:
        raise RuntimeError("this adapter always fails")


def test_a_change_is_checked_stored_and_handed_to_every_adapter(hub: Hub) -> None:
    first, second = Recorder(), Recorder()
    hub.add_adapter(first)
    hub.add_adapter(second)
    applied = hub.set("slider1", 30, WEB)
    assert applied.changed and not applied.adjusted and applied.value == 30
    assert hub.get("slider1") == 30
    assert [(c.control_id, c.value, c.origin) for c in first.changes] == [("slider1", 30, WEB)]
    assert first.changes == second.changes


def test_an_equal_value_is_not_fanned_out_and_an_adjusted_one_says_so(hub: Hub) -> None:
    recorder = Recorder()
    hub.add_adapter(recorder)
    hub.set("slider1", 10, WEB)
    assert not hub.set("slider1", 10.0, WEB).changed  # 10 and 10.0 are one number
    clamped = hub.set("slider1", 99, WEB)
    assert clamped.value == 50 and clamped.adjusted and clamped.changed
    again = hub.set("slider1", 70, WEB)
    assert again.value == 50 and again.adjusted and not again.changed
    assert [c.value for c in recorder.changes] == [10, 50]


def test_bad_input_stores_nothing(hub: Hub) -> None:
    recorder = Recorder()
    hub.add_adapter(recorder)
    before = hub.values()
    with pytest.raises(UnknownControl):
        hub.set("nope", 1, WEB)
    with pytest.raises(InvalidValue):
        hub.set("slider1", "25", WEB)  # a string is not a number
    with pytest.raises(InvalidValue):
        hub.set("toggle1", 2, WEB)
    assert hub.values() == before and recorder.changes == []


def test_one_failing_adapter_does_not_stop_the_others(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    hub.add_adapter(Broken())
    hub.add_adapter(recorder)
    hub.set("slider2", 5, WEB)
    assert [c.value for c in recorder.changes] == [5]
    assert "adapter broken failed" in caplog.text


def test_adapters_see_changes_in_store_order_from_many_threads(config: Config) -> None:
    hub = Hub(config.controls)
    recorder = Recorder()
    hub.add_adapter(recorder)
    barrier = threading.Barrier(4)

    def hammer(seed: int) -> None:
        barrier.wait()
        for i in range(300):
            hub.set("slider1", (seed * 7 + i) % 51, Origin("web", str(seed)))

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Whatever the interleaving, the last change an adapter saw is the value stored.
    assert recorder.changes[-1].value == hub.get("slider1")
    assert all(a.value != b.value for a, b in zip(recorder.changes, recorder.changes[1:], strict=False))


def test_with_values_holds_the_fan_out_while_a_snapshot_is_taken(hub: Hub) -> None:
    recorder = Recorder()
    hub.add_adapter(recorder)
    seen: list[dict[str, object]] = []
    setter = threading.Thread(target=hub.set, args=("slider1", 42, WEB))

    def snapshot(values: dict[str, object]) -> None:
        seen.append(values)
        setter.start()
        # The change is stored (maybe) but not handed to any adapter while the snapshot is taken.
        setter.join(timeout=0.2)
        assert recorder.changes == []

    hub.with_values(snapshot)
    setter.join()
    assert seen[0]["slider1"] == 25 and [c.value for c in recorder.changes] == [42]


def test_restore_loads_values_without_fanning_out(hub: Hub) -> None:
    recorder = Recorder()
    hub.add_adapter(recorder)
    hub.restore({"slider1": 3, "gone": 1})
    assert hub.get("slider1") == 3 and "gone" not in hub.values() and recorder.changes == []


def test_a_change_reaches_the_browsers_fan_out_after_every_other_adapter(hub: Hub) -> None:
    """The web adapter writes to every browser while it holds a change: the desks and synths
    (OSC, MIDI) are handed it first, whatever the order the adapters were added in."""
    order: list[str] = []

    class Named(Recorder):
        def __init__(self, name: str, last: bool = False) -> None:
            super().__init__()
            self.name = name
            self.hand_last = last

        def send(self, change: Change) -> None:
            order.append(self.name)

    web, osc, midi = Named("web", last=True), Named("osc"), Named("midi")
    for adapter in (web, osc, midi):
        hub.add_adapter(adapter)
    hub.set("slider1", 10, WEB)
    assert order == ["osc", "midi", "web"]
    assert [a.name for a in hub.adapters] == ["web", "osc", "midi"]  # started (and stopped) as added
    order.clear()
    hub.replace_adapter(osc, Named("osc2"))
    hub.set("slider1", 11, WEB)
    assert order == ["osc2", "midi", "web"]


def test_a_reload_stand_in_hands_on_what_it_kept_in_order_but_not_a_stale_go(hub: Hub) -> None:
    old, new = Recorder(), Recorder()
    hub.add_adapter(old)
    held = Held("recorder")
    hub.replace_adapter(old, held)  # the old side stops: what comes now is kept
    for value in (1, 2, 3):
        hub.set("slider1", value, WEB)
    hub.hand_over(held, new)  # the new side runs: handed what was kept, then what comes
    hub.set("slider1", 4, WEB)
    assert [c.value for c in new.changes] == [1, 2, 3, 4] and not old.changes
    assert hub.adapters == (new,)

    go = Control(id="go", type="button", label="GO", default=0, osc="/go", mode="trigger")
    level = hub.controls["slider1"]
    stale = Held("recorder")
    stale.send(Change(go, 1, WEB))
    stale.send(Change(level, 5, WEB))
    stale.FIRE_WITHIN = -1.0  # the GO is older than that when the new side runs: never fired late
    assert [c.control.id for c in stale.take()] == ["slider1"]


def test_a_value_a_reload_had_to_change_comes_back_when_a_later_reload_takes_it_and_nothing_moved_it() -> None:
    """A range narrowed by a typo (max 100 typed as 10) and put right: the fader gets its 70 back, and the adapters
    are told at each step; once the control is moved, the earlier value is forgotten."""
    fader = Control(id="fader", type="range", label="Fader", default=0, osc="/fader", max=100)
    mode = Control(id="mode", type="toggle", label="Mode", default=0, osc="/mode")
    hub, seen = Hub([fader, mode]), Recorder()
    hub.add_adapter(seen)
    hub.set("fader", 70, WEB)
    hub.set("mode", 1, WEB)

    def reload(*controls: Control) -> dict[str, tuple[object, object]]:
        return dict(hub.reshape(controls, lambda _: None).adjusted)

    typo = replace(fader, max=10)
    as_select = replace(mode, type="select", options=(Option(5, "a"), Option(6, "b")), default=5)
    assert reload(typo, as_select) == {"fader": (70, 10), "mode": (1, 5)}
    assert reload(replace(fader, max=50), as_select) == {"fader": (10, 50)}  # still from 70, clamped
    assert reload(fader, mode) == {"fader": (50, 70), "mode": (5, 1)}  # put right: both given back
    assert hub.values() == {"fader": 70, "mode": 1}
    assert [(c.control.id, c.value) for c in seen.changes[2:]] == [
        ("fader", 10),
        ("mode", 5),
        ("fader", 50),
        ("fader", 70),
        ("mode", 1),
    ]

    # Moved after a reload changed it: the move is the value from then on.
    reload(typo, mode)
    hub.set("fader", 3, WEB)
    assert reload(fader, mode) == {}
    assert hub.values() == {"fader": 3, "mode": 1}

    # Removed while changed, then back: its value from before the typo, through a narrow range again.
    hub.set("fader", 70, WEB)
    reload(typo, mode)
    reload(mode)
    assert hub.parked() == {"fader": 70}
    assert reload(mode, typo) == {} and hub.values()["fader"] == 10
    assert reload(mode, fader) == {"fader": (10, 70)}


def test_a_control_renamed_starts_from_the_old_ones_value_and_what_was_kept_for_it() -> None:
    """The editor's rename: the new id has the old one's value as its controls come in (a page never sees its
    default), it goes to the adapters at the new address, the old id parks nothing, and a value kept from
    before a reload goes with it; a parked value of the new id gives way."""
    fader = Control(id="fader", type="range", label="Fader", default=0, osc="/fader", max=100)
    hub, seen = Hub([fader]), Recorder()
    hub.add_adapter(seen)
    hub.park({"lead": 5})
    hub.set("fader", 80, WEB)
    hub.reshape([replace(fader, max=10)], lambda _: None)  # a typo: clamped to 10, 80 kept
    lead = replace(fader, id="lead", osc="/lead", max=10)
    given: list[dict[str, object]] = []
    reshaped = hub.reshape([lead], lambda _: given.append(hub.values()), carried={"lead": "fader"})
    assert given == [{"lead": 10}] and reshaped.added == ("lead",) and reshaped.removed == ("fader",)
    assert [(c.control.id, c.value) for c in seen.changes[-1:]] == [("lead", 10)]
    assert hub.parked() == {} and hub.displaced() == {"lead": 80}
    assert hub.reshape([replace(lead, max=100)], lambda _: None).adjusted == {"lead": (10, 80)}
    # Not a rename (the new id is there already): nothing is carried; the old id, renamed before, is new.
    hub.reshape([lead, fader], lambda _: None, carried={"lead": "fader"})
    assert hub.values() == {"lead": 10, "fader": 0} and hub.displaced() == {"lead": 80}


def test_set_by_hand_to_the_value_a_reload_left_is_a_move_and_a_desk_confirming_it_is_not() -> None:
    """An operator who sets the clamped 10 on purpose keeps 10 when the range is put right; a desk or a motor
    fader that only reports back the 10 the reload sent it does not take the 80 away; nor does a cluster's
    value taken at start unless it differs."""
    fader = Control(id="fader", type="range", label="Fader", default=0, osc="/fader", max=100)
    typo = replace(fader, max=10)
    for origin, kept in ((Origin("osc", "desk"), True), (Origin("midi", "x-touch"), True), (WEB, False)):
        hub = Hub([fader])
        hub.set("fader", 80, WEB)
        hub.reshape([typo], lambda _: None)
        assert not hub.set("fader", 10, origin).changed
        hub.reshape([fader], lambda _: None)
        assert hub.values() == {"fader": 80 if kept else 10}, origin

    # A desk that sends 50 to the range typed as 0-10 moved it, though it is clamped to the 10 it has.
    hub = Hub([fader])
    hub.set("fader", 80, WEB)
    hub.reshape([typo], lambda _: None)
    version = hub.version
    assert not hub.set("fader", 50, Origin("osc", "desk")).changed
    assert hub.displaced() == {} and hub.version > version  # (so that the state file forgets it too)

    hub = Hub([fader])
    hub.set("fader", 80, WEB)
    hub.reshape([typo], lambda _: None)
    hub.restore({"fader": 10})  # what the cluster has is what this process has: kept
    assert hub.displaced() == {"fader": 80}
    hub.restore({"fader": 4})  # moved by another process meanwhile: that is the value
    hub.reshape([fader], lambda _: None)
    assert hub.values() == {"fader": 4} and hub.displaced() == {}
