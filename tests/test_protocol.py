"""The Socket.IO protocol in-process, through Flask-SocketIO's test client (the real server runs in test_server.py).

The seed's protocol: ``snapshot`` on connect, ``value changed`` in,
``update value`` to every other client (the sender only when the server
changed its value), ``rejected`` for bad input; keys and roles as on the
real server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask_socketio import SocketIOTestClient

from bridge.app import Bridge
from bridge.config import load_config
from tests.helpers import CONTROLS_TOML, wait_until, write_config

pytestmark = pytest.mark.unit

KEY, VIEWER = "control-key-1", "viewer-key-1"


@pytest.fixture
def make_bridge(tmp_path: Path) -> Iterator[Callable[..., Bridge]]:
    """A bridge built in this process (no ports opened: only its Socket.IO side starts)."""
    built: list[Bridge] = []

    def make(server_extra: str = "", controls: str = CONTROLS_TOML) -> Bridge:
        config = write_config(tmp_path, state_file="", controls=controls)
        text = config.read_text(encoding="utf-8").replace("[server]\n", f"[server]\n{server_extra}")
        config.write_text(text, encoding="utf-8")
        bridge = Bridge(load_config(config))
        bridge.web.start()
        built.append(bridge)
        return bridge

    yield make
    for bridge in built:
        bridge.web.stop()


def client(bridge: Bridge, **kwargs: Any) -> SocketIOTestClient:
    return bridge.socketio.test_client(bridge.app, **kwargs)


def events(c: SocketIOTestClient, name: str, received: list[dict[str, Any]]) -> list[Any]:
    received.extend(c.get_received())
    return [e["args"][0] if e["args"] else None for e in received if e["name"] == name]


def test_snapshot_then_updates_reach_every_other_client(make_bridge: Callable[..., Bridge]) -> None:
    bridge = make_bridge()
    a, b = client(bridge), client(bridge)
    got_a: list[dict[str, Any]] = []
    got_b: list[dict[str, Any]] = []
    assert events(a, "snapshot", got_a)[0]["values"]["slider1"] == 25
    assert events(b, "snapshot", got_b)[0]["values"] == bridge.hub.values()
    a.emit("value changed", {"who": "slider1", "data": 40})
    wait_until(lambda: {"who": "slider1", "data": 40} in events(b, "update value", got_b), what="b updated")
    assert bridge.hub.get("slider1") == 40
    assert events(a, "update value", got_a) == []  # never its own change back


def test_a_clamped_value_is_sent_back_to_its_sender(make_bridge: Callable[..., Bridge]) -> None:
    bridge = make_bridge()
    a = client(bridge)
    got: list[dict[str, Any]] = []
    a.emit("value changed", {"who": "slider1", "data": 80})
    wait_until(lambda: {"who": "slider1", "data": 50} in events(a, "update value", got), what="the clamp echoed")


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"who": "nope", "data": 1}, "unknown control 'nope'"),
        ({"who": "slider1", "data": "25"}, "expected a number"),
        ({"who": "slider1"}, "missing field 'data'"),
        ("just text", "payload must be an object"),
    ],
)
def test_bad_input_is_rejected_and_nothing_is_stored(
    make_bridge: Callable[..., Bridge], message: object, reason: str
) -> None:
    bridge = make_bridge()
    a = client(bridge)
    before = bridge.hub.values()
    got: list[dict[str, Any]] = []
    a.emit("value changed", message)
    rejected = wait_until(lambda: events(a, "rejected", got), what="rejected")
    assert reason in rejected[0]["reason"]
    assert bridge.hub.values() == before


def test_a_flood_of_refused_changes_is_not_answered_one_by_one(make_bridge: Callable[..., Bridge]) -> None:
    # A script with a wrong id in a loop got a `rejected` per event, more than it could read: the
    # server held them all (515 MB in 8 s), the other browsers waited, and the process aborted.
    bridge = make_bridge()
    flooder, other = client(bridge), client(bridge)
    got: list[dict[str, Any]] = []
    for i in range(1000):
        flooder.emit("value changed", {"who": f"nope{i}", "data": 1})
    other.emit("value changed", {"who": "slider1", "data": 3})
    answered = len(events(flooder, "rejected", got))
    web = bridge.status()["adapters"]["web"]
    assert web["rejected"] == 1000 and answered + web["unanswered"] == 1000
    # 20 a second, in bursts of 20: answering all would take the loop 50 s.
    assert 20 <= answered < 1000
    moved = wait_until(lambda: events(flooder, "update value", got), what="the other's move")
    assert moved == [{"who": "slider1", "data": 3}]  # the others go on


def test_keys_roles_and_the_reasons_of_a_refusal(make_bridge: Callable[..., Bridge]) -> None:
    bridge = make_bridge(f'key = "{KEY}"\nviewer_key = "{VIEWER}"\nmax_clients = 2\n')
    assert not client(bridge).is_connected()
    assert not client(bridge, auth={"key": "wrong-key-1"}).is_connected()
    viewer = client(bridge, auth={"key": VIEWER})
    controller = client(bridge, auth={"key": KEY})
    assert viewer.is_connected() and controller.is_connected()
    full = client(bridge, auth={"key": KEY})
    assert not full.is_connected()
    got: list[dict[str, Any]] = []
    viewer.emit("value changed", {"who": "slider1", "data": 3})
    rejected = wait_until(lambda: events(viewer, "rejected", got), what="the viewer refused")
    assert rejected[0]["reason"].startswith("read-only")
    assert bridge.hub.get("slider1") == 25
    controller.emit("value changed", {"who": "slider1", "data": 3})
    wait_until(lambda: {"who": "slider1", "data": 3} in events(viewer, "update value", got), what="viewer follows")


def test_ping_is_acknowledged_with_its_payload(make_bridge: Callable[..., Bridge]) -> None:
    bridge = make_bridge()
    a = client(bridge)
    assert a.emit("ping bridge", 1234, callback=True) == 1234


def test_an_http_press_of_a_trigger_answers_that_it_fired_and_that_nothing_is_stored(
    make_bridge: Callable[..., Bridge],
) -> None:
    go = '[[controls]]\nid = "go"\ntype = "button"\nmode = "trigger"\nosc = "/go"\n'
    bridge = make_bridge(controls=CONTROLS_TOML + go)
    http = bridge.app.test_client()
    press = http.put("/api/values/go", json={"value": 1})
    assert (press.status_code, press.get_json()) == (200, {"id": "go", "value": 0, "fired": True})
    assert http.put("/api/values/go", json={"value": 0}).get_json() == {"id": "go", "value": 0, "fired": False}
    assert http.get("/api/values").get_json()["go"] == 0
    assert http.put("/api/values/slider2", json={"value": 7.4}).get_json() == {"id": "slider2", "value": 7}
