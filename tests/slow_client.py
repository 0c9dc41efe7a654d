"""A browser that falls behind, and the flood that puts it there (tests/test_flood.py, tests/test_batch.py)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import websocket

from tests.helpers import TRUSTED, BridgeProcess, Client, write_config

#: Many controls, so that the fan-out cannot fold a flood into a few messages.
MANY_TEXTS = "".join(f'\n[[controls]]\nid = "t{i}"\ntype = "text"\n' for i in range(200))


def many_texts_config(folder: Path, more: str = "") -> Path:
    """A config of :data:`MANY_TEXTS` (and the controls in ``more``) with no input rate limit:
    a flood is about the way out."""
    config = write_config(folder, controls=MANY_TEXTS + more)
    config.write_text(
        config.read_text().replace('state_file = "state.json"', 'state_file = "state.json"\nmax_rate = 1000000')
    )
    return config


class SlowClient:
    """A raw Socket.IO client over one WebSocket that reads only when told to.

    Its tiny receive buffer (``rcvbuf``) makes the server's writes to it
    block soon, as a phone on a weak Wi-Fi link would; with ``rcvbuf=None``
    it has the kernel's own buffers, which hold thousands of small frames.
    ``auth`` goes with the connect packet (``{"batch": True}`` asks for
    ``update values``).
    """

    def __init__(
        self, url: str, first: str = "slider1", auth: dict[str, Any] | None = None, rcvbuf: int | None = 4096
    ) -> None:
        ws_url = "ws" + url.removeprefix("http") + "/socket.io/?EIO=4&transport=websocket"  # wss:// for https://
        options = ((socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf),) if rcvbuf else ()
        trust = {"ca_certs": str(TRUSTED[url])} if url.startswith("https://") else None
        self.ws = websocket.create_connection(ws_url, timeout=15, sockopt=options, sslopt=trust)
        assert self.ws.recv().startswith("0")  # engine.io open
        self.ws.send("40" + (json.dumps(auth) if auth else ""))  # connect to the default namespace
        self.latest: dict[str, object] = {}
        self.singles = 0  # `update value` frames
        self.batches: list[list[Any]] = []  # `update values` frames
        self.updates: list[tuple[str, object]] = []  # every (who, data) it was sent, in order
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
            self.singles += 1
            self.latest[payload["who"]] = payload["data"]
            self.updates.append((payload["who"], payload["data"]))
        elif event == "update values":
            self.batches.append(payload)
            for pair in payload:
                self.latest[pair["who"]] = pair["data"]
                self.updates.append((pair["who"], pair["data"]))

    def read_until(self, who: str, data: object) -> None:
        while self.latest.get(who) != data:
            self._read_one()

    def close(self) -> None:
        self.ws.close(timeout=0)


def flood_until_held_back(server: BridgeProcess, flooder: Client) -> tuple[int, dict[str, str]]:
    """Rounds of one new 1 kB value per control, as fast as they go, until a browser is held back
    and some of its values were replaced; quick, so that a stalled one is back before its ping
    times out. Returns how many were sent and the final value of each control."""
    text = "x" * 1000  # big updates: a slow client's socket fills up fast

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
    return sent, {f"t{i % 200}": f"{i:06d}{text}" for i in range(sent - 200, sent)}
