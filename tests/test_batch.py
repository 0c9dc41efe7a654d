"""A browser that asked for it gets the values held while it was behind as one ``update values`` frame."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.helpers import BridgeProcess, Client, wait_until
from tests.slow_client import SlowClient, flood_until_held_back, many_texts_config


def test_held_values_come_as_one_batch_to_a_browser_that_asked(
    tmp_path: Path, bridge_factory: Callable[..., BridgeProcess], client_factory: Callable[[str], Client]
) -> None:
    server = bridge_factory(many_texts_config(tmp_path))
    slow = SlowClient(server.url, first="t0", auth={"batch": True})
    try:
        flooder = client_factory(server.url)
        _, finals = flood_until_held_back(server, flooder)
        for cid, value in finals.items():
            slow.read_until(cid, value)
        assert slow.batches, "the held values never came as one frame"
        for batch in slow.batches:
            assert len(batch) > 1
            assert all(set(pair) == {"who", "data"} for pair in batch)
        wait_until(lambda: server.get_json("/healthz")["adapters"]["web"]["behind"] == 0, what="caught up")
    finally:
        slow.close()
