"""Floods settle: toward each browser the latest value wins, nothing piles up without bound."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import websocket

from tests.helpers import BridgeProcess, Client, wait_until, write_config

Connect = Callable[[str], Client]


class StalledClient:
    """A raw Socket.IO client over one WebSocket that stops reading after connecting.

    Its tiny receive buffer makes the server's writes to it block soon, as a
    phone on a weak Wi-Fi link would.
    """

    def __init__(self, url: str, first: str = "slider1") -> None:
        ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(
            ws_url, timeout=15, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),)
        )
        assert self.ws.recv().startswith("0")  # engine.io open
        self.ws.send("40")  # connect to the default namespace
        self.latest: dict[str, object] = {}
        self.updates = 0
        while first not in self.latest:
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


MANY_TEXTS = "".join(f'\n[[controls]]\nid = "t{i}"\ntype = "text"\n' for i in range(200))


def test_flood_toward_a_stalled_client_keeps_only_latest_values(
    tmp_path: Path, bridge_factory: Callable[..., BridgeProcess], client_factory: Connect
) -> None:
    # Many controls, so that the fan-out cannot fold the flood into a few
    # messages, and no input rate limit: this is about the way out to a slow client.
    config = write_config(tmp_path, controls=MANY_TEXTS)
    config.write_text(
        config.read_text().replace('state_file = "state.json"', 'state_file = "state.json"\nmax_rate = 1000000')
    )
    server = bridge_factory(config)
    stalled = StalledClient(server.url, first="t0")
    try:
        flooder, watcher = client_factory(server.url), client_factory(server.url)
        watcher.wait_event("snapshot")
        text = "x" * 1000  # big updates: the stalled client's socket fills up fast

        def held_back() -> bool:
            web = server.get_json("/healthz")["adapters"]["web"]
            return bool(web["behind"] >= 1 and web["coalesced"] > 0)

        # Rounds of one new value per control, as fast as they go, until the
        # stalled client is held back and some of its values were replaced.
        # Quick, so that the stalled client is back before its ping times out.
        sent = 0
        while not (sent and held_back()):
            assert sent < 100_000, "the stalled client was never held back"
            for _ in range(5):
                for cid in range(200):
                    flooder.send(f"t{cid}", f"{sent:06d}{text}")
                    sent += 1
        finals = {f"t{i % 200}": f"{i:06d}{text}" for i in range(sent - 200, sent)}
        watcher.wait_value("t199", finals["t199"])  # a client that keeps up is not held back
        # The stalled client reads again: it ends on every final value without
        # having been sent every intermediate one.
        for cid, value in finals.items():
            stalled.read_until(cid, value)
        assert stalled.updates < sent
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
