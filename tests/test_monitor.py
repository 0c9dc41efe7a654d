"""The message monitor: a bounded ring filled only while a page watches, sent only to the pages that watch."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mido
import pytest
import socketio
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.config import load_config
from bridge.echoes import ECHOED, Echoes
from bridge.hub import Hub
from bridge.monitor import IDLE, RING, Monitor, attach, describe, switched_on, targets
from bridge.osc.inbound import Inbound, Source
from tests.helpers import BridgeProcess, Client, wait_until, write_config

Start = Callable[..., BridgeProcess]


class Emitted:
    """What a monitor sent, as (event, payload, room)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, str]] = []

    def __call__(self, event: str, payload: Any, room: str) -> None:
        self.sent.append((event, payload, room))

    def of(self, event: str) -> list[Any]:
        return [payload for name, payload, _ in self.sent if name == event]


def packet(address: str, *args: object) -> bytes:
    builder = OscMessageBuilder(address=address)
    for arg in args:
        builder.add_arg(arg)
    return bytes(builder.build().dgram)


@pytest.mark.unit
def test_nothing_is_recorded_until_a_page_watches_and_the_ring_keeps_the_last_500() -> None:
    emitted = Emitted()
    monitor = Monitor(emitted)
    assert monitor.watching is False
    answer = monitor.open("a")
    assert monitor.watching is True and answer["ok"] and answer["entries"] == [] and answer["size"] == RING
    for i in range(RING + 100):
        monitor.saw("http", "in", "127.0.0.1", "PUT /api/values/x", [i], "x")
    entries = monitor.open("b")["entries"]
    assert len(entries) == RING
    assert [e["args"] for e in entries[:2]] == ["100", "101"] and entries[-1]["args"] == str(RING + 99)


@pytest.mark.unit
def test_flush_sends_what_is_new_once_and_counts_what_a_flood_pushed_out() -> None:
    emitted = Emitted()
    monitor = Monitor(emitted)
    monitor.open("a")
    monitor.saw("web", "in", "page 1", "value changed", [1], "slider1")
    monitor.flush()
    monitor.flush()  # nothing new: nothing sent
    [first] = emitted.of("monitor")
    assert [e["control"] for e in first["entries"]] == ["slider1"] and first["skipped"] == 0
    assert emitted.sent[0][2] == "monitor"  # to the room of the watching pages only
    for i in range(RING + 20):
        monitor.saw("osc/udp", "in", "peer", "/x", [i], "x")
    monitor.flush()
    second = emitted.of("monitor")[1]
    assert len(second["entries"]) == RING and second["skipped"] == 20


@pytest.mark.unit
def test_the_last_page_closing_stops_recording_and_leaves_a_note() -> None:
    monitor = Monitor(Emitted())
    monitor.open("a")
    monitor.open("b")
    monitor.close("a")
    assert monitor.watching is True
    monitor.close("b")
    assert monitor.watching is False
    entries = monitor.open("c")["entries"]
    assert entries[-1]["transport"] == "monitor" and "nothing recorded" in entries[-1]["what"]
    monitor.forget(lambda sid: sid == "c")  # a page that left without a word
    assert monitor.watching is False and monitor.watchers == 0


@pytest.mark.unit
def test_entries_say_what_a_person_reads() -> None:
    osc = describe((1, 1.5, "osc/udp", "out", "127.0.0.1:9000", packet("/mix/1", 0.5, "cue"), None, "fader"))
    assert (osc["what"], osc["args"], osc["t"]) == ("/mix/1", '0.5 "cue"', 1500)
    midi = mido.Message("control_change", channel=0, control=7, value=100)
    shown = describe((2, 0.0, "midi", "in", "nanoKONTROL2", midi, None, "master"))
    assert (shown["what"], shown["args"], shown["control"]) == (
        "control_change",
        "ch 1 · control 7 · value 100",
        "master",
    )
    note = describe((3, 0.0, "midi", "out", "x", mido.Message("note_on", channel=9, note=36, velocity=127), None, ""))
    assert note["args"] == "ch 10 · note 36 · velocity 127"
    plain = describe((4, 0.0, "web", "in", "page 1", "value changed", [b"\x00\x01", 3, True, None], "a"))
    assert plain["args"] == "<blob 2 bytes> 3 true null"
    assert describe((5, 0.0, "osc/udp", "out", "x", b"\x00garbage", None, ""))["what"] == "(8 bytes)"


@pytest.mark.unit
def test_the_lights_change_only_when_a_count_moves_or_stops_moving() -> None:
    emitted = Emitted()
    counts = {"osc_in": 0, "osc_out": 0}
    monitor = Monitor(emitted, counters=lambda: dict(counts))
    counts["osc_out"] = 12  # before the first look: the bridge's start, no light
    assert monitor.look() is None
    assert monitor.look() is None  # nothing moved: nothing said
    counts["osc_in"] = 3
    assert monitor.look() == {"osc_in": True, "osc_out": False}  # no MIDI lights: there is no MIDI
    counts["osc_in"] = 9
    assert monitor.look() is None  # still moving: still lit, nothing said
    assert monitor.look() == {"osc_in": False, "osc_out": False}
    assert monitor.lights == {"osc_in": False, "osc_out": False}
    assert [room for name, _, room in emitted.sent] == ["control", "control"]


@pytest.mark.unit
def test_osc_in_records_only_while_watched(tmp_path: Path) -> None:
    hub = Hub(load_config(write_config(tmp_path)).controls)
    inbound = Inbound(hub, (), {}, lambda args, source: None)
    assert inbound.monitor is IDLE
    monitor = Monitor(Emitted())
    attach(monitor, [inbound, None])
    assert inbound.monitor is monitor
    source = Source("127.0.0.1:5555", "127.0.0.1", lambda data: None)
    inbound.handle([(packet("/slider1", 10.0), source)])
    assert monitor.open("a")["entries"] == []  # not watched: not recorded
    inbound.handle([(packet("/slider1", 11.0), source), (packet("/nowhere", 1), source), (b"junk", source)])
    entries = monitor.open("b")["entries"]
    assert [(e["what"], e["args"], e["control"]) for e in entries] == [
        ("/slider1", "11", "slider1"),
        ("/nowhere", "1", ""),  # no control there: what an operator looks for when something does not respond
        ("(malformed, 4 bytes: neither a message (starts with /) nor a bundle (#bundle))", "", ""),
    ]
    assert all(e["transport"] == "osc/udp" and e["dir"] == "in" for e in entries)


@pytest.mark.unit
def test_an_echo_is_shown_as_one_and_applies_nothing(tmp_path: Path) -> None:
    """A peer sending back what the bridge just sent it: the operator sees why the message did nothing."""
    hub = Hub(load_config(write_config(tmp_path)).controls)
    echoes = Echoes()
    inbound = Inbound(hub, (), {}, lambda args, source: None, echoes=echoes)
    monitor = Monitor(Emitted())
    attach(monitor, [inbound])
    monitor.open("a")
    echoes.sent("127.0.0.1", packet("/slider1", 10.0), time.monotonic())
    source = Source("127.0.0.1:5555", "127.0.0.1", lambda data: None)
    inbound.handle([(packet("/slider1", 10.0), source), (packet("/slider1", 10.0), source)])
    entries = monitor.open("b")["entries"]
    assert [(e["what"], e["args"], e["control"]) for e in entries[-2:]] == [
        (f"/slider1 {ECHOED}", "10", ""),
        ("/slider1", "10", "slider1"),  # sent once, so known once: the second is a hand's
    ]
    assert inbound.echoed == 1 and hub.get("slider1") == 10


@pytest.mark.unit
def test_attach_leaves_the_idle_monitor_when_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    class Part:
        monitor = IDLE

    monkeypatch.setenv("STAGE_BRIDGE_MONITOR", "off")
    assert switched_on() is False
    part = Part()
    attach(Monitor(Emitted(), enabled=switched_on()), [part])
    assert part.monitor is IDLE
    monkeypatch.delenv("STAGE_BRIDGE_MONITOR")
    assert switched_on() is True


@pytest.mark.unit
def test_target_rows_come_from_the_health_document() -> None:
    status = {
        "adapters": {
            "web": {"clients": 3},
            "osc": {
                "listen": "0.0.0.0:9001",
                "received": 5,
                "dropped": 1,
                "targets": [{"address": "10.0.0.5:3032/tcp", "transport": "tcp", "state": "down", "sent": 0}],
            },
            "midi": {"input": {"name": "bridge", "state": "connected", "port": "bridge:in"}, "output": None},
            "cluster": {"name": "show", "state": "joined", "members": 3},
        }
    }
    rows = targets(status)
    assert rows[0] == {"transport": "web", "name": "pages", "state": "ok", "detail": "3 open"}
    assert {"transport": "osc/tcp", "name": "10.0.0.5:3032/tcp", "state": "down", "detail": "0 sent"} in rows
    assert {"transport": "midi", "name": "input bridge", "state": "connected", "detail": "bridge:in"} in rows
    assert rows[-1]["detail"] == "3 processes"


# -- Over Socket.IO, against the real server ---------------------------------------------------


class Watcher:
    """A python-socketio client that keeps every ``monitor`` batch it gets."""

    def __init__(self, url: str, key: str | None = None) -> None:
        self.sio = socketio.Client()
        self.batches: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.sio.on("monitor", self._keep)
        self.sio.connect(url, auth={"key": key} if key else None, wait_timeout=10)

    def _keep(self, batch: dict[str, Any]) -> None:
        with self._lock:
            self.batches.append(batch)

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [e for batch in self.batches for e in batch["entries"]]

    def close(self) -> None:
        self.sio.shutdown()


def test_only_pages_that_opened_the_drawer_get_messages(
    bridge_factory: Start, client_factory: Callable[..., Any]
) -> None:
    server = bridge_factory()
    watching: Watcher = client_factory(server.url, Watcher)
    other: Watcher = client_factory(server.url, Watcher)
    page: Client = client_factory(server.url)
    page.wait_event("snapshot")
    assert watching.sio.call("monitor open", None, timeout=10)["ok"] is True
    server.put_values(slider1=7)
    page.send("slider2", 9)
    wait_until(lambda: {e["transport"] for e in watching.entries()} >= {"http", "web"}, what="entries")
    put = next(e for e in watching.entries() if e["transport"] == "http")
    assert (put["dir"], put["what"], put["args"], put["control"]) == ("in", "PUT /api/values/slider1", "7", "slider1")
    sent = [e for e in watching.entries() if e["transport"] == "web" and e["dir"] == "in"]
    assert sent and sent[0]["what"] == "value changed" and sent[0]["control"] == "slider2"
    assert other.batches == []  # never opened: never sent anything

    assert watching.sio.call("monitor close", None, timeout=10)["ok"] is True
    seen = len(watching.entries())
    server.put_values(slider1=8)
    page.wait_value("slider1", 8)
    answer = watching.sio.call("monitor open", None, timeout=10)
    assert len(watching.entries()) == seen  # nothing came while closed
    assert not any(e["args"] == "8" and e["transport"] == "http" for e in answer["entries"])  # nor was recorded
    assert answer["entries"][-1]["transport"] == "monitor"


def test_the_monitor_switched_off_for_measuring_says_so(
    bridge_factory: Start, client_factory: Callable[..., Any], tmp_path: Path
) -> None:
    server = bridge_factory(write_config(tmp_path), env={"STAGE_BRIDGE_MONITOR": "off"})
    watcher: Watcher = client_factory(server.url, Watcher)
    answer = watcher.sio.call("monitor open", None, timeout=10)
    assert answer["ok"] is False and "STAGE_BRIDGE_MONITOR=off" in answer["error"]
