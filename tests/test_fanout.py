"""The way out to browsers under each server model: gevent writes one prepared frame to every socket,
the other models queue one shared packet per browser; both keep every browser's packets in order."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.helpers import BridgeProcess, Client

Connect = Callable[[str], Client]


@pytest.mark.parametrize(("model", "way"), [("gevent", "direct"), ("threading", "queued")])
def test_every_change_reaches_every_other_browser_in_order(
    model: str, way: str, bridge_factory: Callable[..., BridgeProcess], client_factory: Connect
) -> None:
    server = bridge_factory(env={"STAGE_BRIDGE_SERVER_MODEL": model})
    sender = client_factory(server.url)
    receivers = [client_factory(server.url) for _ in range(3)]
    for receiver in receivers:
        receiver.wait_event("snapshot")
    for i in range(1, 31):
        sender.send("slider1", i)
        for receiver in receivers:
            receiver.wait_value("slider1", i)  # paced: nobody falls behind, nothing is folded
    for receiver in receivers:
        # The snapshot first, then every change once, in the order sent.
        assert receiver.events[0][0] == "snapshot"
        seen = [u["data"] for u in receiver.of("update value") if u["who"] == "slider1"]
        assert seen == list(range(1, 31))
    web = server.get_json("/healthz")["adapters"]["web"]
    assert web[way] >= 30 * len(receivers)
