"""A browser that asked for it gets the values held while it was behind as one ``update values`` frame."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websocket

from tests.helpers import BridgeProcess, Client, wait_until, write_config

MANY_TEXTS = "".join(f'\n[[controls]]\nid = "t{i}"\ntype = "text"\n' for i in range(200))


class SlowReader:
    """A raw Socket.IO client that asks for batches at connect, then reads only when told to."""

    def __init__(self, url: str, auth: dict[str, Any]) -> None:
        ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(
            ws_url, timeout=15, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),)
        )
        assert self.ws.recv().startswith("0")  # engine.io open
        self.ws.send("40" + json.dumps(auth))
        self.latest: dict[str, object] = {}
        self.batches: list[list[Any]] = []
        self.singles = 0
        while "t0" not in self.latest:
            self._read_one()

    def _read_one(self) -> None:
        frame = self.ws.recv()
        if frame == "2":
            self.ws.send("3")
            return
        if not frame.startswith("42"):
            return
        event, payload = json.loads(frame[2:])
        if event == "snapshot":
            self.latest.update(payload["values"])
        elif event == "update value":
            self.singles += 1
            self.latest[payload["who"]] = payload["data"]
        elif event == "update values":
            self.batches.append(payload)
            for pair in payload:
                self.latest[pair["who"]] = pair["data"]

    def read_until(self, who: str, data: object) -> None:
        while self.latest.get(who) != data:
            self._read_one()

    def close(self) -> None:
        self.ws.close(timeout=0)


def test_held_values_come_as_one_batch_to_a_browser_that_asked(
    tmp_path: Path, bridge_factory: Callable[..., BridgeProcess], client_factory: Callable[[str], Client]
) -> None:
    config = write_config(tmp_path, controls=MANY_TEXTS)
    config.write_text(
        config.read_text().replace('state_file = "state.json"', 'state_file = "state.json"\nmax_rate = 1000000')
    )
    server = bridge_factory(config)
    slow = SlowReader(server.url, {"batch": True})
    try:
        flooder = client_factory(server.url)
        text = "x" * 1000

        def held_back() -> bool:
            web = server.get_json("/healthz")["adapters"]["web"]
            return bool(web["behind"] >= 1 and web["coalesced"] > 0)

        sent = 0
        while not (sent and held_back()):
            assert sent < 100_000, "the slow client was never held back"
            for _ in range(5):
                for cid in range(200):
                    flooder.send(f"t{cid}", f"{sent:06d}{text}")
                    sent += 1
        finals = {f"t{i % 200}": f"{i:06d}{text}" for i in range(sent - 200, sent)}
        for cid, value in finals.items():
            slow.read_until(cid, value)
        assert slow.batches, "the held values never came as one frame"
        for batch in slow.batches:
            assert len(batch) > 1
            assert all(set(pair) == {"who", "data"} for pair in batch)
        wait_until(lambda: server.get_json("/healthz")["adapters"]["web"]["behind"] == 0, what="caught up")
    finally:
        slow.close()
