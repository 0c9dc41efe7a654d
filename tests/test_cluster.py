"""Several bridge processes sharing one Redis: real redis-server and nginx on loopback.

Every test starts its own Redis (AOF, fsync every second, no snapshots, as
docs/cluster.md asks of a show), its own bridge processes and, where it says so,
its own nginx; all are stopped by their PIDs afterwards.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bridge.cluster.adapter import ClusterAdapter
from bridge.cluster.status import target_names
from bridge.config import ClusterConfig, load_config
from bridge.errors import ConfigError
from bridge.hub import Hub
from bridge.model import Origin
from cluster.services import Nginx, RedisServer, executable
from tests.console_tools import FakeX32
from tests.helpers import (
    CONTROLS_TOML,
    DEADLINE,
    ROOT,
    BridgeProcess,
    Client,
    free_port,
    unavailable,
    wait_until,
    write_config,
)
from tests.osc_tools import OscDump, oscsend
from tests.views import ViewClient

Start = Callable[..., BridgeProcess]


def need(command: str) -> None:
    """A missing system command skips the test, or fails it under CI."""
    if executable(command) is None:
        unavailable(f"{command} not installed (apt-get install redis-server nginx)")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    need("redis-server")
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clients(client_factory: Callable[..., Any]) -> Callable[..., Any]:
    """Socket.IO clients, ViewClients unless told otherwise."""

    def connect(url: str, kind: type[Client] = ViewClient) -> Any:
        return client_factory(url, kind)

    return connect


def member_config(folder: Path, redis_url: str, extra: str = "", controls: str = CONTROLS_TOML) -> Path:
    """A process's own config (and folder): the cluster table, no state file (Redis is the store)."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_config(folder, extra=f'[cluster]\nredis = "{redis_url}"\n{extra}', controls=controls, state_file="")


def start_processes(start: Start, configs: list[Path]) -> list[BridgeProcess]:
    """Start them side by side, then wait for each."""
    procs = [start(config, wait=False) for config in configs]
    for proc in procs:
        proc.wait_ready()
    return procs


def cluster_status(proc: BridgeProcess) -> dict[str, Any]:
    status: dict[str, Any] = proc.get_json("/healthz")["adapters"]["cluster"]
    return status


def test_a_change_reaches_every_process_but_not_its_sender_and_osc_goes_both_ways(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start, clients: Callable[..., Any]
) -> None:
    need("oscdump")
    dump = OscDump()
    try:
        osc_port = free_port(socket.SOCK_DGRAM)
        hardware = f'[osc]\nlisten = "127.0.0.1:{osc_port}"\ntargets = ["127.0.0.1:{dump.port}"]\n'
        p1, p2, p3 = start_processes(
            bridge_factory,
            [
                member_config(tmp_path / "p1", redis_server.url, hardware),
                member_config(tmp_path / "p2", redis_server.url),
                member_config(tmp_path / "p3", redis_server.url),
            ],
        )
        a, a2, b, c = clients(p1.url), clients(p1.url), clients(p2.url), clients(p3.url)
        for client in (a, a2, b, c):
            client.wait_event("snapshot")

        a.send("slider1", 40)
        for client in (a2, b, c):
            client.wait_value("slider1", 40)

        # A browser on process 3 moves a fader: the desk behind process 1's OSC hears it.
        c.send("slider2", 9)
        dump.wait_for("/slider2 f 9.000000")
        a.wait_value("slider2", 9)

        # The desk sends to process 1: browsers on all three show it.
        oscsend(osc_port, "/txt1", "s", "from the desk")
        for client in (a, a2, b, c):
            client.wait_value("txt1", "from the desk")

        # A marker sent last: once it is everywhere, an echo to a sender would have arrived.
        b.send("toggle1", 1)
        for client in (a, c):
            client.wait_value("toggle1", 1)
        assert [u for u in a.of("update value") if u["who"] == "slider1"] == []
        assert [u for u in c.of("update value") if u["who"] == "slider2"] == []
        assert {p.get_json("/api/values")["slider1"] for p in (p1, p2, p3)} == {40}
        # Each process counts the others from their heartbeats, once a second.
        wait_until(lambda: all(cluster_status(p)["members"] == 3 for p in (p1, p2, p3)), what="3 members seen")
    finally:
        dump.close()


def test_two_processes_with_the_same_osc_target_are_told_and_one_alone_is_not(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start
) -> None:
    """Each process mirrors every change to its OSC targets: a desk that both have gets each change twice,
    and a GO fires twice. The docs say to leave [osc] to one process; a config that does not is now told."""
    need("oscdump")
    dump = OscDump()
    try:

        def hardware(*targets: int) -> str:
            aimed = ", ".join(f'"127.0.0.1:{port}"' for port in targets)
            return f'[osc]\nlisten = "127.0.0.1:{free_port(socket.SOCK_DGRAM)}"\ntargets = [{aimed}]\n'

        other = free_port(socket.SOCK_DGRAM)
        p1, p2, p3 = start_processes(
            bridge_factory,
            [
                member_config(tmp_path / "p1", redis_server.url, hardware(dump.port)),
                member_config(tmp_path / "p2", redis_server.url, hardware(other, dump.port)),
                member_config(tmp_path / "p3", redis_server.url, hardware(free_port(socket.SOCK_DGRAM))),
            ],
        )
        desk = f"udp {socket.gethostname()}/127.0.0.1:{dump.port}"
        for proc in (p1, p2):
            wait_until(lambda proc=proc: cluster_status(proc)["shared_targets"] == [desk], what="the shared desk")
        assert "is also a target of process" in p1.output() and "a GO fires twice" in p2.output()
        wait_until(lambda: cluster_status(p3)["members"] == 3, what="p3 beating with the others")
        wait_until(lambda: cluster_status(p1)["members"] == 3, what="p1 seeing three")
        assert cluster_status(p3)["shared_targets"] == []  # its desk is its own
    finally:
        dump.close()


@pytest.mark.unit
def test_a_loopback_target_is_named_with_its_machine() -> None:
    here = socket.gethostname()
    assert target_names([("udp", "127.0.0.1", 9000), ("tcp", "10.0.0.7", 3032)]) == [
        f"udp {here}/127.0.0.1:9000",  # every machine's 127.0.0.1 is its own desk
        "tcp 10.0.0.7:3032",
    ]


def test_a_late_process_starts_from_the_current_values(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start, clients: Callable[..., Any]
) -> None:
    first = bridge_factory(member_config(tmp_path / "p1", redis_server.url))
    assert first.put_json("/api/values/slider1", {"value": 12}) == (200, {"id": "slider1", "value": 12})
    assert first.put_json("/api/values/txt1", {"value": "cue 7"})[0] == 200
    late = bridge_factory(member_config(tmp_path / "p2", redis_server.url))
    values = late.get_json("/api/values")
    assert (values["slider1"], values["txt1"]) == (12, "cue 7")
    snapshot = clients(late.url).wait_event("snapshot")["values"]
    assert (snapshot["slider1"], snapshot["txt1"]) == (12, "cue 7")


def test_scenes_are_one_list_for_every_process_and_a_desk_recalls_one_saved_on_another(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start, clients: Callable[..., Any]
) -> None:
    """Each process had scenes of its own: one saved from a phone on process 2 was unknown to the desk's
    recall on process 1, and two phones' scene bars differed (a reviewer's case)."""
    osc_port = free_port(socket.SOCK_DGRAM)
    hardware = f'[osc]\nlisten = "127.0.0.1:{osc_port}"\ntargets = []\n'
    p1, p2 = start_processes(
        bridge_factory,
        [member_config(tmp_path / "p1", redis_server.url, hardware), member_config(tmp_path / "p2", redis_server.url)],
    )
    watcher = clients(p1.url)
    watcher.wait_event("snapshot")
    p2.put_values(slider1=40)
    assert p2.request_json("PUT", "/api/scenes/Bright")[0] == 200
    watcher.wait_event("scenes", lambda summary: "Bright" in summary["names"])
    assert set(p1.get_json("/api/scenes")["scenes"]) == {"Bright"}
    p1.put_values(slider1=5)
    oscsend(osc_port, "/bridge/scene/recall", "s", "Bright")  # the desk, on the other process
    wait_until(lambda: p2.get_json("/api/values")["slider1"] == 40, what="the scene recalled everywhere")
    late = bridge_factory(member_config(tmp_path / "p3", redis_server.url))  # (no state file: Redis has them)
    assert set(late.get_json("/api/scenes")["scenes"]) == {"Bright"}
    assert late.get_json("/api/scenes/Bright")["values"]["slider1"] == 40
    assert p1.request_json("DELETE", "/api/scenes/Bright")[0] == 200
    wait_until(lambda: p2.get_json("/api/scenes")["scenes"] == {}, what="the deletion everywhere")
    wait_until(lambda: late.get_json("/api/scenes")["scenes"] == {}, what="the deletion on the late one")


def test_two_processes_saving_one_scene_at_once_end_on_the_same_and_deleting_the_last_sticks(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start
) -> None:
    """Two saves of one scene at the same moment left the processes on different versions for good (5 rounds
    in 60); deleting every scene while a process with a scenes file was down brought them back when it
    started, taken for a Redis never filled (both a reviewer's cases)."""
    p1, p2 = start_processes(
        bridge_factory,
        [member_config(tmp_path / "p1", redis_server.url), member_config(tmp_path / "p2", redis_server.url)],
    )

    def saved_at(proc: BridgeProcess) -> float:
        return float(proc.get_json("/api/scenes")["scenes"]["X"]["saved_at"])

    def in_redis() -> float:
        stored = redis.Redis.from_url(redis_server.url, decode_responses=True).hget("stage-bridge:scenes", "X")
        return float(json.loads(str(stored))["saved_at"])

    for n in range(12):
        p1.put_values(slider1=n)
        both = [threading.Thread(target=p.request_json, args=("PUT", "/api/scenes/X")) for p in (p1, p2)]
        for thread in both:
            thread.start()
        for thread in both:
            thread.join()
        wait_until(lambda: saved_at(p1) == saved_at(p2) == in_redis(), what=f"round {n}: one X everywhere")
    # A third process with a scenes file of its own, stopped; every scene deleted meanwhile.
    folder = tmp_path / "p3"
    folder.mkdir()
    (folder / "state.scenes.json").write_text(json.dumps({"version": 1, "scenes": {"Old": {"values": {}}}}))
    third = bridge_factory(write_config(folder, extra=f'[cluster]\nredis = "{redis_server.url}"\n'))
    wait_until(lambda: set(p1.get_json("/api/scenes")["scenes"]) == {"X"}, what="Redis's, not the file's")
    assert third.stop() == 0
    assert p1.request_json("DELETE", "/api/scenes/X")[0] == 200
    wait_until(lambda: p2.get_json("/api/scenes")["scenes"] == {}, what="no scene left")
    third.start()
    assert third.get_json("/api/scenes")["scenes"] == {} and p1.get_json("/api/scenes")["scenes"] == {}


def test_the_scenes_of_a_first_process_with_a_scenes_file_fill_an_empty_redis(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start
) -> None:
    folder = tmp_path / "p1"
    folder.mkdir()
    saved = {"version": 1, "scenes": {"Old": {"saved_at": 1.0, "values": {"slider1": 7}}}}
    (folder / "state.scenes.json").write_text(json.dumps(saved), encoding="utf-8")
    config = write_config(folder, extra=f'[cluster]\nredis = "{redis_server.url}"\n')  # (a state file)
    first = bridge_factory(config)
    assert set(first.get_json("/api/scenes")["scenes"]) == {"Old"}
    second = bridge_factory(member_config(tmp_path / "p2", redis_server.url))
    wait_until(lambda: set(second.get_json("/api/scenes")["scenes"]) == {"Old"}, what="the file's scene shared")


def test_a_process_back_after_a_crash_brings_its_desk_up_to_date(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start
) -> None:
    """The process with the desk was down while phones on another changed values: back, it started on them, but
    its desk got none, and kept old levels while every phone showed new ones (a reviewer's case)."""
    need("oscdump")
    dump = OscDump()
    try:
        hardware = f'[osc]\nlisten = "127.0.0.1:{free_port(socket.SOCK_DGRAM)}"\ntargets = ["127.0.0.1:{dump.port}"]\n'
        desk_side, other = start_processes(
            bridge_factory,
            [
                member_config(tmp_path / "p1", redis_server.url, hardware),
                member_config(tmp_path / "p2", redis_server.url),
            ],
        )
        other.put_values(slider1=12, slider2=30)
        dump.wait_for("/slider1 f 12.000000")
        dump.wait_for("/slider2 f 30.000000")
        desk_side.kill()
        other.put_values(slider1=44, txt1="cue 9", slider2=0)  # (slider2 back to its default)
        desk_side.start()
        dump.wait_for("/slider1 f 44.000000")
        dump.wait_for('/txt1 s "cue 9"')
        dump.wait_for("/slider2 f 0.000000")  # no state file: it cannot tell what its desk had, so all of them
        assert "values the others may have changed sent to this process's OSC" in desk_side.output()
        # Its killed self, listed until its beats expire, is no other process sharing its desk.
        wait_until(lambda: cluster_status(desk_side)["members"] == 2, what="the killed process's beats expired")
        wait_until(lambda: cluster_status(desk_side)["shared_targets"] == [], what="a beat after that")
        assert "is also a target of process" not in desk_side.output()
    finally:
        dump.close()


SURFACE_TOML = (
    CONTROLS_TOML
    + """
[[controls]]
id = "list"
type = "select"
options = ["Main", "Sound", "Video"]
[[controls]]
id = "cue_name"
type = "label"
[[controls]]
id = "go"
type = "button"
mode = "trigger"
"""
)


def test_the_new_types_are_shared_and_a_trigger_fires_everywhere_without_being_stored(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start, clients: Callable[..., Any]
) -> None:
    p1, p2 = start_processes(
        bridge_factory,
        [member_config(tmp_path / f"p{n}", redis_server.url, controls=SURFACE_TOML) for n in (1, 2)],
    )
    a, b = clients(p1.url), clients(p2.url)
    for client in (a, b):
        client.wait_event("snapshot")
    a.send("list", "Video")
    b.wait_value("list", "Video")
    p2.put_values(cue_name="Act 3")
    a.wait_value("cue_name", "Act 3")
    a.send("go", 1)
    b.wait_event("update value", lambda e: e == {"who": "go", "data": 1})
    assert p2.get_json("/api/values")["go"] == 0
    late = bridge_factory(member_config(tmp_path / "p3", redis_server.url, controls=SURFACE_TOML))
    values = late.get_json("/api/values")
    assert (values["list"], values["cue_name"], values["go"]) == ("Video", "Act 3", 0)


def test_a_desk_that_answers_queries_gets_what_changed_while_its_process_was_away_not_asked(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start
) -> None:
    """An X32 (it answers a bare address with its value) behind a process that was down while phones on another
    set a level: the greeting at the restart asked for it, the desk's old answer won, and the phones' change
    was undone on every process (a reviewer's case)."""
    desk = FakeX32({"/slider1": 12.0, "/slider2": 3.0})
    try:
        hardware = (
            f'[osc]\nlisten = "127.0.0.1:{free_port(socket.SOCK_DGRAM)}"\n'
            f'[[osc.targets]]\naddress = "127.0.0.1:{desk.port}"\nquery_on_connect = true\n'
        )
        desk_side, other = start_processes(
            bridge_factory,
            [
                member_config(tmp_path / "p1", redis_server.url, hardware),
                member_config(tmp_path / "p2", redis_server.url),
            ],
        )
        wait_until(lambda: other.get_json("/api/values")["slider1"] == 12, what="the desk's level, asked at start")
        desk_side.kill()
        other.put_values(slider1=44)
        desk_side.start()
        wait_until(lambda: desk.values["/slider1"] == 44.0, what="the phones' level at the desk")
        assert other.get_json("/api/values")["slider1"] == 44 and desk_side.get_json("/api/values")["slider1"] == 44
        assert desk.queries.count("/slider1") == 1  # asked at the first start only
    finally:
        desk.close()


def test_a_first_start_does_not_push_another_processs_defaults_over_a_desk(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start
) -> None:
    """A phones-only process started first and filled Redis with its defaults; the desk's process, with a state
    file, then sent those defaults to the desk as if changed while it was away, and every page took them over
    the desk's levels (a reviewer's case). Only values some process changed are owed; the desk is asked."""
    desk = FakeX32({"/slider1": 10.0})
    try:
        other = bridge_factory(member_config(tmp_path / "p2", redis_server.url))  # (slider1's default: 25)
        folder = tmp_path / "p1"
        folder.mkdir()
        (folder / "state.json").write_text(json.dumps({"version": 1, "values": {"slider1": 10}}), encoding="utf-8")
        hardware = (
            f'[cluster]\nredis = "{redis_server.url}"\n[osc]\nlisten = "127.0.0.1:{free_port(socket.SOCK_DGRAM)}"\n'
            f'[[osc.targets]]\naddress = "127.0.0.1:{desk.port}"\nquery_on_connect = true\n'
        )
        bridge_factory(write_config(folder, extra=hardware))
        wait_until(lambda: other.get_json("/api/values")["slider1"] == 10, what="the desk's level, asked")
        assert desk.values["/slider1"] == 10.0 and "/slider1" in desk.queries
    finally:
        desk.close()


@pytest.mark.parametrize("asked", [False, True])
def test_a_desk_that_comes_up_after_its_restarted_process_still_gets_what_it_was_owed(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start, asked: bool
) -> None:
    """The desk and its process went down together; a phone set a level meanwhile; the process came back
    first, sent the desk what it owed it into a closed port, and forgot it: the desk, up 3 s later, was asked,
    answered its old level and undid the phone's everywhere (a reviewer's case). Asked to answer (an X32 as
    the docs set it up), its answers while "unreachable" forgot what it was owed, too."""
    port = free_port(socket.SOCK_DGRAM)
    desk = FakeX32({"/slider1": 12.0}, port=port)
    answer = ", answer_within = 2.0" if asked else ""
    hardware = (
        f'[osc]\nlisten = "127.0.0.1:{free_port(socket.SOCK_DGRAM)}"\n[[osc.targets]]\naddress = "127.0.0.1:{port}"\n'
        f'keepalive = {{ message = [["/xremote"], ["/status"]], every = 0.5{answer} }}\nquery_on_connect = true\n'
    )
    desk_side, other = start_processes(
        bridge_factory,
        [member_config(tmp_path / "p1", redis_server.url, hardware), member_config(tmp_path / "p2", redis_server.url)],
    )
    wait_until(lambda: other.get_json("/api/values")["slider1"] == 12, what="the desk's level, asked at start")
    desk_side.kill()
    desk.close()
    other.put_values(slider1=44)
    desk_side.start()
    wait_until(
        lambda: desk_side.get_json("/healthz")["adapters"]["osc"]["targets"][0]["state"] == "unreachable",
        what="no desk yet",
    )
    desk = FakeX32({"/slider1": 12.0}, port=port)  # up, still at its old level
    try:
        wait_until(lambda: desk.values["/slider1"] == 44.0, timeout=DEADLINE + 5, what="the phone's level")
        assert "/slider1" not in desk.queries and other.get_json("/api/values")["slider1"] == 44
    finally:
        desk.close()


class SlowLink:
    """A TCP relay to Redis that holds each chunk ``delay`` seconds, each way: a Redis a few ms away."""

    def __init__(self, port: int, delay: float) -> None:
        self.port, self.delay = port, delay
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.server.getsockname()[1]}/0"
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.server.accept()
                far = socket.create_connection(("127.0.0.1", self.port))
            except OSError:
                return
            self.sockets += [near, far]
            for one, other in ((near, far), (far, near)):
                threading.Thread(target=self._pump, args=(one, other), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                time.sleep(self.delay)  # (the link's own latency)
                sink.sendall(data)

    def close(self) -> None:
        self.server.close()
        for sock in self.sockets:
            sock.close()


@pytest.mark.parametrize("busy", [False, True])
def test_a_go_pressed_after_a_cue_is_set_reaches_the_desk_of_another_process_after_it(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start, clients: Callable[..., Any], busy: bool
) -> None:
    """A phone on a process without the desk set a cue's text, then pressed GO: the press was announced before
    the text was written, and the desk behind the other process fired first (8 rounds in 10, a reviewer's case).
    Busy: another phone moves a fader all along, and that process's Redis is 3 ms away: a press made while a
    write was on its way went before the text filed meanwhile (10 rounds in 10, a reviewer's case)."""
    need("oscdump")
    dump = OscDump()
    link = SlowLink(redis_server.port, 0.003 if busy else 0.0)
    stop = threading.Event()
    try:
        hardware = f'[osc]\nlisten = "127.0.0.1:{free_port(socket.SOCK_DGRAM)}"\ntargets = ["127.0.0.1:{dump.port}"]\n'
        _p1, p2 = start_processes(
            bridge_factory,
            [
                member_config(tmp_path / "p1", redis_server.url, hardware, controls=SURFACE_TOML),
                member_config(tmp_path / "p2", link.url, controls=SURFACE_TOML),
            ],
        )
        phone, other = clients(p2.url), clients(p2.url)
        phone.wait_event("snapshot")

        def drag() -> None:
            n = 0
            while busy and not stop.wait(0.005):
                n += 1
                other.send("slider1", n % 50)

        dragger = threading.Thread(target=drag, daemon=True)
        dragger.start()
        for n in range(6):
            phone.send("txt1", f"cue {n}")
            phone.send("go", 1)
            wait_until(lambda n=n: dump.messages().count("/go i 1") == n + 1, what=f"GO {n + 1} at the desk")
        heard = [m for m in dump.messages() if m.startswith(("/txt1", "/go"))]
        assert heard == [line for n in range(6) for line in (f'/txt1 s "cue {n}"', "/go i 1")]
    finally:
        stop.set()
        dump.close()
        link.close()


def test_a_process_with_other_controls_refuses_to_join_until_the_others_are_gone(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start
) -> None:
    running = bridge_factory(member_config(tmp_path / "p1", redis_server.url))
    other_controls = CONTROLS_TOML.replace("max = 50", "max = 100", 1)
    other = member_config(tmp_path / "p2", redis_server.url, controls=other_controls)
    refused = bridge_factory(other, wait=False)
    assert refused.proc is not None
    assert refused.proc.wait(timeout=30) == 1
    lines = [line for line in refused.output().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "controls differ" in lines[0] and "1 process(es) running" in lines[0]

    # Labels, groups and OSC addresses may differ: only ids, types and ranges must agree.
    relabelled = CONTROLS_TOML.replace('label = "Slider 1"', 'label = "Lead vocal"')
    joined = bridge_factory(member_config(tmp_path / "p3", redis_server.url, controls=relabelled))
    assert cluster_status(joined)["state"] == "joined"

    # Once every process of the old show has stopped, the new controls take over.
    assert running.stop() == 0
    assert joined.stop() == 0
    took_over = bridge_factory(other)
    assert took_over.get_json("/api/values")["slider1"] == 25
    assert "values reset from this config" in took_over.output()


def test_a_reload_made_by_every_process_is_shared_and_a_disagreement_is_said(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start, clients: Callable[..., Any]
) -> None:
    extra_control = '\n[[controls]]\nid = "spot"\ntype = "range"\nmax = 10\nvalue = 2\n'
    first, second = member_config(tmp_path / "p1", redis_server.url), member_config(tmp_path / "p2", redis_server.url)
    p1, p2 = start_processes(bridge_factory, [first, second])
    a, b = clients(p1.url, Client), clients(p2.url, Client)
    a.send("slider1", 33)
    b.wait_value("slider1", 33)

    # Each process has its own copy; only the first is edited: they disagree, and say so.
    first.write_text(first.read_text(encoding="utf-8") + extra_control, encoding="utf-8")
    a.wait_event("layout", lambda e: e["generation"] == 2)
    wait_until(lambda: cluster_status(p1)["differ"] == 1, what="process 1 to see that process 2 differs")
    wait_until(lambda: cluster_status(p2)["differ"] == 1, what="process 2 to see that process 1 differs")
    wait_until(lambda: "a config reload not made by every process" in p1.output(), what="the warning")
    a.send("spot", 5)  # a control only process 1 has: shared once process 2 has it too
    a.send("slider1", 34)  # one they share: still shared
    b.wait_value("slider1", 34)
    assert "spot" not in p2.get_json("/api/values")
    # A third process with the old controls still joins: process 2 runs them.
    p3 = bridge_factory(member_config(tmp_path / "p3", redis_server.url))
    assert cluster_status(p3)["state"] == "joined"
    assert p3.stop() == 0

    # The second copy gets the same edit: the new control comes with the value process 1 gave it.
    second.write_text(second.read_text(encoding="utf-8") + extra_control, encoding="utf-8")
    b.wait_event("layout", lambda e: e["generation"] == 2)
    b.wait_value("spot", 5)
    wait_until(lambda: all(cluster_status(p)["differ"] == 0 for p in (p1, p2)), what="both to agree again")
    assert "every process runs the same controls again" in p1.output()
    b.send("spot", 8)
    a.wait_value("spot", 8)

    # Now a process with the old controls is refused: no process runs them any more.
    refused = bridge_factory(member_config(tmp_path / "p4", redis_server.url), wait=False)
    assert refused.proc is not None and refused.proc.wait(timeout=30) == 1
    assert "controls differ" in refused.output()
    # And one started on the new file joins, with the shared values.
    p5 = bridge_factory(second)
    assert p5.get_json("/api/values")["spot"] == 8 and p5.get_json("/api/values")["slider1"] == 34


def test_through_nginx_fifty_clients_stay_in_sync_and_survive_a_killed_process(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start, clients: Callable[..., Any]
) -> None:
    need("nginx")
    procs = start_processes(bridge_factory, [member_config(tmp_path / f"p{i}", redis_server.url) for i in range(3)])
    nginx = Nginx(tmp_path / "nginx", [p.port for p in procs]).start()
    try:
        made: list[Client] = []
        lock = threading.Lock()

        def join() -> None:
            client = clients(nginx.url, Client)
            with lock:
                made.append(client)

        joiners = [threading.Thread(target=join) for _ in range(50)]
        for joiner in joiners:
            joiner.start()
        for joiner in joiners:
            joiner.join()
        assert len(made) == 50
        for client in made:
            client.wait_event("snapshot")
        spread = [p.get_json("/healthz")["adapters"]["web"]["clients"] for p in procs]
        assert sum(spread) == 50 and all(spread), spread  # sticky, and spread over all three

        for value in (33, 34):
            assert nginx_put(nginx, "slider1", value) == 200
            for client in made:
                client.wait_value("slider1", value)

        victim = max(procs, key=lambda p: p.get_json("/healthz")["adapters"]["web"]["clients"])
        survivors = [p for p in procs if p is not victim]
        moved = victim.get_json("/healthz")["adapters"]["web"]["clients"]
        victim.kill()
        assert survivors[0].put_json("/api/values/txt1", {"value": "while they moved"})[0] == 200
        assert nginx_put(nginx, "slider1", 44) == 200

        def all_back() -> bool:
            return sum(p.get_json("/healthz")["adapters"]["web"]["clients"] for p in survivors) == 50

        wait_until(all_back, timeout=30, what="every client reconnected through nginx")
        for client in made:
            client.wait_value("slider1", 44)
            client.wait_value("txt1", "while they moved")
        reconnected = [c for c in made if len(c.of("snapshot")) >= 2]
        assert len(reconnected) == moved
    finally:
        nginx.stop()


def nginx_put(nginx: Nginx, control: str, value: object) -> int:
    """PUT a value through nginx, to whichever process it picks; the status."""
    body = json.dumps({"value": value}).encode()
    request = urllib.request.Request(
        f"{nginx.url}/api/values/{control}", data=body, method="PUT", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def test_redis_killed_and_restarted_mid_stream_loses_no_acknowledged_value(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start, clients: Callable[..., Any]
) -> None:
    procs = start_processes(bridge_factory, [member_config(tmp_path / f"p{i}", redis_server.url) for i in range(3)])
    views: list[ViewClient] = [clients(p.url) for p in procs for _ in range(2)]
    for view in views:
        view.wait_event("snapshot")
    # Acknowledged by Redis (the other processes learnt it from there), then Redis dies at once:
    # within its one-second fsync window, so the process that wrote it must write it back.
    assert procs[1].put_json("/api/values/fine", {"value": 0.25})[0] == 200
    wait_until(lambda: all(p.get_json("/api/values")["fine"] == 0.25 for p in procs), what="fine everywhere")

    stop = threading.Event()
    last: dict[str, Any] = {}

    def stream(view: ViewClient, control: str, make: Callable[[int], object]) -> None:
        k = 0
        while not stop.is_set():
            last[control] = make(k)
            view.send(control, last[control])
            k += 1
            stop.wait(0.005)

    streams = [
        threading.Thread(target=stream, args=(views[0], "slider1", lambda k: k % 51)),
        threading.Thread(target=stream, args=(views[4], "txt1", lambda k: f"line {k}")),
    ]
    for thread in streams:
        thread.start()
    try:
        wait_until(lambda: procs[2].get_json("/api/values")["txt1"] != "", what="the stream flowing")
        redis_server.kill()
        wait_until(lambda: all(cluster_status(p)["state"] == "down" for p in procs), what="every process sees it")
        sent = len(views[0].of("sent"))
        wait_until(lambda: len(views[0].of("sent")) > sent + 20, what="changes made while Redis is down")
    finally:
        stop.set()
        for thread in streams:
            thread.join()
    redis_server.start()

    def agreed() -> bool:
        if not all(cluster_status(p)["state"] == "joined" for p in procs):
            return False
        values = [p.get_json("/api/values") for p in procs]
        return all(v["slider1"] == last["slider1"] and v["txt1"] == last["txt1"] for v in values)

    wait_until(agreed, timeout=30, what="every process on the last values sent")
    for view in views:
        wait_until(lambda v=view: v.shows("slider1") == last["slider1"] and v.shows("txt1") == last["txt1"])
    stored = redis.Redis.from_url(redis_server.url, decode_responses=True).hgetall("stage-bridge:values")
    assert stored["fine"] == "0.25" and stored["txt1"] == f'"{last["txt1"]}"'
    assert all(cluster_status(p)["outages"] == 1 for p in procs)


def test_redis_keeps_the_values_across_its_restart_with_no_process_running(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start
) -> None:
    first = bridge_factory(member_config(tmp_path / "p1", redis_server.url))
    assert first.put_json("/api/values/slider2", {"value": 31})[0] == 200
    assert first.stop() == 0
    redis_server.stop()  # SIGTERM: Redis fsyncs its AOF on the way out
    redis_server.start()
    second = bridge_factory(member_config(tmp_path / "p2", redis_server.url))
    assert second.get_json("/api/values")["slider2"] == 31


def test_a_redis_that_lost_its_data_is_filled_again_by_the_processes(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start
) -> None:
    # What a machine crash within the fsync window, or a Redis without persistence, leaves behind.
    procs = start_processes(bridge_factory, [member_config(tmp_path / f"p{i}", redis_server.url) for i in range(2)])
    assert procs[0].put_json("/api/values/slider1", {"value": 17})[0] == 200
    assert procs[1].put_json("/api/values/txt1", {"value": "kept"})[0] == 200
    wait_until(lambda: all(p.get_json("/api/values")["txt1"] == "kept" for p in procs), what="txt1 everywhere")
    redis_server.kill()
    shutil.rmtree(redis_server.folder / "appendonlydir")
    redis_server.start()
    store = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:

        def refilled() -> bool:
            stored = store.hgetall("stage-bridge:values")
            return stored.get("slider1") == "17" and stored.get("txt1") == '"kept"'

        wait_until(refilled, timeout=30, what="Redis filled again from the processes")
        wait_until(lambda: all(cluster_status(p)["state"] == "joined" for p in procs), what="both joined again")
        assert all(p.get_json("/api/values")["slider1"] == 17 for p in procs)
        assert any("Redis had lost" in p.output() for p in procs)
    finally:
        store.close()


def test_two_processes_changing_one_control_from_many_clients_end_on_one_value(
    tmp_path: Path, redis_server: RedisServer, bridge_factory: Start, clients: Callable[..., Any]
) -> None:
    procs = start_processes(bridge_factory, [member_config(tmp_path / f"p{i}", redis_server.url) for i in range(2)])
    senders: list[ViewClient] = [clients(p.url) for p in procs for _ in range(5)]
    watchers: list[ViewClient] = [clients(p.url) for p in procs]
    for view in (*senders, *watchers):
        view.wait_event("snapshot")

    def drag(view: ViewClient, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(30):
            view.send("slider1", rng.randint(0, 50))

    def one_value() -> Any:
        values = {p.get_json("/api/values")["slider1"] for p in procs}
        if len(values) != 1:
            return None
        (value,) = values
        shown = {view.shows("slider1") for view in (*senders, *watchers)}
        return shown == {value}

    for round_ in range(3):
        threads = [threading.Thread(target=drag, args=(view, 100 * round_ + i)) for i, view in enumerate(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wait_until(one_value, what=f"both processes and every client on one slider1 (round {round_ + 1})")


def test_two_hubs_settle_on_redis_order_round_after_round(tmp_path: Path, redis_server: RedisServer) -> None:
    """The ordering rule itself, many times over: two processes' hubs in this process, one real Redis."""
    controls = load_config(write_config(tmp_path)).controls
    hubs = [Hub(controls) for _ in range(2)]
    adapters = [ClusterAdapter(hub, ClusterConfig(redis_server.url)) for hub in hubs]
    store = redis.Redis.from_url(redis_server.url, decode_responses=True)
    for hub, adapter in zip(hubs, adapters, strict=True):
        hub.add_adapter(adapter)
        adapter.start()
    try:
        for round_ in range(40):
            barrier = threading.Barrier(4)

            def drive(hub: Hub, seed: int, barrier: threading.Barrier = barrier) -> None:
                rng = random.Random(seed)
                barrier.wait()
                for _ in range(8):
                    hub.set("slider1", rng.randint(0, 50), Origin("web", f"s{seed}"))

            threads = [threading.Thread(target=drive, args=(hubs[i % 2], 10 * round_ + i)) for i in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

            def settled() -> bool:
                if any(a.describe()["queued"] or a.describe()["inflight"] for a in adapters):
                    return False
                stored = json.loads(store.hget("stage-bridge:values", "slider1") or "null")
                return hubs[0].get("slider1") == hubs[1].get("slider1") == stored

            wait_until(settled, what=f"both hubs on Redis's last write (round {round_ + 1})")
    finally:
        for adapter in adapters:
            adapter.stop()
        store.close()


def test_start_fails_with_one_line_when_redis_is_unreachable(tmp_path: Path, bridge_factory: Start) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    proc = bridge_factory(member_config(tmp_path, nowhere), wait=False)
    assert proc.proc is not None
    assert proc.proc.wait(timeout=30) == 1
    errors = [line for line in proc.output().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"cannot reach Redis at {nowhere}" in errors[0]


@pytest.mark.unit
def test_cluster_table_is_checked(tmp_path: Path) -> None:
    bad = member_config(tmp_path, "http://127.0.0.1:6379")
    with pytest.raises(ConfigError, match=r"cluster\.redis: expected a Redis URL"):
        load_config(bad)
    config = load_config(member_config(tmp_path, "redis://:secret@127.0.0.1:6379/2", 'name = "show-2"\n'))
    assert config.cluster is not None and config.cluster.name == "show-2"


def test_without_a_cluster_table_a_bridge_needs_no_redis(tmp_path: Path) -> None:
    # The redis package made unimportable, as on a machine without the cluster extra.
    plain, clustered = write_config(tmp_path), member_config(tmp_path / "c", "redis://127.0.0.1:6379/0")
    script = (
        "import sys; sys.modules['redis'] = None\n"
        "from bridge.app import Bridge\n"
        "from bridge.config import load_config\n"
        "from bridge.errors import ConfigError\n"
        f"bridge = Bridge(load_config({str(plain)!r}))\n"
        "print([a.name for a in bridge.hub.adapters], 'bridge.cluster' in sys.modules)\n"
        "try:\n"
        f"    load_config({str(clustered)!r})\n"
        "except ConfigError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    first, second = out.stdout.splitlines()
    assert first == "['web', 'state', 'scenes'] False"
    assert second.endswith("cluster: needs the Python package redis: pip install 'stage-bridge[cluster]'")
