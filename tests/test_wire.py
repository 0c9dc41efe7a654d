"""The WebSocket frame the fan-out writes to every browser: what gevent-websocket itself would send."""

from __future__ import annotations

import pytest
from geventwebsocket.websocket import Header

from bridge.web.wire import frame

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_frame_is_gevent_websockets_own_text_frame(size: int) -> None:
    text = "42" + "é" * (size // 2) + "x" * (size % 2)  # multi-byte characters: the length is in bytes
    payload = text.encode("utf-8")
    expected = bytes(Header.encode_header(True, 0x1, b"", len(payload), 0)) + payload
    assert frame(text) == expected
