"""The WebSocket frame the fan-out writes to every browser (what gevent-websocket itself would send),
and how far a browser has read, told by its pongs."""

from __future__ import annotations

import pytest
from geventwebsocket.websocket import Header

from bridge.web.wire import EAGER_FOR, LAG_LIMIT, PROBE_EVERY, Reading, frame

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_frame_is_gevent_websockets_own_text_frame(size: int) -> None:
    text = "42" + "é" * (size // 2) + "x" * (size % 2)  # multi-byte characters: the length is in bytes
    payload = text.encode("utf-8")
    expected = bytes(Header.encode_header(True, 0x1, b"", len(payload), 0)) + payload
    assert frame(text) == expected


def test_a_browser_far_away_is_behind_only_when_it_reads_later_than_its_round_trip() -> None:
    """A phone 0.15 s away on the network answers every ping 0.15 s late, reading all the while:
    only a lag beyond its quickest answer, by more than LAG_LIMIT, holds it back."""
    reading = Reading()
    reading.pinged(10.0)
    assert not reading.unread(10.0 + LAG_LIMIT / 2)
    reading.answered(10.15)  # its first answer, and its quickest so far
    assert reading.best == pytest.approx(0.15)
    reading.pinged(20.0)
    assert not reading.unread(20.0 + 0.15 + LAG_LIMIT * 0.9)  # late by its trip alone: reading
    assert reading.unread(20.0 + 0.15 + LAG_LIMIT * 1.1)  # later still: behind
    reading.answered(20.5)
    assert reading.best == pytest.approx(0.15)  # a slow answer leaves the quickest as it was


def test_pings_follow_every_frame_for_a_while_once_a_browser_was_behind() -> None:
    reading = Reading()
    reading.since_probe = 0
    assert [reading.due(1.0) for _ in range(PROBE_EVERY)] == [False] * (PROBE_EVERY - 1) + [True]
    reading.pinged(1.0)
    assert not reading.due(1.0)  # never while one is unanswered
    assert reading.unread(1.0 + LAG_LIMIT * 1.1)
    reading.answered(1.2)
    assert reading.due(1.3)  # eager: a ping after every frame
    assert not reading.due(1.0 + LAG_LIMIT * 1.1 + EAGER_FOR + 0.1)  # and then every PROBE_EVERY again
