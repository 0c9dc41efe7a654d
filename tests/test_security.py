"""Access keys, origins, OSC sources and limits, on the real server."""

from __future__ import annotations

import hmac
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import socketio
import websocket

from bridge import auth
from bridge.auth import Access
from tests.helpers import BridgeProcess, Client, free_port, wait_until, write_config
from tests.osc_tools import OscPeer

Start = Callable[..., BridgeProcess]
Connect = Callable[[str], Client]
KEY, VIEWER = "control-key-1", "viewer-key-1"


def keyed(tmp_path: Path, extra: str = "") -> Path:
    config = write_config(tmp_path)
    text = config.read_text(encoding="utf-8").replace(
        'state_file = "state.json"\n',
        f'state_file = "state.json"\nkey = "{KEY}"\nviewer_key = "{VIEWER}"\n{extra}',
    )
    config.write_text(text, encoding="utf-8")
    return config


def http(url: str, method: str = "GET", body: object = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=5) as resp:
            return resp.status, Reply(resp.headers, resp.read())
    except urllib.error.HTTPError as err:
        return err.code, Reply(err.headers, err.read())


class Reply:
    def __init__(self, headers: Any, body: bytes) -> None:
        self.headers = headers
        self.body = body

    def read(self) -> bytes:
        return self.body


def listing_the_mixer(folder: Path) -> Path:
    """The test config in ``folder`` (made if needed), with ``allowed_origins`` listing a mixer's page."""
    folder.mkdir(exist_ok=True)
    config = write_config(folder)
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'state_file = "state.json"\n', 'state_file = "state.json"\nallowed_origins = ["http://mixer.local:8080"]\n'
        ),
        encoding="utf-8",
    )
    return config


def connect(url: str, **kwargs: Any) -> socketio.Client:
    sio = socketio.Client(reconnection=False)
    sio.connect(url, wait_timeout=10, **kwargs)
    return sio


def test_without_key_page_api_and_socket_are_refused(tmp_path: Path, bridge_factory: Start) -> None:
    proc = bridge_factory(keyed(tmp_path))
    status, resp = http(proc.url + "/")
    assert status == 401 and "Key needed" in resp.read().decode()
    assert http(proc.url + "/api/values")[0] == 401
    assert http(proc.url + "/api/values/slider1", "PUT", {"value": 3})[0] == 401
    assert http(proc.url + "/qr.svg")[0] == 401
    assert http(proc.url + "/?key=wrong-key-99")[0] == 401
    assert http(proc.url + "/healthz")[0] == 200
    with pytest.raises(socketio.exceptions.ConnectionError):
        connect(proc.url)
    with pytest.raises(socketio.exceptions.ConnectionError):
        connect(proc.url, auth={"key": "not-the-key"})
    assert proc.get_json("/healthz")["adapters"]["web"]["keys"] is True


def test_key_in_url_becomes_an_httponly_samesite_cookie(tmp_path: Path, bridge_factory: Start) -> None:
    proc = bridge_factory(keyed(tmp_path))
    status, resp = http(proc.url + f"/?key={KEY}")
    assert status == 303 and resp.headers["Location"].endswith("/")
    cookie = resp.headers["Set-Cookie"]
    assert f"{auth.COOKIE}={KEY}" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    status, resp = http(proc.url + "/", headers={"Cookie": f"{auth.COOKIE}={KEY}"})
    assert status == 200 and 'id="slider1"' in resp.read().decode()
    status, _ = http(proc.url + "/api/values/slider1", "PUT", {"value": 9}, {"Authorization": f"Bearer {KEY}"})
    assert status == 200
    # A script's Bearer key wins over a viewer page's cookie it happens to carry (it was a viewer: 403).
    both = {"Authorization": f"Bearer {KEY}", "Cookie": f"{auth.COOKIE}={VIEWER}"}
    assert http(proc.url + "/api/values/slider1", "PUT", {"value": 8}, both)[0] == 200
    sio = connect(proc.url, headers={"Cookie": f"{auth.COOKIE}={KEY}"})
    sio.disconnect()
    status, resp = http(proc.url + "/join", headers={"Cookie": f"{auth.COOKIE}={KEY}"})
    assert json.loads(resp.read())["url"].endswith(f"?key={KEY}")


def test_the_join_link_of_a_view_keeps_its_view_and_a_loopback_bridge_offers_no_lan_address(
    tmp_path: Path, bridge_factory: Start
) -> None:
    # The drummer's phone opened the whole surface (scene bar and all) from the drummer's view's QR code.
    config = keyed(tmp_path)
    config.write_text(config.read_text(encoding="utf-8") + '\n[[views]]\nname = "drums"\ncontrols = ["slider1"]\n')
    proc = bridge_factory(config)
    cookie = {"Cookie": f"{auth.COOKIE}={KEY}"}
    status, resp = http(proc.url + "/join?view=drums", headers=cookie)
    url = json.loads(resp.read())["url"]
    assert url == f"{proc.url}/?key={KEY}&view=drums"  # (served on 127.0.0.1: no LAN address reaches it)
    status, resp = http(proc.url + "/?view=drums", headers=cookie)
    page = resp.read().decode()
    assert 'data-join="/join?view=drums"' in page and 'data-qr="/qr.svg?view=drums"' in page
    status, resp = http(proc.url + "/join?view=nonesuch", headers=cookie)
    assert json.loads(resp.read())["url"] == f"{proc.url}/?key={KEY}"


def test_viewer_sees_everything_and_changes_nothing(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    proc = bridge_factory(keyed(tmp_path))
    viewer = socketio.Client(reconnection=False)
    seen: list[Any] = []
    rejected: list[Any] = []
    viewer.on("update value", seen.append)
    viewer.on("rejected", rejected.append)
    viewer.connect(proc.url, auth={"key": VIEWER}, wait_timeout=10)
    try:
        controller = socketio.Client(reconnection=False)
        controller.connect(proc.url, auth={"key": KEY}, wait_timeout=10)
        controller.emit("value changed", {"who": "slider1", "data": 40})
        wait_until(lambda: {"who": "slider1", "data": 40} in seen, what="viewer sees the change")
        viewer.emit("value changed", {"who": "slider1", "data": 3})
        wait_until(lambda: rejected, what="viewer's change rejected")
        assert "read-only" in rejected[0]["reason"]
        status, _ = http(proc.url + "/api/values/slider1", "PUT", {"value": 1}, {"Authorization": f"Bearer {VIEWER}"})
        assert status == 403
        status, resp = http(proc.url + "/api/values", headers={"Authorization": f"Bearer {VIEWER}"})
        assert status == 200 and json.loads(resp.read())["slider1"] == 40
        controller.disconnect()
    finally:
        viewer.disconnect()


@pytest.mark.unit
def test_keys_are_compared_with_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    access = Access(KEY, VIEWER)
    assert access.role_for("nope") is None
    assert access.role_for(KEY) == "control"
    assert access.role_for(VIEWER) == "viewer"
    # Every check runs both comparisons: timing does not tell which key was near.
    assert len(calls) == 6 and all(isinstance(a, bytes) for a, _ in calls)
    assert Access().role_for(None) == "control"
    generated = Access.from_config("auto", "auto")
    assert generated.key and generated.viewer_key and generated.key != generated.viewer_key


def test_auto_key_is_printed_in_the_join_url(tmp_path: Path, bridge_factory: Start) -> None:
    config = write_config(tmp_path)
    config.write_text(
        config.read_text().replace('state_file = "state.json"\n', 'state_file = "state.json"\nkey = "auto"\n')
    )
    proc = bridge_factory(config)
    line = next(line for line in proc.output().splitlines() if "(control)" in line)
    key = line.split("?key=")[1].split()[0]
    assert http(proc.url + f"/?key={key}")[0] == 303


def test_auto_keys_are_kept_across_a_restart_beside_the_state_file(tmp_path: Path, bridge_factory: Start) -> None:
    """New keys at every start locked every phone out after a restart mid-show, until each operator was shown
    the QR code again (a reviewer's case). They are kept now, readable by their owner only."""
    config = write_config(tmp_path)
    config.write_text(
        config.read_text()
        .replace('state_file = "state.json"\n', 'state_file = "state.json"\nkey = "auto"\n')
        .replace("[[controls]]", 'viewer_key = "auto"\n[[controls]]', 1)
    )

    def keys(proc: BridgeProcess) -> dict[str, str]:
        found = {}
        for line in proc.output().splitlines():
            for role, said in (("control", "(control)"), ("viewer", "(view only)")):
                if said in line:
                    found[role] = line.split("?key=")[1].split()[0]
        return found

    first = bridge_factory(config)
    before = keys(first)
    assert set(before) == {"control", "viewer"}
    assert first.stop() == 0
    kept = tmp_path / "state.keys.json"
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
    kept.chmod(0o644)  # (copied by hand, under umask 022)
    again = bridge_factory(config)
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
    assert keys(again) == before
    assert http(again.url + f"/?key={before['control']}")[0] == 303
    assert again.stop() == 0
    kept.write_text("{not json")  # a hand edit gone wrong, under umask 022
    kept.chmod(0o644)
    third = bridge_factory(config)
    mended = keys(third)
    assert mended["control"] != before["control"] and oct(kept.stat().st_mode & 0o777) == "0o600"
    assert third.stop() == 0
    kept.unlink()  # (how to make new ones: a key shown to the wrong people)
    fresh = keys(bridge_factory(config))
    assert fresh["control"] != before["control"] and fresh["viewer"] != before["viewer"]


def test_no_key_warns_once_that_anyone_can_control(server: BridgeProcess) -> None:
    assert server.output().count("anyone on this network can control the show") == 1


def test_foreign_origin_refused_unless_listed(tmp_path: Path, bridge_factory: Start) -> None:
    proc = bridge_factory()
    with pytest.raises(socketio.exceptions.ConnectionError):
        connect(proc.url, headers={"Origin": "http://evil.example"})
    same = connect(proc.url, headers={"Origin": proc.url})
    same.disconnect()
    listed = bridge_factory(listing_the_mixer(tmp_path / "other"))
    ok = connect(listed.url, headers={"Origin": "http://mixer.local:8080"})
    ok.disconnect()
    with pytest.raises(socketio.exceptions.ConnectionError):
        connect(listed.url, headers={"Origin": "http://evil.example"})


def websocket_status(url: str, origin: str | None) -> int:
    """The status a raw WebSocket upgrade to Socket.IO gets: 101 when switched, else the refusal's."""
    ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    try:
        # suppress_origin: websocket-client sends an Origin of its own unless told not to.
        ws = websocket.create_connection(ws_url, timeout=10, origin=origin, suppress_origin=origin is None)
    except websocket.WebSocketBadStatusException as err:
        return int(err.status_code)
    try:
        status = int(ws.getstatus())
        assert ws.recv().startswith("0{"), "Engine.IO's open packet"
    finally:
        ws.close()
    return status


def test_foreign_origin_websocket_is_refused_before_the_upgrade(tmp_path: Path, bridge_factory: Start) -> None:
    proc = bridge_factory()
    assert websocket_status(proc.url, "http://evil.example") == 403
    assert "refused a WebSocket from http://evil.example" in proc.output()
    assert websocket_status(proc.url, proc.url) == 101  # the page's own origin
    assert websocket_status(proc.url, None) == 101  # a script: no Origin header
    listed = bridge_factory(listing_the_mixer(tmp_path / "other"))
    assert websocket_status(listed.url, "http://mixer.local:8080") == 101
    assert websocket_status(listed.url, listed.url) == 101  # the list adds to the page's own origin
    assert websocket_status(listed.url, "http://evil.example") == 403
    assert websocket_status(listed.url, "http://mixer.local:8081") == 403


def test_a_listed_origin_keeps_the_page_own_origin_on_polling(tmp_path: Path, bridge_factory: Start) -> None:
    config = write_config(tmp_path)
    config.write_text(
        config.read_text().replace(
            'state_file = "state.json"\n', 'state_file = "state.json"\nallowed_origins = ["http://mixer.local:8080"]\n'
        )
    )
    proc = bridge_factory(config)
    same = connect(proc.url, headers={"Origin": proc.url}, transports=["polling"])
    same.disconnect()
    with pytest.raises(socketio.exceptions.ConnectionError):
        connect(proc.url, headers={"Origin": "http://evil.example"}, transports=["polling"])


def test_osc_from_a_source_not_allowed_is_dropped_and_counted(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    port = free_port(socket.SOCK_DGRAM)
    config = write_config(tmp_path, extra=f'[osc]\nlisten = "127.0.0.1:{port}"\nallow = ["127.0.0.1/32"]\n')
    proc = bridge_factory(config)
    a = client_factory(proc.url)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.2", 0))  # still loopback, but not 127.0.0.1
    friend = OscPeer()
    try:
        from pythonosc.osc_message_builder import OscMessageBuilder

        msg = OscMessageBuilder(address="/slider1")
        msg.add_arg(2.0)
        stranger.sendto(msg.build().dgram, ("127.0.0.1", port))
        wait_until(lambda: proc.get_json("/healthz")["adapters"]["osc"]["refused"] == 1, what="refused count")
        friend.send(port, "/slider2", 4.0)
        a.wait_value("slider2", 4)
        assert proc.get_json("/api/values")["slider1"] == 25
    finally:
        stranger.close()
        friend.close()


def limited(tmp_path: Path, **limits: int) -> Path:
    config = write_config(tmp_path)
    lines = "".join(f"{k} = {v}\n" for k, v in limits.items())
    config.write_text(config.read_text().replace('state_file = "state.json"\n', f'state_file = "state.json"\n{lines}'))
    return config


def test_rate_limit_latest_value_wins_and_others_are_not_slowed(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect
) -> None:
    proc = bridge_factory(limited(tmp_path, max_rate=50))
    flooder, calm, watcher = client_factory(proc.url), client_factory(proc.url), client_factory(proc.url)
    throttled: list[Any] = []
    flooder.sio.on("throttled", throttled.append)
    watcher.wait_event("snapshot")
    for i in range(10_000):  # as fast as one client can
        flooder.send("slider1", i % 50)
    flooder.send("slider1", 50)  # a value the flood never sent: when it shows, the flood is over
    calm.send("slider2", 17)  # the calm client's change gets through meanwhile
    watcher.wait_value("slider2", 17)
    watcher.wait_value("slider1", 50)  # the flooder's last value always arrives
    assert proc.get_json("/api/values")["slider1"] == 50
    wait_until(lambda: throttled, what="the flooder told")
    assert len(throttled) == 1 and throttled[0]["limit"] == 50
    web = proc.get_json("/healthz")["adapters"]["web"]
    assert web["throttled"] > 0


def test_max_clients(tmp_path: Path, bridge_factory: Start, client_factory: Connect) -> None:
    proc = bridge_factory(limited(tmp_path, max_clients=2))
    client_factory(proc.url).wait_event("snapshot")
    client_factory(proc.url).wait_event("snapshot")
    with pytest.raises(socketio.exceptions.ConnectionError):
        connect(proc.url)
    assert "max_clients (2) reached" in proc.output()


def refusal(url: str, **kwargs: Any) -> Any:
    """Connect and expect a refusal; what the server said (python-socketio's ``connect_error`` data)."""
    said: list[Any] = []
    sio = socketio.Client(reconnection=False)
    sio.on("connect_error", lambda data=None: said.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        sio.connect(url, wait_timeout=10, **kwargs)
    return said[0] if said else None


def test_a_refused_client_is_told_why(tmp_path: Path, bridge_factory: Start) -> None:
    """Unauthorized and full are told apart by the message (not python-socketio's generic "refused by server")."""
    config = keyed(tmp_path)
    config.write_text(
        config.read_text(encoding="utf-8").replace("[server]\n", "[server]\nmax_clients = 1\n"), encoding="utf-8"
    )
    proc = bridge_factory(config)
    assert refusal(proc.url) == {"message": "unauthorized: open the join URL with its key"}
    assert refusal(proc.url, auth={"key": "not-the-key"}) == {"message": "unauthorized: open the join URL with its key"}
    first = connect(proc.url, auth={"key": KEY})
    try:
        assert refusal(proc.url, auth={"key": KEY}) == {"message": "server full: at most 1 clients"}
    finally:
        first.disconnect()


def test_oversized_payload_is_not_applied(tmp_path: Path, bridge_factory: Start, client_factory: Connect) -> None:
    proc = bridge_factory(limited(tmp_path, max_payload=4096))
    big, other = client_factory(proc.url), client_factory(proc.url)
    other.wait_event("snapshot")
    big.send("txt1", "y" * 10_000)
    big.send("txt1", "after")  # the oversized message closes that connection; this may or may not arrive
    other.send("slider2", 5)
    wait_until(lambda: proc.get_json("/api/values")["slider2"] == 5, what="others still served")
    assert proc.get_json("/api/values")["txt1"] in ("", "after")
    status, _ = http(proc.url + "/api/values/txt1", "PUT", {"value": "z" * 10_000})
    assert status == 413


@pytest.mark.unit
def test_a_reload_keeps_an_auto_key_and_takes_new_ones() -> None:
    access = Access.from_config("auto", None)
    generated = access.key
    assert access.follow("auto", None) is False and access.key == generated  # still "auto": the same key
    assert access.follow("auto", "watch") is True
    assert (access.key, access.viewer_key) == (generated, "watch")
    assert access.follow("stage", "watch") is True and access.role_for(generated) is None
    assert access.role_for("stage") == "control"
    assert access.follow(None, None) is True and access.role_for(None) == "control"  # no key: open again


def test_a_reload_with_a_new_key_lets_go_of_browsers_with_the_old_one(tmp_path: Path, bridge_factory: Start) -> None:
    config = keyed(tmp_path)
    proc = bridge_factory(config)
    old, kept = socketio.Client(reconnection=False), socketio.Client(reconnection=False)
    old.connect(proc.url, auth={"key": KEY}, wait_timeout=10)
    kept.connect(proc.url, auth={"key": VIEWER}, wait_timeout=10)
    try:
        config.write_text(config.read_text(encoding="utf-8").replace(KEY, "control-key-2"), encoding="utf-8")
        wait_until(lambda: not old.connected, what="the browser with the old key let go")
        assert kept.connected  # the viewer key did not change
        assert http(proc.url + "/api/values", headers={"Authorization": f"Bearer {KEY}"})[0] == 401
        assert http(proc.url + "/api/values", headers={"Authorization": "Bearer control-key-2"})[0] == 200
        assert "no longer valid after the reload" in proc.output()
    finally:
        old.disconnect()
        kept.disconnect()


def test_a_reload_changes_the_origins_let_in(tmp_path: Path, bridge_factory: Start) -> None:
    proc = bridge_factory(write_config(tmp_path))
    assert websocket_status(proc.url, "http://mixer.local:8080") == 403
    listing_the_mixer(tmp_path)  # the same file, saved with the list
    wait_until(lambda: proc.get_json("/healthz")["config"]["generation"] == 2, what="the reload")
    assert websocket_status(proc.url, "http://mixer.local:8080") == 101
    assert websocket_status(proc.url, "http://evil.example") == 403
