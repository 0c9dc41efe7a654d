"""Floods settle: toward each browser the latest value wins, nothing piles up without bound."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.helpers import BridgeProcess, Client, wait_until
from tests.slow_client import SlowClient, flood_until_held_back, many_texts_config

Connect = Callable[[str], Client]


def test_flood_toward_a_stalled_client_keeps_only_latest_values(
    tmp_path: Path, bridge_factory: Callable[..., BridgeProcess], client_factory: Connect
) -> None:
    server = bridge_factory(many_texts_config(tmp_path))
    stalled = SlowClient(server.url, first="t0")
    try:
        flooder, watcher = client_factory(server.url), client_factory(server.url)
        watcher.wait_event("snapshot")
        sent, finals = flood_until_held_back(server, flooder)
        watcher.wait_value("t199", finals["t199"])  # a client that keeps up is not held back
        # The stalled client reads again: it ends on every final value without
        # having been sent every intermediate one.
        for cid, value in finals.items():
            stalled.read_until(cid, value)
        assert stalled.singles < sent
        wait_until(lambda: server.get_json("/healthz")["adapters"]["web"]["behind"] == 0, what="caught up")
    finally:
        stalled.close()


def test_a_client_that_keeps_up_gets_every_change(server: BridgeProcess, client_factory: Connect) -> None:
    sender, receiver = client_factory(server.url), client_factory(server.url)
    receiver.wait_event("snapshot")
    for i in range(1, 51):
        sender.send("slider1", i)
        receiver.wait_value("slider1", i)  # paced by the receiver: it never falls behind
    seen = [u["data"] for u in receiver.of("update value") if u["who"] == "slider1"]
    assert seen == list(range(1, 51))
