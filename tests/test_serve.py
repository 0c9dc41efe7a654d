"""The HTTP server's own parts: WebSocket unmasking at C speed, a port bound first."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import BridgeError
from bridge.net import listen
from bridge.serve import speed_up_gevent_websocket, xor_mask

pytestmark = pytest.mark.unit


def byte_by_byte(payload: bytes, mask: bytes) -> bytes:
    """RFC 6455, 5.3, as written there: octet i XOR mask octet i mod 4."""
    return bytes(octet ^ mask[i % 4] for i, octet in enumerate(payload))


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=3000), mask=st.binary(min_size=4, max_size=4))
def test_xor_mask_is_the_rfc_masking(payload: bytes, mask: bytes) -> None:
    assert bytes(xor_mask(payload, mask)) == byte_by_byte(payload, mask)
    assert bytes(xor_mask(xor_mask(payload, mask), mask)) == payload  # the same operation undoes it


def test_gevent_websocket_unmasks_with_it() -> None:
    from geventwebsocket.websocket import Header

    speed_up_gevent_websocket()
    frame = b'42["value changed",{"who":"slider1","data":40}]'
    header = Header(fin=1, opcode=1, length=len(frame))
    header.mask = b"\x01\x80\x7f\xff"
    masked = byte_by_byte(frame, header.mask)
    assert bytes(header.unmask_payload(masked)) == frame


def test_listen_sets_nodelay_and_a_taken_port_says_what_to_change() -> None:
    sock = listen("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        port = sock.getsockname()[1]
        with pytest.raises(BridgeError, match=rf"127.0.0.1:{port}: .* \(change \[server\] port or use --port\)"):
            listen("127.0.0.1", port)
    finally:
        sock.close()
