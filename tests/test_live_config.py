"""Live config on the real server: the file saved under a running show, with clients connected.

Socket.IO clients (python-socketio), OSC with liblo's oscsend and oscdump,
an OSCQuery LISTEN client over a real WebSocket, SIGHUP and the HTTP
endpoint. The page's side (a finger held during a reload, the tab kept,
the banner) is in tests/test_live_page.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import socketio

from bridge.app import Bridge
from bridge.config import load_config
from bridge.model import Origin
from tests.helpers import BridgeProcess, Client, free_port, saved, wait_until, write_config
from tests.osc_tools import OscDump, OscPeer, oscsend, udp_port_taken
from tests.oscquery_tools import WsPeer, wait_listening

Start = Callable[..., BridgeProcess]
Connect = Callable[..., Client]


@dataclass
class Ports:
    osc: int
    dump: int
    oscquery: int


def show(ports: Ports, version: str, server: str = "") -> str:
    """The config of the show in one of its versions: "before", "after" (every kind of edit), or "broken"."""
    head = (
        f'[server]\nhost = "127.0.0.1"\nport = 5000\nstate_file = "state.json"\n{server}'
        f'[osc]\nlisten = "127.0.0.1:{ports.osc}"\ntargets = ["127.0.0.1:{ports.dump}"]\n'
        f"[oscquery]\nport = {ports.oscquery}\n"
    )
    before = """
[[controls]]
id = "master"
type = "range"
label = "Master"
max = 100
osc = "/master"

[[controls]]
id = "gain"
type = "range"
label = "Gain"
max = 100
osc = "/gain/old"

[[controls]]
id = "width"
type = "range"
label = "Width"
max = 100
osc = "/width"

[[controls]]
id = "mute"
type = "toggle"
label = "Mute"
osc = "/mute"
"""
    after = """
[[controls]]
id = "master"
type = "range"
label = "Main"
max = 100
osc = "/master"

[[controls]]
id = "gain"
type = "range"
label = "Gain"
max = 100
osc = "/gain/new"

[[controls]]
id = "width"
type = "range"
label = "Width"
max = 50
osc = "/width"

[[controls]]
id = "spot"
type = "range"
label = "Spot"
max = 10
value = 7
osc = "/spot"
"""
    return head + {"before": before, "after": after}[version]


def save(path: Path, text: str, in_place: bool = False) -> None:
    """Save as editors do: write a new file and rename it over the old one (vim, VS Code), or write in place."""
    if in_place:
        with path.open("w", encoding="utf-8") as fh:
            fh.write(text)
        return
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(text, encoding="utf-8")
    fresh.replace(path)


def generation(proc: BridgeProcess) -> int:
    return int(proc.get_json("/healthz")["config"]["generation"])


def layout(client: Client, gen: int) -> dict[str, Any]:
    found: dict[str, Any] = client.wait_event("layout", lambda e: e["generation"] == gen)
    return found


def model(client: Client) -> dict[str, Any]:
    """What a client knows of the values: the snapshot, every update since, and each layout's new controls."""
    values: dict[str, Any] = {}
    for event, data in client.events_copy():
        if event == "snapshot":
            values = dict(data["values"])
        elif event == "update value":
            values[data["who"]] = data["data"]
        elif event == "layout":
            for cid in data["removed"]:
                values.pop(cid, None)
            values.update(data["values"])
    return values


def post(proc: BridgeProcess, path: str, key: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    req = urllib.request.Request(proc.url + path, data=b"", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def start_show(tmp_path: Path, start: Start, dump: OscDump, server: str = "") -> tuple[BridgeProcess, Path, Ports]:
    ports = Ports(free_port(socket.SOCK_DGRAM), dump.port, free_port())
    path = tmp_path / "bridge.toml"
    path.write_text(show(ports, "before", server), encoding="utf-8")
    return start(path), path, ports


def test_a_saved_edit_reaches_every_client_keeps_values_and_moves_the_osc_addresses(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    proc, path, ports = start_show(tmp_path, bridge_factory, dump)
    proc.put_values(master=42, gain=30, width=80, mute=True)
    clients = [client_factory(proc.url) for _ in range(3)]
    for client in clients:
        client.wait_value("width", 80)
        client.wait_value("mute", True)
    dump.wait_for("/gain/old f 30.000000")
    mirrored = len(dump.messages())

    save(path, show(ports, "after"))  # write, then rename over the old file
    for client in clients:
        new = layout(client, 2)
        assert new["values"] == {"spot": 7}  # the new control, from its default
        assert new["removed"] == ["mute"]
        assert 'data-control="spot"' in new["surface"] and 'data-control="mute"' not in new["surface"]
        assert ">Main<" in new["surface"]  # the new label
        client.wait_value("width", 50)  # its new range refuses 80: clamped, and everyone is told
    values = proc.get_json("/api/values")
    assert values == {"master": 42, "gain": 30, "width": 50, "spot": 7}
    for client in clients:
        # Kept values are not sent again: nothing moved them.
        after = client.events_copy()[[e for e, _ in client.events_copy()].index("layout") :]
        assert not [d for e, d in after if e == "update value" and d["who"] in ("master", "gain")]
    assert proc.get_json("/healthz")["config"] == {
        "path": str(path),
        "generation": 2,
        "error": None,
        "reloads": 1,
    }

    # OSC in: the new address at once, the old one no more (sent first, so handled first).
    oscsend(ports.osc, "/gain/old", "f", 99)
    oscsend(ports.osc, "/gain/new", "f", 55)
    clients[0].wait_value("gain", 55)
    assert 99 not in [d["data"] for d in clients[0].of("update value") if d["who"] == "gain"]
    oscsend(ports.osc, "/mute", "i", 0)  # gone: nothing
    oscsend(ports.osc, "/spot", "f", 3)
    clients[1].wait_value("spot", 3)
    assert proc.get_json("/api/values")["gain"] == 55

    # OSC out: the new address only.
    clients[0].send("gain", 66)
    dump.wait_for("/gain/new f 66.000000")
    clients[0].send("master", 43)
    dump.wait_for("/master f 43.000000")
    assert not [m for m in dump.messages()[mirrored:] if m.startswith("/gain/old")]
    status, body = proc.put_json("/api/values/mute", {"value": False})
    assert status == 404, body

    late = client_factory(proc.url)
    snapshot = late.wait_event("snapshot")["values"]
    assert set(snapshot) == {"master", "gain", "width", "spot"}

    # Saved in place, back to the first version: the removed control returns with the value it had.
    save(path, show(ports, "before"), in_place=True)
    back = layout(clients[2], 3)
    assert back["values"] == {"mute": True} and back["removed"] == ["spot"]
    # Width, clamped to 50 by the second version and moved by nobody since, is given its 80 back.
    assert proc.get_json("/api/values") == {"master": 43, "gain": 66, "width": 80, "mute": True}
    assert "Traceback" not in proc.output()


def test_a_removed_control_value_is_kept_in_the_state_file_for_when_it_comes_back(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    proc, path, ports = start_show(tmp_path, bridge_factory, dump)
    proc.put_values(mute=True, master=12)
    client = client_factory(proc.url)
    save(path, show(ports, "after"))
    layout(client, 2)
    proc.put_values(master=13)
    state = tmp_path / "state.json"
    wait_until(
        lambda: json.loads(state.read_text())["values"].get("master") == 13 if state.exists() else False,
        what="the state saved",
    )
    assert json.loads(state.read_text())["values"]["mute"] == 1  # not in the config, still saved
    proc.stop()

    # Restarted on the config without it, then the control comes back: with its value.
    again = bridge_factory(path)
    client = client_factory(again.url)
    save(path, show(ports, "before"))
    assert layout(client, 2)["values"] == {"mute": True}
    assert again.get_json("/api/values")["master"] == 13


def test_a_broken_save_keeps_the_show_running_and_says_why_until_a_good_one(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    proc, path, ports = start_show(tmp_path, bridge_factory, dump)
    a, b = client_factory(proc.url), client_factory(proc.url)
    good = show(ports, "before")

    # Bad TOML: an unclosed string on line 18.
    broken = good.replace('label = "Gain"', 'label = "Gain')
    line = broken.splitlines().index('label = "Gain') + 1
    save(path, broken)
    said = a.wait_event("config", lambda e: e["error"] is not None)
    assert said["error"].startswith(f"{path}:{line}: is not valid TOML")
    assert said["generation"] == 1
    health = proc.get_json("/healthz")["config"]
    assert (health["generation"], health["error"]) == (1, said["error"])
    a.send("master", 21)  # the running config keeps serving
    b.wait_value("master", 21)
    oscsend(ports.osc, "/gain/old", "f", 5)
    b.wait_value("gain", 5)

    # Valid TOML, but a key the bridge does not know.
    wrong = good.replace('label = "Width"', 'label = "Width"\ncolour = "red"')
    save(path, wrong)
    key_line = wrong.splitlines().index('colour = "red"') + 1
    said = a.wait_event("config", lambda e: e["error"] is not None and "colour" in e["error"])
    assert said["error"].startswith(f"{path}:{key_line}: controls[2] (width).colour: unknown key")
    assert proc.get_json("/healthz")["config"]["error"] == said["error"]
    late = client_factory(proc.url)  # a page that joins now is told too
    assert late.wait_event("config")["error"] == said["error"]

    # An empty file, as an editor that stalls between its truncation and its text leaves it: taken,
    # it removed every control from every page and switched OSC off for a moment.
    save(path, "")
    said = a.wait_event("config", lambda e: e["error"] is not None and "is empty" in e["error"])
    assert said["generation"] == 1
    b.wait_value("master", 21)  # (nothing was removed)

    # One log line per error, naming file:line and key.
    refusals = [line for line in proc.output().splitlines() if "config not reloaded" in line]
    assert len(refusals) == 3, refusals
    assert f"{path}:{key_line}: controls[2] (width).colour" in refusals[1]
    assert not a.of("layout")

    save(path, show(ports, "after"))
    a.wait_event("config", lambda e: e["error"] is None and e["generation"] == 2)
    layout(b, 2)
    assert proc.get_json("/healthz")["config"]["error"] is None
    assert "Traceback" not in proc.output()


def test_a_config_file_moved_away_is_said_and_moved_back_is_fine_again(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    proc, path, _ports = start_show(tmp_path, bridge_factory, dump)
    a, b = client_factory(proc.url), client_factory(proc.url)
    away = path.with_name("moved.toml")
    path.rename(away)  # a tidy-up of the show folder during the show
    said = a.wait_event("config", lambda e: e["error"] is not None)
    assert said["error"] == (
        f"{path}: the file is gone (moved or deleted); the show runs on as it was, "
        "but the editor and the next start need it: put it back"
    )
    assert proc.get_json("/healthz")["config"]["error"] == said["error"]
    status, body = proc.request_json("GET", "/api/config")
    assert status == 503 and body["error"] == f"config file {path}: No such file or directory; nothing changed"
    a.send("master", 33)  # the show runs on
    b.wait_value("master", 33)
    away.rename(path)  # back as it was: the same file, the same time stamp
    wait_until(lambda: proc.get_json("/healthz")["config"]["error"] is None, what="the file back")
    wait_until(lambda: a.of("config")[-1] == {"generation": 1, "error": None}, what="the pages told")
    assert proc.request_json("GET", "/api/config")[0] == 200
    assert proc.output().count("the file is gone") == 1 and "Traceback" not in proc.output()


def test_sighup_and_the_http_endpoint_reload_what_the_watcher_cannot_see(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    server = 'key = "stage-key-1"\nviewer_key = "watch-key-1"\n'
    proc, path, ports = start_show(tmp_path, bridge_factory, dump, server=server)
    sio = socketio.Client(reconnection=False)
    events: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def record(name: str) -> Callable[[Any], None]:
        def keep(data: Any = None) -> None:
            with lock:
                events.append((name, data))

        return keep

    for name in ("layout", "config", "snapshot", "update value"):
        sio.on(name, record(name))
    sio.connect(proc.url, auth={"key": "stage-key-1"}, wait_timeout=10)  # the control key

    def layouts() -> list[dict[str, Any]]:
        with lock:
            return [data for name, data in events if name == "layout"]

    try:
        # Same size, same time, same inode (as `rsync -t` or `cp -p` leave a file): no watcher sees that.
        text = show(ports, "before", server)
        stat = path.stat()
        save(path, text.replace('label = "Master"', 'label = "Leader"'), in_place=True)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any(">Leader<" in d["surface"] for d in layouts()), what="the layout after SIGHUP")
        assert generation(proc) == 2
        assert "config reloaded (SIGHUP)" in proc.output()

        stat = path.stat()
        save(path, text, in_place=True)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert post(proc, "/api/config/reload")[0] == 401
        assert post(proc, "/api/config/reload", "watch-key-1")[0] == 403
        assert generation(proc) == 2  # neither was applied
        status, body = post(proc, "/api/config/reload", "stage-key-1")
        assert status == 200, body
        assert body["generation"] == 3 and body["changed"] == ["master"]
        assert body["added"] == [] and body["removed"] == []
        wait_until(lambda: any(">Master<" in d["surface"] for d in layouts()), what="the layout after the POST")

        save(path, "[server\n", in_place=True)
        status, body = post(proc, "/api/config/reload", "stage-key-1")
        assert status == 400 and "is not valid TOML" in body["error"] and body["generation"] == 3
    finally:
        sio.disconnect()


def test_oscquery_listeners_are_told_of_paths_added_removed_and_changed(
    tmp_path: Path, bridge_factory: Start, dump: OscDump
) -> None:
    proc, path, ports = start_show(tmp_path, bridge_factory, dump)
    peer = WsPeer(ports.oscquery)
    try:
        peer.command("LISTEN", "/master")
        wait_listening(proc, "/master", 1)
        save(path, show(ports, "after"))

        def told() -> set[tuple[str, str]]:
            with peer._lock:
                return {(t["COMMAND"], t["DATA"]) for t in peer.texts if isinstance(t, dict)}

        expected = {
            ("PATH_REMOVED", "/mute"),
            ("PATH_REMOVED", "/gain/old"),
            ("PATH_ADDED", "/gain/new"),
            ("PATH_ADDED", "/spot"),
            ("PATH_CHANGED", "/master"),  # its label (DESCRIPTION)
            ("PATH_CHANGED", "/width"),  # its range
        }
        wait_until(lambda: expected <= told(), what="PATH_ADDED, PATH_REMOVED and PATH_CHANGED")
        assert ("PATH_CHANGED", "/gain") not in told()  # a container, no attributes of its own
        with urllib.request.urlopen(f"http://127.0.0.1:{ports.oscquery}/spot", timeout=5) as resp:
            node = json.loads(resp.read())
        assert node["RANGE"] == [{"MIN": 0, "MAX": 10}] and node["VALUE"] == [7]
        with urllib.request.urlopen(f"http://127.0.0.1:{ports.oscquery}/width?RANGE", timeout=5) as resp:
            assert json.loads(resp.read())["RANGE"] == [{"MIN": 0, "MAX": 50}]
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{ports.oscquery}/mute", timeout=5)
            raise AssertionError("/mute still answers")
        except urllib.error.HTTPError as err:
            assert err.code == 404
        # The listener of a path that stays still gets its values.
        proc.put_values(master=77)
        peer.wait_for("/master", [77.0])
    finally:
        peer.close()


def test_fifty_clients_and_an_osc_stream_through_twenty_saves_end_on_the_same_values(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    proc, path, ports = start_show(tmp_path, bridge_factory, dump)
    clients = [client_factory(proc.url) for _ in range(50)]
    for client in clients:
        client.wait_event("snapshot")
    sender = OscPeer()
    stop = threading.Event()
    sent: list[int] = []

    def stream() -> None:
        # 200 changes a second to a control every version has, counting up.
        n = 0
        while not stop.wait(0.005):
            n += 1
            sender.send(ports.osc, "/master", float(n % 101))
            sent.append(n % 101)

    streamer = threading.Thread(target=stream, daemon=True)
    streamer.start()
    try:
        versions = [show(ports, "after"), show(ports, "before")]
        for i in range(20):
            save(path, versions[i % 2], in_place=i % 3 == 0)
            wait_until(lambda i=i: generation(proc) == i + 2, what=f"reload {i + 1}")
    finally:
        stop.set()
        streamer.join(timeout=10)
        sender.close()
    last = sent[-1]
    wait_until(lambda: proc.get_json("/api/values")["master"] == last, what="the last value of the stream stored")
    final = proc.get_json("/api/values")
    assert set(final) == {"master", "gain", "width", "mute"}  # the 20th save is the first version
    for client in clients:
        wait_until(lambda c=client: model(c) == final, what="every client on the stored values")
        assert layout(client, 21)["generation"] == 21
    health = proc.get_json("/healthz")
    assert health["config"]["generation"] == 21 and health["config"]["error"] is None
    assert health["adapters"]["osc"]["received"] == len(sent)  # every change of the stream taken
    output = proc.output()
    assert "Traceback" not in output and "Exception" not in output


def test_a_page_of_a_view_gets_its_views_new_surface(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    proc, path, ports = start_show(tmp_path, bridge_factory, dump)
    views = '\n[[views]]\nname = "monitor"\ncontrols = ["master", "gain"]\n'
    save(path, show(ports, "before") + views)
    wait_until(lambda: generation(proc) == 2, what="the views in force")
    monitor = socketio.Client(reconnection=False)
    surfaces: list[str] = []
    monitor.on("layout", lambda data: surfaces.append(data["surface"]))
    monitor.connect(proc.url, auth={"view": "monitor"}, wait_timeout=10)
    whole = client_factory(proc.url)
    try:
        save(path, show(ports, "after") + views.replace('"gain"]', '"gain", "spot"]'))
        wait_until(lambda: surfaces, what="the view's layout")
        assert 'data-control="spot"' in surfaces[0] and 'data-control="width"' not in surfaces[0]
        assert 'data-control="width"' in layout(whole, 3)["surface"]
        # Its view gone from the file: the whole surface.
        save(path, show(ports, "after"))
        wait_until(lambda: len(surfaces) == 2, what="the layout without the view")
        assert 'data-control="width"' in surfaces[1]
        assert whole.wait_event("layout", lambda e: e["generation"] == 4)["values"] == {}
    finally:
        monitor.disconnect()


def test_a_changed_osc_table_moves_the_port_and_a_taken_port_keeps_the_old_one(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    proc, path, ports = start_show(tmp_path, bridge_factory, dump)
    client = client_factory(proc.url)
    moved = Ports(free_port(socket.SOCK_DGRAM), ports.dump, ports.oscquery)
    save(path, show(moved, "before"))
    layout(client, 2)
    wait_until(lambda: "config: osc restarted" in proc.output(), what="the OSC side restarted")
    oscsend(moved.osc, "/master", "f", 31)
    client.wait_value("master", 31)
    assert not udp_port_taken(ports.osc)  # the old port is closed
    client.send("gain", 4)
    dump.wait_for("/gain/old f 4.000000")  # the targets still served

    # A port someone else holds: the OSC side stays where it is, and says why; the controls change anyway.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        taken = Ports(squatter.getsockname()[1], ports.dump, ports.oscquery)
        save(path, show(taken, "after"))
        layout(client, 3)
        wait_until(lambda: "config: osc not changed, the old one stays" in proc.output(), what="the refusal logged")
        oscsend(moved.osc, "/gain/new", "f", 12)  # the old port, the new addresses
        client.wait_value("gain", 12)
    assert "Traceback" not in proc.output()


def test_a_taken_oscquery_port_keeps_the_old_one_says_so_and_saving_again_tries_again(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    # Werkzeug's server calls sys.exit when it cannot bind: a reload onto a taken port ended the bridge
    # (over HTTP), or stopped the old OSCQuery and the file watcher with it (a save).
    proc, path, ports = start_show(tmp_path, bridge_factory, dump)
    client = client_factory(proc.url)

    def namespace(port: int) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:  # noqa: S310
            return dict(json.loads(resp.read()))

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        taken = Ports(ports.osc, ports.dump, squatter.getsockname()[1])
        save(path, show(taken, "after"))
        event = client.wait_event("config", lambda e: e["error"] is not None)
        assert event["generation"] == 2 and "[oscquery] not changed, the old one stays" in event["error"]
        assert "change [oscquery] port" in event["error"]
        layout(client, 2)  # the rest of the file is in force
        assert "CONTENTS" in namespace(ports.oscquery)  # the old OSCQuery still serves
        status, body = post(proc, "/api/config/reload")  # the same file again: tried again, refused again
        assert status == 200 and "[oscquery] not changed" in body["error"]
    status, body = post(proc, "/api/config/reload")  # the port is free now
    assert status == 200 and body["error"] is None
    assert "CONTENTS" in namespace(taken.oscquery)
    assert proc.get_json("/healthz")["config"]["error"] is None
    assert proc.proc is not None and proc.proc.poll() is None
    assert "Traceback" not in proc.output()


def test_a_file_put_back_as_it_was_clears_the_error_without_a_new_generation(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    proc, path, ports = start_show(tmp_path, bridge_factory, dump)
    client = client_factory(proc.url)
    good = path.read_text(encoding="utf-8")
    save(path, good + "\n[[controls]\n")
    client.wait_event("config", lambda e: e["error"] is not None)
    save(path, good)
    wait_until(lambda: [e["error"] for e in client.of("config")][-1:] == [None], what="the error cleared")
    assert [e["error"] is None for e in client.of("config")] == [True, False, True]
    assert proc.get_json("/healthz")["config"]["generation"] == 1
    status, body = post(proc, "/api/config/reload")
    assert status == 200 and body["generation"] == 1 and body["changed"] == []
    assert not client.of("layout")  # nothing changed: no page re-renders
    assert "server.port changed" not in proc.output()  # --port stays over the file's port


def test_a_change_made_while_a_reload_restarts_the_osc_side_still_reaches_the_desk(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    """A script moves a fader over HTTP without pause while four saves move the OSC port. The old
    OSC side stops before the new one starts (they share the targets' ports): a change made in
    that moment was lost, and the desk stayed on the value before it (about one reload in two)."""
    proc, path, ports = start_show(tmp_path, bridge_factory, dump)
    watcher = client_factory(proc.url)
    done = threading.Event()
    sent: list[float] = []

    def stream() -> None:
        step = 0
        while not done.is_set() and step < 9_999:  # each taken before the next: paced by the server
            step += 1
            proc.put_json("/api/values/master", {"value": step / 100})
            sent.append(step / 100)

    streaming = threading.Thread(target=stream)
    streaming.start()
    try:
        for reload in range(4):
            save(path, show(Ports(free_port(socket.SOCK_DGRAM), ports.dump, ports.oscquery), "before"))
            layout(watcher, 2 + reload)
    finally:
        done.set()
        streaming.join(timeout=60)

    def heard() -> list[float]:
        return [round(float(m.split()[2]), 2) for m in dump.messages() if m.startswith("/master f ")]

    wait_until(lambda: len(heard()) >= len(sent), what=f"the desk to hear {len(sent)} moves")
    assert heard() == sent
    assert proc.output().count("config: osc restarted") == 4


def test_when_neither_the_new_nor_the_old_osc_side_can_start_it_is_off_and_said(tmp_path: Path) -> None:
    """A save moves the OSC port to one that is taken, and another program takes the old one the
    moment the old side frees it: neither can start. Before, the reload's stand-in stayed in the hub
    for good, keeping every change, and the tables after it were never looked at."""
    old_port, new_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    path = write_config(tmp_path, extra=f'[osc]\nlisten = "127.0.0.1:{old_port}"\ntargets = []\n', state_file="")
    bridge = Bridge(load_config(path))
    bridge.start()
    squatters = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        squatters[0].bind(("127.0.0.1", new_port))
        old_side = bridge.ported["osc"]
        assert old_side is not None
        stop = old_side.stop

        def stop_and_lose_the_port() -> None:  # another program binds it the moment it is free
            stop()
            squatters[1].bind(("127.0.0.1", old_port))

        old_side.stop = stop_and_lose_the_port  # type: ignore[method-assign]
        path.write_text(path.read_text(encoding="utf-8").replace(str(old_port), str(new_port)), encoding="utf-8")
        refused = bridge.replace_adapters(bridge.config, load_config(path))
        assert (
            len(refused) == 1
            and refused[0].startswith("[osc] is off: cannot listen")
            and "the old one could not start again" in refused[0]
        ), refused
        assert [adapter.name for adapter in bridge.hub.adapters if adapter.name == "osc"] == []
        assert bridge.config.osc is None and bridge.ported["osc"] is None
        bridge.hub.set("slider1", 3, Origin("web", "a page"))  # the rest of the bridge goes on
        assert bridge.hub.values()["slider1"] == 3
    finally:
        bridge.stop()
        for squatter in squatters:
            squatter.close()


def test_a_range_narrowed_by_mistake_and_put_right_gives_the_fader_its_value_back_everywhere(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    """Width's max typed as 50 instead of 100: the fader is clamped to 50 (pages and desk are told); the typo put
    right, nobody having moved it, it is 80 again on the pages, at the desk and in the state file."""
    proc, path, ports = start_show(tmp_path, bridge_factory, dump)
    proc.put_values(width=80)
    client = client_factory(proc.url)
    client.wait_value("width", 80)
    dump.wait_for("/width f 80.000000")

    save(path, show(ports, "after"))  # width's max is 50 there
    layout(client, 2)
    client.wait_value("width", 50)
    dump.wait_for("/width f 50.000000")
    save(path, show(ports, "before"))
    layout(client, 3)
    client.wait_value("width", 80)
    wait_until(lambda: [m for m in dump.messages() if m.startswith("/width")][-1] == "/width f 80.000000")
    assert proc.get_json("/api/values")["width"] == 80
    state = tmp_path / "state.json"
    wait_until(lambda: saved(state).get("values", {}).get("width") == 80, what="80 saved")
    assert "config: width given back its 80" in proc.output()


def test_a_value_a_range_typo_took_is_kept_through_restarts_until_the_range_takes_it_again(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    """The typo made while the bridge is stopped, the bridge restarted on it twice, then put right live; then the
    typo saved live and put right while the bridge is stopped: width is 80 again each time."""
    proc, path, ports = start_show(tmp_path, bridge_factory, dump)
    proc.put_values(width=80)
    proc.stop()
    state = tmp_path / "state.json"

    save(path, show(ports, "after"))  # width's max is 50 there
    for _restart in range(2):
        proc = bridge_factory(path)
        assert proc.get_json("/api/values")["width"] == 50
        proc.stop()
        saved = json.loads(state.read_text())
        assert saved["values"]["width"] == 50 and saved["before_reload"] == {"width": 80}
    proc = bridge_factory(path)
    client = client_factory(proc.url)
    client.wait_value("width", 50)
    save(path, show(ports, "before"))
    client.wait_value("width", 80)
    wait_until(lambda: [m for m in dump.messages() if m.startswith("/width")][-1] == "/width f 80.000000")

    save(path, show(ports, "after"))
    client.wait_value("width", 50)
    proc.stop()
    save(path, show(ports, "before"))
    proc = bridge_factory(path)
    assert proc.get_json("/api/values")["width"] == 80
    assert "width given back its 80" in proc.output()
    proc.stop()
    saved = json.loads(state.read_text())
    assert saved["values"]["width"] == 80 and "before_reload" not in saved


def test_a_scene_recalled_with_a_fade_or_a_value_set_by_hand_to_what_a_reload_left_keeps_it_through_restarts(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, dump: OscDump
) -> None:
    """Width clamped from 80 to 50 by a narrowed range: a scene recalled with a fade that holds 50 is a move (a
    fade with nothing to move set nothing), and so is 50 set again by hand, also after a restart (only the
    memory forgot it, the state file did not)."""
    proc, path, ports = start_show(tmp_path, bridge_factory, dump)
    proc.put_values(width=80)
    save(path, show(ports, "after"))  # width's max is 50 there
    wait_until(lambda: proc.get_json("/api/values")["width"] == 50, what="width clamped")
    assert proc.request_json("PUT", "/api/scenes/Same")[0] == 200
    assert proc.request_json("POST", "/api/scenes/Same/recall", {"fade": 1.0})[0] == 200
    save(path, show(ports, "before"))
    wait_until(lambda: generation(proc) == 3, what="the widened range read")
    assert proc.get_json("/api/values")["width"] == 50

    proc.put_values(width=80)
    save(path, show(ports, "after"))
    wait_until(lambda: proc.get_json("/api/values")["width"] == 50, what="width clamped again")
    proc.put_values(width=50)  # by hand, the value it has
    proc.stop()
    assert "before_reload" not in saved(tmp_path / "state.json")
    proc = bridge_factory(path)
    save(path, show(ports, "before"))
    wait_until(lambda: generation(proc) == 2, what="the widened range read")
    assert proc.get_json("/api/values")["width"] == 50
