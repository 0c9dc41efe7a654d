"""Changes that cross on the wire: every browser ends on the stored value."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pytest

from bridge.crossing import Crossings
from tests.helpers import BridgeProcess, wait_until
from tests.views import ViewClient

ConnectView = Callable[[str], ViewClient]


@pytest.fixture
def view_factory(client_factory: Callable[..., Any]) -> ConnectView:
    return lambda url: client_factory(url, ViewClient)


@pytest.mark.unit
def test_a_lone_sender_is_never_confirmed() -> None:
    c = Crossings(delay=0.0)
    for t in range(5):
        assert not c.changed("s1", "a", float(t))
        c.broadcast("a", "s1")  # its own change, to everybody else
    assert not c.pending


@pytest.mark.unit
def test_a_first_change_is_confirmed_only_after_broadcasts_since_the_snapshot() -> None:
    c = Crossings(delay=0.0)
    c.broadcast("a", None)
    c.joined("s1")  # the snapshot had that value
    assert not c.changed("s1", "a", 0.0)
    c.broadcast("a", None)
    c.joined("s2")
    c.broadcast("a", None)  # after s2's snapshot: it may still be on its way
    assert c.changed("s2", "a", 0.0)
    assert c.take_due(1.0) == [("s2", "a")]
    assert c.changed("s3", "a", 1.0)  # never joined: assume the worst


@pytest.mark.unit
def test_a_foreign_broadcast_between_two_changes_is_confirmed_once_paused() -> None:
    c = Crossings(delay=0.05)
    c.changed("s1", "a", 0.0)
    c.take_due(1.0)
    c.changed("s1", "a", 1.0)  # settles the told flag of the first confirmation
    c.take_due(2.0)
    assert not c.changed("s1", "a", 2.0)
    c.broadcast("a", "s1")
    c.broadcast("a", "s2")  # somebody else moved it
    c.broadcast("a", "s1")
    assert c.changed("s1", "a", 3.0)
    assert c.take_due(3.01) == []  # still within the pause
    assert c.changed("s1", "a", 3.02)  # it keeps sending: pushed back
    assert c.take_due(3.06) == []
    assert c.take_due(3.08) == [("s1", "a")]
    c.forget("s1")
    assert not c.pending


def test_many_senders_on_one_control_all_end_on_the_stored_value(
    server: BridgeProcess, view_factory: ConnectView
) -> None:
    senders = [view_factory(server.url) for _ in range(6)]
    watcher = view_factory(server.url)
    for client in (*senders, watcher):
        client.wait_event("snapshot")

    def drag(client: ViewClient, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(60):
            client.send("slider1", rng.randint(0, 50))

    threads = [threading.Thread(target=drag, args=(c, i)) for i, c in enumerate(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    def agreed() -> bool:
        stored = server.get_json("/api/values")["slider1"]
        return all(c.shows("slider1") == stored for c in (*senders, watcher))

    wait_until(agreed, what="every browser on the stored slider1")
    assert server.get_json("/healthz")["adapters"]["web"]["confirmed"] > 0
