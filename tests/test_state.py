"""Saved state: restart keeps values, kill -9 loses at most a second, corrupt files are moved aside."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from bridge.config import load_config
from bridge.model import Control
from bridge.restore import load_state
from bridge.state import sweep, write_atomic
from tests.helpers import CONTROLS_TOML, BridgeProcess, Client, wait_until, write_config

Start = Callable[..., BridgeProcess]
Connect = Callable[[str], Client]


def saved_values(path: Path) -> dict[str, object]:
    return dict(json.loads(path.read_text(encoding="utf-8"))["values"])


def test_restart_keeps_values(tmp_path: Path, bridge_factory: Start, client_factory: Connect) -> None:
    config = write_config(tmp_path)
    first = bridge_factory(config)
    a = client_factory(first.url)
    a.send("slider1", 42)
    a.send("txt1", "after the break")
    wait_until(lambda: first.get_json("/api/values")["txt1"] == "after the break", what="values applied")
    assert first.stop() == 0
    cut_short = [tmp_path / ".state.json.k9.tmp", tmp_path / f".{config.name}.k9.tmp"]  # a kill -9 mid-save
    for leftover in cut_short:
        leftover.write_text("half", encoding="utf-8")
        os.utime(leftover, (time.time() - 3600, time.time() - 3600))
    second = bridge_factory(config)
    assert not any(leftover.exists() for leftover in cut_short)
    values = second.get_json("/api/values")
    assert values["slider1"] == 42 and values["txt1"] == "after the break"
    b = client_factory(second.url)
    assert b.wait_event("snapshot")["values"]["slider1"] == 42


def test_a_second_bridge_on_the_same_state_file_is_refused_and_writes_nothing(
    tmp_path: Path, bridge_factory: Start
) -> None:
    config = write_config(tmp_path)
    first = bridge_factory(config)
    first.put_values(slider1=42)
    state = tmp_path / "state.json"
    wait_until(lambda: state.exists() and saved_values(state)["slider1"] == 42, what="the first save")
    second = bridge_factory(config, wait=False)  # the same show started twice (another port)
    assert second.proc is not None and second.proc.wait(timeout=30) == 1
    assert f"state file {state} is in use by another Stage Bridge (process {first.proc.pid})" in second.output()
    first.put_values(slider1=43)
    wait_until(lambda: saved_values(state)["slider1"] == 43, what="the next save")
    assert first.stop() == 0
    assert saved_values(state)["slider1"] == 43  # nobody wrote older values over it
    third = bridge_factory(config)  # the lock went with the first
    assert third.get_json("/api/values")["slider1"] == 43


def test_kill_9_after_a_burst_loses_at_most_the_last_second(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    config = write_config(tmp_path)
    state = tmp_path / "state.json"
    proc = bridge_factory(config)
    a = client_factory(proc.url)
    for i in range(500):
        a.send("slider2", i % 50)
        a.send("txt1", f"burst {i}")
    wait_until(lambda: proc.get_json("/api/values")["txt1"] == "burst 499", what="burst applied")
    # Saved within SAVE_DELAY (0.2 s) of the last change; the deadline is generous for a loaded machine.
    wait_until(lambda: state.exists() and saved_values(state).get("txt1") == "burst 499", what="state saved")
    proc.kill()
    values = saved_values(state)  # a whole JSON document, never half-written
    assert values["txt1"] == "burst 499" and values["slider2"] == 499 % 50
    restarted = bridge_factory(config)
    assert restarted.get_json("/api/values")["txt1"] == "burst 499"


def test_kill_9_during_a_flood_never_leaves_a_broken_file(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    config = write_config(tmp_path)
    state = tmp_path / "state.json"
    for round_ in range(3):
        proc = bridge_factory(config)
        a = client_factory(proc.url)
        for i in range(300):
            a.send("txt1", f"round {round_} change {i} " + "x" * 200)
        wait_until(lambda: state.exists(), what="a first save")
        proc.kill()  # mid-flood, mid-write perhaps
        values = saved_values(state)
        assert isinstance(values["txt1"], str)


def test_corrupt_state_file_is_moved_aside(tmp_path: Path, bridge_factory: Start) -> None:
    config = write_config(tmp_path)
    state = tmp_path / "state.json"
    state.write_text('{"values": {"slider1": 4', encoding="utf-8")
    proc = bridge_factory(config)
    assert proc.get_json("/api/values")["slider1"] == 25  # the default
    aside = list(tmp_path.glob("state.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text(encoding="utf-8") == '{"values": {"slider1": 4'
    assert "corrupt" in proc.output() and "WARNING" in proc.output()


@pytest.mark.parametrize(
    ("content", "moved"),
    [
        (bytes(range(256)) * 2, True),  # not UTF-8: the start-up stopped on a traceback
        (b'{"values": {"slider1": ' + b"[" * 5000 + b"]" * 5000 + b"}}", True),  # too deep to read
        (b'{"values": {"slider1": 1' + b"0" * 400 + b', "slider2": 7}}', False),  # a number beyond any float
    ],
)
def test_a_state_file_no_one_can_read_starts_the_show_from_defaults(
    tmp_path: Path, bridge_factory: Start, content: bytes, moved: bool
) -> None:
    config = write_config(tmp_path)
    (tmp_path / "state.json").write_bytes(content)
    proc = bridge_factory(config)
    values = proc.get_json("/api/values")
    assert values["slider1"] == 25  # the default
    assert values["slider2"] == (0 if moved else 7)  # the rest of a readable file is kept
    assert len(list(tmp_path.glob("state.json.corrupt-*"))) == (1 if moved else 0)
    assert "WARNING" in proc.output() and "Traceback" not in proc.output()


@pytest.mark.unit
def test_a_value_out_of_a_narrowed_range_is_clamped_and_one_that_no_longer_fits_is_reset_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(write_config(tmp_path))
    state = tmp_path / "state.json"
    state.write_text(
        json.dumps({"version": 1, "values": {"slider1": 80, "slider2": 9, "toggle1": "on", "gone": 3}}),
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING):
        values = load_state(state, {c.id: c for c in config.controls})
    assert values == {"slider1": 50, "slider2": 9}  # clamped at start as a reload clamps it
    assert "slider1=80 does not fit its range or step now; set to 50" in caplog.text and "toggle1" in caplog.text


@pytest.mark.unit
def test_values_of_controls_not_in_the_config_are_kept_and_said_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A show's edits leave values of removed controls behind (kept for when they come back): one line at
    start names the first few and counts the rest, where a line each was 150 lines at every start."""
    controls, state = show_and_state(tmp_path)
    gone = {f"old{n}": n for n in range(20)}
    state.write_text(json.dumps({"version": 1, "values": {"slider1": 5, **gone}}), encoding="utf-8")
    elsewhere: dict[str, object] = {}
    with caplog.at_level(logging.INFO, logger="bridge.restore"):
        assert load_state(state, controls, elsewhere) == {"slider1": 5}
    assert elsewhere == gone
    said = [r.getMessage() for r in caplog.records if "not in the config" in r.getMessage()]
    assert said == [
        f"state file {state}: 20 values of controls not in the config kept for when they are: "
        "old0, old1, old2, old3, old4, old5, old6, old7 and 12 more"
    ]


@pytest.mark.unit
def test_what_a_hand_left_in_before_reload_never_costs_a_saved_value(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """before_reload holds values a reload had to change; junk there (a word for a fader, a list, NaN) is passed
    over: the saved values stand, and NaN is never kept to be written back (it is no JSON)."""
    controls, state = show_and_state(tmp_path)
    state.write_text(
        '{"version": 1, "values": {"slider1": 42, "slider2": 7, "toggle1": 1, "txt1": "hello"}, "before_reload":'
        ' {"slider1": "junk", "slider2": NaN, "toggle1": {"x": 1}, "txt1": 12345, "fine": Infinity}}',
        encoding="utf-8",
    )
    displaced: dict[str, object] = {}
    assert load_state(state, controls, {}, displaced) == {"slider1": 42, "slider2": 7, "toggle1": 1, "txt1": "hello"}
    assert displaced == {"slider1": "junk", "txt1": 12345}  # plain values: given back if a control takes them

    # Controls no longer in the config keep their saved values over junk of another kind, or a huge number.
    state.write_text(
        json.dumps(
            {"version": 1, "values": {"gone": 5, "gone2": 7}, "before_reload": {"gone": "loud", "gone2": 10**400}}
        ),
        encoding="utf-8",
    )
    elsewhere: dict[str, object] = {}
    load_state(state, controls, elsewhere, {})
    assert elsewhere == {"gone": 5, "gone2": 7}


@pytest.mark.unit
def test_a_value_kept_from_before_a_reload_is_clamped_again_at_each_start_without_a_word_until_it_fits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    controls, state = show_and_state(tmp_path)  # slider1's max is 50
    state.write_text(
        json.dumps({"version": 1, "values": {"slider1": 50}, "before_reload": {"slider1": 80}}), encoding="utf-8"
    )
    displaced: dict[str, object] = {}
    with caplog.at_level(logging.INFO, logger="bridge.restore"):
        assert load_state(state, controls, {}, displaced) == {"slider1": 50}
    assert displaced == {"slider1": 80} and "slider1" not in caplog.text  # as it was at the last stop: no line

    wider = {**controls, "slider1": replace(controls["slider1"], max=100)}
    with caplog.at_level(logging.INFO, logger="bridge.restore"):
        assert load_state(state, wider, {}, {}) == {"slider1": 80}
    assert "slider1 given back its 80" in caplog.text


def show_and_state(folder: Path) -> tuple[dict[str, Control], Path]:
    """The test show's controls by id, and where its state file goes."""
    return {c.id: c for c in load_config(write_config(folder)).controls}, folder / "state.json"


@pytest.mark.unit
def test_pads_held_at_a_stop_start_released(tmp_path: Path) -> None:
    go = '[[controls]]\nid = "go"\ntype = "button"\nmode = "trigger"\n'
    config = load_config(write_config(tmp_path, controls=CONTROLS_TOML + go))
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"version": 1, "values": {"button1": 1, "go": 1, "toggle1": 1}}), encoding="utf-8")
    assert load_state(state, {c.id: c for c in config.controls}) == {"toggle1": 1}


@pytest.mark.unit
def test_a_state_file_with_a_byte_order_mark_is_read_and_a_missing_one_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    controls, state = show_and_state(tmp_path)
    with caplog.at_level(logging.INFO):
        assert load_state(state, controls) == {}
    assert f"no state file at {state} yet" in caplog.text
    state.write_bytes(b"\xef\xbb\xbf" + json.dumps({"values": {"slider1": 3}}).encode())  # as Windows Notepad saves
    assert load_state(state, controls) == {"slider1": 3}
    assert list(tmp_path.glob("state.json.*")) == []


@pytest.mark.unit
def test_a_state_file_of_a_newer_bridge_is_read_said_and_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A rollback mid-tour: the older bridge reads what it can, and its next save would write its own
    # format over the newer one's file; a copy of that is kept. It was read without a word.
    controls, state = show_and_state(tmp_path)
    newer = json.dumps({"version": 2, "values": {"slider1": 3}, "cues": ["kept"]})
    state.write_text(newer, encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert load_state(state, controls) == {"slider1": 3}
    assert "is a newer Stage Bridge's (format 2): read as it can be; a copy kept as state.json.format-2" in caplog.text
    assert (tmp_path / "state.json.format-2").read_text(encoding="utf-8") == newer


@pytest.mark.unit
def test_a_state_file_that_cannot_be_read_is_moved_aside_and_never_written_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    controls, state = show_and_state(tmp_path)
    state.mkdir()  # a folder: read_bytes fails as for a file another user wrote under sudo (root reads those)
    (state / "kept").write_text("the show's values", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert load_state(state, controls) == {}
    aside = list(tmp_path.glob("state.json.unreadable-*"))
    assert len(aside) == 1 and (aside[0] / "kept").read_text(encoding="utf-8") == "the show's values"
    assert "cannot be read" in caplog.text and f"moved to {aside[0]}" in caplog.text
    write_atomic(state, b"{}")  # and the next save has a clean place
    assert state.read_bytes() == b"{}"


@pytest.mark.unit
def test_saves_a_crash_cut_short_are_swept_and_a_recent_one_is_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    show = tmp_path / "show.toml"
    old, recent, other = tmp_path / ".show.toml.ab12.tmp", tmp_path / ".show.toml.cd34.tmp", tmp_path / ".x.tmp"
    for leftover in (old, recent, other):
        leftover.write_text("half a save", encoding="utf-8")
    os.utime(old, (time.time() - 3600, time.time() - 3600))  # a kill -9 an hour ago
    with caplog.at_level(logging.INFO):
        sweep(show)
    assert (old.exists(), recent.exists(), other.exists()) == (False, True, True)
    assert f"removed 1 unfinished save(s) of {show}" in caplog.text


@pytest.mark.unit
def test_write_atomic_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "s.json"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_unwritable_folder_warns_and_values_keep_flowing(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    config = write_config(tmp_path, state_file="ro/state.json")
    proc = bridge_factory(config)
    a, b = client_factory(proc.url), client_factory(proc.url)
    a.send("slider1", 1)
    wait_until(lambda: (folder / "state.json").exists(), what="first save")
    # Replace the folder by a file: every write fails, whoever runs the test (root included).
    for leftover in folder.iterdir():  # the state file and its lock
        leftover.unlink()
    folder.rmdir()
    folder.write_text("not a folder", encoding="utf-8")
    a.send("slider1", 2)
    b.wait_value("slider1", 2)
    wait_until(lambda: "cannot save state" in proc.output(), what="the warning")
    a.send("slider1", 3)
    b.wait_value("slider1", 3)
    assert proc.put_json("/api/scenes/Verse", None)[0] == 200  # kept in memory, its file refused too
    adapters = proc.get_json("/healthz")["adapters"]
    assert adapters["state"]["error"] == "File exists" and adapters["state"]["failing_since"]  # (the folder a file)
    assert adapters["scenes"]["error"] == "File exists"
    folder.unlink()
    folder.mkdir()
    wait_until(
        lambda: (folder / "state.json").exists() and saved_values(folder / "state.json")["slider1"] == 3,
        what="saving to resume",
    )
    assert proc.output().count("cannot save state") == 1
    wait_until(lambda: proc.get_json("/healthz")["adapters"]["scenes"]["error"] is None, what="the scenes saved")
    assert proc.get_json("/healthz")["adapters"]["state"] == {
        "file": str(folder / "state.json"),
        "error": None,
        "failing_since": None,
    }
    # A stop while the disk refuses says what is lost, rather than nothing.
    for leftover in folder.iterdir():  # the state, the scenes, the lock
        leftover.unlink()
    folder.rmdir()
    folder.write_text("not a folder", encoding="utf-8")
    a.send("slider1", 4)
    b.wait_value("slider1", 4)
    assert proc.stop() == 0
    assert "state NOT saved to" in proc.output() and "Traceback" not in proc.output()
