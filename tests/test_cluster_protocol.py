"""The cluster's version protocol without Redis: the rules that make every process end on one value."""

from __future__ import annotations

import pytest

from bridge.cluster.protocol import Versions

pytestmark = pytest.mark.unit


def joined() -> Versions:
    versions = Versions(["a", "b"])
    versions.replace({})
    return versions


def test_nothing_is_written_or_applied_until_joined() -> None:
    versions = Versions(["a"])
    versions.file("a", 1, "web")
    assert versions.take() is None and versions.queued == 1
    assert versions.announced("a", 3, 9) and versions.settled("a") is None
    assert versions.replace({"a": (3, 9)}) == 1  # joined, one change still to write
    assert versions.take() == [("a", (1, "web"))] and versions.inflight == 1


def test_the_latest_local_change_wins_and_keeps_its_place() -> None:
    versions = joined()
    versions.file("a", 1, "web")
    versions.file("b", 2, "osc")
    versions.file("a", 3, "midi")
    assert versions.take() == [("b", (2, "osc")), ("a", (3, "midi"))]


def test_a_pending_change_of_ones_own_outranks_what_others_announce() -> None:
    versions = joined()
    versions.file("a", 10, "web")
    assert versions.announced("a", 5, 77)  # news, but ours comes later in Redis's order
    assert versions.settled("a") is None
    batch = versions.take()
    assert batch is not None and versions.settled("a") is None  # in flight: still ours to wait for
    assert versions.acknowledged(batch, [6]) == ["a"]
    assert versions.settled("a") == 10  # version 6 beats 5: ours is the value everywhere


def test_the_highest_version_is_shown_once_nothing_is_pending() -> None:
    versions = joined()
    assert versions.announced("a", 2, 20)
    assert not versions.announced("a", 1, 10)  # older: ignored
    assert not versions.announced("a", 2, 20)  # known already (e.g. our own write, acknowledged)
    assert versions.settled("a") == 20
    versions.file("a", 30, "web")
    batch = versions.take()
    assert batch is not None
    versions.acknowledged(batch, [3])
    assert versions.announced("a", 4, 40) and versions.settled("a") == 40


def test_a_failed_write_goes_back_behind_nothing_newer() -> None:
    versions = joined()
    versions.file("a", 1, "web")
    versions.file("b", 2, "web")
    batch = versions.take()
    assert batch is not None
    versions.file("a", 5, "web")  # newer, while the write failed
    versions.requeue(batch)
    assert versions.inflight == 0
    assert versions.take() == [("b", (2, "web")), ("a", (5, "web"))]


def test_leaving_holds_writes_and_a_rejoin_replaces_versions() -> None:
    versions = joined()
    versions.announced("a", 9, 90)
    versions.left()
    versions.file("a", 1, "web")
    assert versions.take() is None and versions.settled("a") is None
    # Redis restarted and lost data: its versions went down; they are taken as they are.
    versions.replace({"a": (2, 20)})
    assert versions.known()["a"] == (20, 2)
