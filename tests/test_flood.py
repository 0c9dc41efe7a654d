"""Floods settle: toward each browser the latest value wins, nothing piles up without bound."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import BridgeProcess, Client, secure, wait_until
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


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_client_that_stops_reading_is_held_back_long_before_its_buffers_fill(
    scheme: str,
    tmp_path: Path,
    bridge_factory: Callable[..., BridgeProcess],
    client_factory: Connect,
    certificate: tuple[Path, Path],
) -> None:
    """Small updates: the kernel's buffers toward a client would hold thousands before they
    fill, seconds of a show. The bridge learns from the pings it sends among the updates that
    the client has not read them, and holds it to the latest value per control. Over HTTPS
    the library writes each packet (not the bridge's wire): the pings are counted all the same."""
    config = many_texts_config(tmp_path, '\n[[controls]]\nid = "go"\ntype = "button"\n')
    server = bridge_factory(secure(config, certificate) if scheme == "https" else config)
    stalled = SlowClient(server.url, first="t0", rcvbuf=None)
    try:
        flooder = client_factory(server.url)
        flooder.wait_event("snapshot")

        def held_back() -> bool:
            web = server.get_json("/healthz")["adapters"]["web"]
            return bool(web["behind"] >= 1 and web["coalesced"] > 0)

        sent = 0
        while not held_back():
            # A stalled client with the kernel's buffers takes over 5,000 of these before
            # they fill (measured without the pings: 0 held back after 5,000).
            assert sent < 1000, "the stalled client was not held back"
            flooder.send("t0", f"v{sent}")
            sent += 1
        for _ in range(3):  # taps while it is held back
            flooder.send("go", 1)
            flooder.send("go", 0)
        flooder.send("t0", "after the taps")
        stalled.read_until("t0", "after the taps")  # it reads again: it ends on the last value...
        texts = [data for who, data in stalled.updates if who == "t0"]
        assert texts[-1] == "after the taps" and len(texts) < sent + 1  # ...without having been sent every one
        assert [data for who, data in stalled.updates if who == "go"] == [1, 0] * 3  # but every tap, in order
        wait_until(lambda: server.get_json("/healthz")["adapters"]["web"]["behind"] == 0, what="caught up")
        # and, caught up, it gets every change again
        for i in range(3):
            flooder.send("t0", f"w{i}")
            stalled.read_until("t0", f"w{i}")
    finally:
        stalled.close()


def test_a_flood_of_taps_toward_a_client_held_back_is_bounded(
    tmp_path: Path, bridge_factory: Callable[..., BridgeProcess], client_factory: Connect
) -> None:
    """Every press and release is kept for a client that is behind, but not without end: past
    64 of them a button too is held to its latest state."""
    server = bridge_factory(many_texts_config(tmp_path, '\n[[controls]]\nid = "go"\ntype = "button"\n'))
    stalled = SlowClient(server.url, first="t0", rcvbuf=None)
    try:
        flooder, watcher = client_factory(server.url), client_factory(server.url)
        watcher.wait_event("snapshot")

        def held_back() -> bool:
            # Found behind, and a value already held for it: the next change is held too (found
            # behind alone, one change could still be written before the fan-out looked again).
            web = server.get_json("/healthz")["adapters"]["web"]
            return bool(web["behind"] >= 1 and web["coalesced"] > 0)

        sent = 0
        while not held_back():
            assert sent < 1000, "the stalled client was not held back"
            flooder.send("t0", f"v{sent}")
            sent += 1
        for _ in range(300):
            flooder.send("go", 1)
            flooder.send("go", 0)
        flooder.send("t0", "after the taps")
        watcher.wait_value("t0", "after the taps")  # every tap is through the hub before the stalled one reads
        stalled.read_until("t0", "after the taps")
        taps = [data for who, data in stalled.updates if who == "go"]
        assert taps[:64] == [1, 0] * 32 and taps[-1] == 0
        assert len(taps) <= 65  # 64 kept one by one, then the latest state
    finally:
        stalled.close()


def test_a_control_removed_and_added_back_while_a_client_is_behind_ends_on_its_new_value(
    tmp_path: Path, bridge_factory: Callable[..., BridgeProcess], client_factory: Connect
) -> None:
    """A value held for a browser behind, from before a reload removed its control, went out after the
    surface that brought the control back with another value: the page showed the old one."""
    config = many_texts_config(tmp_path)
    text = config.read_text(encoding="utf-8")
    server = bridge_factory(config)
    stalled = SlowClient(server.url, first="t0", rcvbuf=None)
    try:
        flooder = client_factory(server.url)
        flood_until_held_back(server, flooder)
        flooder.send("t0", "from before")  # held for the stalled page
        wait_until(lambda: server.get_json("/api/values")["t0"] == "from before", what="the value stored")
        without = text.replace('\n[[controls]]\nid = "t0"\ntype = "text"\n', "")
        config.write_text(without, encoding="utf-8")
        assert server.request_json("POST", "/api/config/reload")[0] == 200
        # Back as a range: the text it had does not fit, so it starts from its default.
        config.write_text(
            without + '\n[[controls]]\nid = "t0"\ntype = "range"\nmax = 10\nvalue = 4\n', encoding="utf-8"
        )
        assert server.request_json("POST", "/api/config/reload")[0] == 200
        assert server.get_json("/api/values")["t0"] == 4
        flooder.send("t1", "the end")
        stalled.read_until("t1", "the end")
        assert "from before" not in [data for who, data in stalled.updates if who == "t0"]
    finally:
        stalled.close()
