"""Floods settle: toward each browser the latest value wins, nothing piles up without bound."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import websocket

from tests.helpers import BridgeProcess, Client, wait_until

Connect = Callable[[str], Client]


class StalledClient:
    """A raw Socket.IO client over one WebSocket that stops reading after connecting.

    Its tiny receive buffer makes the server's writes to it block soon, as a
    phone on a weak Wi-Fi link would.
    """

    def __init__(self, url: str) -> None:
        ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(
            ws_url, timeout=15, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),)
        )
        assert self.ws.recv().startswith("0")  # engine.io open
        self.ws.send("40")  # connect to the default namespace
        self.latest: dict[str, object] = {}
        self.updates = 0
        while "slider1" not in self.latest:
            self._read_one()

    def _read_one(self) -> None:
        frame = self.ws.recv()
        if frame == "2":  # engine.io ping
            self.ws.send("3")
            return
        if not frame.startswith("42"):
            return
        event, payload = json.loads(frame[2:])
        if event == "snapshot":
            self.latest.update(payload["values"])
        elif event == "update value":
            self.updates += 1
            self.latest[payload["who"]] = payload["data"]

    def read_until(self, who: str, data: object) -> None:
        while self.latest.get(who) != data:
            self._read_one()

    def close(self) -> None:
        self.ws.close(timeout=0)


def test_flood_toward_a_stalled_client_keeps_only_latest_values(server: BridgeProcess, client_factory: Connect) -> None:
    stalled = StalledClient(server.url)
    try:
        flooder, watcher = client_factory(server.url), client_factory(server.url)
        watcher.wait_event("snapshot")
        flood = 10_000
        text = "x" * 1000  # big updates: the stalled client's socket fills up fast
        for i in range(flood):
            flooder.send("txt1", f"{i:05d}{text}")
        last = f"{flood - 1:05d}{text}"
        # Meanwhile another client's change still gets through to a third.
        watcher.send("slider2", 7)
        flooder.wait_value("slider2", 7)
        watcher.wait_value("txt1", last)
        web = server.get_json("/healthz")["adapters"]["web"]
        assert web["behind"] >= 1 and web["coalesced"] > 0
        # The stalled client reads again: it ends on the final value without
        # having been sent every intermediate one.
        stalled.read_until("txt1", last)
        assert stalled.updates < flood
        assert server.get_json("/api/values")["txt1"] == last
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
