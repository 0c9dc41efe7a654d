"""The named mechanics: latest value per key, the outbox, the token bucket, worker groups."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.flow import Latest, Outbox, TokenBucket, Workers

pytestmark = pytest.mark.unit


@given(st.lists(st.tuples(st.sampled_from("abcd"), st.integers())))
def test_latest_keeps_the_newest_value_per_key_in_order_of_last_change(puts: list[tuple[str, int]]) -> None:
    latest: Latest[str, int] = Latest()
    for key, value in puts:
        latest.put(key, value)
    expected: dict[str, int] = {}
    for key, value in puts:
        expected.pop(key, None)
        expected[key] = value
    assert latest.replaced == len(puts) - len(expected)
    assert list(latest) == list(expected) and len(latest) == len(expected)
    assert latest.take() == expected and list(expected) == list(expected.keys())
    assert len(latest) == 0 and not latest


def test_latest_pop_and_first() -> None:
    latest: Latest[str, int] = Latest()
    latest.put("a", 1)
    latest.put("b", 2)
    assert latest.first() == ("a", 1)
    assert latest.pop("a") == 1 and latest.pop("a") is None
    assert "b" in latest and latest.first() == ("b", 2)


def test_outbox_wakes_its_reader_and_hands_over_everything() -> None:
    outbox: Outbox[str, int] = Outbox()
    taken: list[dict[str, int]] = []
    reader = threading.Thread(target=lambda: taken.append(outbox.take(timeout=10)))
    reader.start()
    outbox.put("x", 1)
    reader.join(timeout=10)
    assert taken == [{"x": 1}]
    outbox.put("x", 2)
    outbox.put("x", 3)
    assert outbox.take(timeout=0) == {"x": 3} and outbox.replaced == 1
    assert outbox.take(timeout=0) == {}


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=100, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.015  # 1.5 tokens
    assert bucket.take() and not bucket.take()
    now[0] += 10.0  # a long pause saves up no more than the burst
    assert bucket.take(3) and not bucket.take(0.5)
    unlimited = TokenBucket(rate=0, burst=0)
    assert all(unlimited.take(100) for _ in range(10))


def test_workers_start_and_stop_together() -> None:
    workers = Workers()
    wake = threading.Event()
    ran: list[str] = []

    def loop(name: str) -> None:
        while not workers.stopping.is_set():
            wake.wait()
        ran.append(name)

    workers.start((lambda: loop("a"), "a"), (lambda: loop("b"), "b"))
    assert workers.running
    workers.stop(timeout=10, wake=(wake.set,))
    assert sorted(ran) == ["a", "b"] and not workers.running
    workers.start((lambda: ran.append("again"), "c"))  # a group starts again after a stop
    workers.join(timeout=10)
    assert ran[-1] == "again"
