"""The real server in a subprocess, driven by real python-socketio clients; over HTTP and over HTTPS (wss)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import ROOT, BridgeProcess, Client, secure, wait_until, write_config

Connect = Callable[[str], Client]


#: Connecting, syncing, snapshots, reconnection and the HTTP API run twice: plain, and with
#: ``tls = "auto"`` (Socket.IO over wss, the clients checking the certificate).
both = pytest.mark.parametrize("server", ["http", "https"], indirect=True)


@pytest.fixture
def server(
    request: pytest.FixtureRequest,
    bridge_factory: Callable[..., BridgeProcess],
    tmp_path: Path,
    certificate: tuple[Path, Path],
) -> BridgeProcess:
    scheme = getattr(request, "param", "http")
    config = write_config(tmp_path)
    if scheme == "https":
        secure(config, certificate)
    proc = bridge_factory(config)
    assert proc.url.startswith(f"{scheme}://")
    return proc


@both
def test_two_clients_sync_both_ways_without_echo(server: BridgeProcess, client_factory: Connect) -> None:
    a, b = client_factory(server.url), client_factory(server.url)
    a.wait_event("snapshot")
    b.wait_event("snapshot")
    a.send("slider1", 40)
    b.wait_value("slider1", 40)
    b.send("slider2", 7)
    a.wait_value("slider2", 7)
    b.send("txt1", "hello")
    a.wait_value("txt1", "hello")
    # A marker sent after everything: once B has it, A's echo would have arrived too.
    a.send("toggle1", 1)
    b.wait_value("toggle1", 1)
    b.send("slider2", 8)
    a.wait_value("slider2", 8)
    assert [u for u in a.of("update value") if u["who"] in ("slider1", "toggle1")] == []
    assert [u for u in b.of("update value") if u["who"] in ("slider2", "txt1")] == [] or all(
        u["who"] not in ("slider2", "txt1") for u in b.of("update value")
    )


@both
def test_late_joiner_and_reconnecting_client_get_snapshot(server: BridgeProcess, client_factory: Connect) -> None:
    a = client_factory(server.url)
    a.send("slider1", 12)
    a.send("txt1", "cue 3")
    wait_until(lambda: server.get_json("/api/values")["txt1"] == "cue 3", what="cue 3 stored")
    late = client_factory(server.url)
    snap = late.wait_event("snapshot")["values"]
    assert snap["slider1"] == 12 and snap["txt1"] == "cue 3"
    a.close()
    late.send("slider1", 13)
    again = client_factory(server.url)
    assert again.wait_event("snapshot")["values"]["slider1"] == 13


def test_clamped_and_stepped_values_come_back_to_the_sender(server: BridgeProcess, client_factory: Connect) -> None:
    a, b = client_factory(server.url), client_factory(server.url)
    a.wait_event("snapshot")
    a.send("slider1", 75)
    a.wait_value("slider1", 50)
    b.wait_value("slider1", 50)
    a.send("slider1", 10.4)
    a.wait_value("slider1", 10)
    b.wait_value("slider1", 10)
    a.send("fine", -7)
    a.wait_value("fine", -1.0)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"who": "nope", "data": 1}, "unknown control"),
        ({"who": "slider1", "data": "abc"}, "expected a number"),
        ({"who": "slider1", "data": None}, "expected a number"),
        ({"who": "slider1", "data": True}, "expected a number"),
        ({"who": "toggle1", "data": 5}, "expected 0 or 1"),
        ({"who": "txt1", "data": 12}, "expected a string"),
        ({"who": "slider1"}, "missing field 'data'"),
        ({"data": 3}, "missing field 'who'"),
        ("slider1=3", "payload must be an object"),
        ([1, 2], "payload must be an object"),
    ],
)
def test_bad_input_is_rejected_and_changes_nothing(
    server: BridgeProcess, client_factory: Connect, payload: object, reason: str
) -> None:
    a, b = client_factory(server.url), client_factory(server.url)
    a.wait_event("snapshot")
    before = server.get_json("/api/values")
    a.sio.emit("value changed", payload)
    rejected = a.wait_event("rejected")
    assert reason in rejected["reason"]
    assert server.get_json("/api/values") == before
    a.send("slider2", 33)  # the server still serves the next good change
    b.wait_value("slider2", 33)
    assert all(u["who"] != "slider1" for u in b.of("update value"))


@both
def test_http_api_reaches_sockets_and_agrees(server: BridgeProcess, client_factory: Connect) -> None:
    a = client_factory(server.url)
    a.wait_event("snapshot")
    status, body = server.put_json("/api/values/slider1", {"value": 44})
    assert (status, body) == (200, {"id": "slider1", "value": 44})
    a.wait_value("slider1", 44)
    a.send("slider2", 5)
    wait_until(lambda: server.get_json("/api/values")["slider2"] == 5, what="slider2 via socket")
    values = server.get_json("/api/values")
    assert values["slider1"] == 44 and list(values)[:2] == ["slider1", "slider2"]
    assert server.put_json("/api/values/nope", {"value": 1})[0] == 404
    status, body = server.put_json("/api/values/slider1", {"value": "loud"})
    assert status == 400 and "expected a number" in body["error"]
    assert server.put_json("/api/values/slider1", [44])[0] == 400
    assert server.get_json("/api/values")["slider1"] == 44
    health = server.get_json("/healthz")
    assert health["status"] == "ok"


@both
def test_page_is_rendered_with_current_values(server: BridgeProcess) -> None:
    server.put_json("/api/values/slider1", {"value": 31})
    html = server.get_text("/")
    assert 'id="slider1"' in html and 'value="31"' in html
    assert "socket.io" in html and "cdn" not in html.lower()


def test_the_served_process_runs_on_gevent(server: BridgeProcess) -> None:
    assert server.get_json("/healthz")["server_model"] == "gevent"


@pytest.mark.parametrize("model", ["gevent", "threading"])
def test_closing_websocket_leftovers_do_not_alarm_the_log(
    model: str, bridge_factory: Callable[..., BridgeProcess], client_factory: Connect
) -> None:
    server = bridge_factory(env={"STAGE_BRIDGE_SERVER_MODEL": model})
    assert server.get_json("/healthz")["server_model"] == model
    client_factory(server.url).wait_event("snapshot")
    closing = client_factory(server.url)
    closing.wait_event("snapshot")
    closing.close()  # under threading, Werkzeug reads the client's last frame as an HTTP request
    other = client_factory(server.url)
    other.wait_event("snapshot")  # a later event in the log's order
    assert "code 400" not in server.output()
    assert "GET /socket.io" not in server.output()  # no line per request either
    import logging

    from bridge.__main__ import _websocket_leftovers

    real = logging.LogRecord("werkzeug", logging.ERROR, "", 0, "%s", ("code 400, message Bad request (port 80)",), None)
    assert _websocket_leftovers(real)  # a real bad request is still logged


def test_a_taken_http_port_is_one_line_and_exit_1(server: BridgeProcess, tmp_path: Path) -> None:
    # ``server`` holds its port; a second bridge asked for the same one says so and stops.
    port = server.url.rsplit(":", 1)[1]
    (tmp_path / "second").mkdir()
    config = write_config(tmp_path / "second")
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "--config", str(config), "--host", "127.0.0.1", "--port", port],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: cannot serve on 127.0.0.1:{port}: Address already in use (change [server] port or use --port)"
    ]
    assert "Traceback" not in result.stderr


def test_every_tap_of_a_button_reaches_the_other_clients(server: BridgeProcess, client_factory: Connect) -> None:
    # A tap's press and release arrive back to back; folding them into the
    # latest value would hide the press from other pages and their hooks.
    tapper, other = client_factory(server.url), client_factory(server.url)
    other.wait_event("snapshot")

    def taps_seen() -> list[object]:
        return [u["data"] for u in other.of("update value") if u["who"] == "button1"]

    for tap in range(1, 11):
        tapper.send("button1", 1)
        tapper.send("button1", 0)
        wait_until(lambda: len(taps_seen()) >= 2 * tap, what=f"tap {tap} seen whole")  # noqa: B023
    assert taps_seen() == [1, 0] * 10
