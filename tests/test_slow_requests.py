"""Requests that trickle in: a head, a body or a TLS handshake sent a byte at a time is let go once the request
timeout has passed, however short the pauses between bytes (``STAGE_BRIDGE_REQUEST_TIMEOUT``: 1 s here, 15 s by
default). Each held its connection for good before (the head got its deadline at an earlier stop, tested here
for the first time: a test of 15 s was too long for the suite)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import BridgeProcess, write_config

Start = Callable[..., BridgeProcess]
QUICK = {"STAGE_BRIDGE_REQUEST_TIMEOUT": "1"}
#: A pause between two bytes, far below any per-read timeout: only a deadline on the whole can end the trickle.
GAP = 0.1


def trickle(port: int, start: bytes, rest: bytes) -> tuple[int, bytes]:
    """Send ``start``, then ``rest`` a byte at a time, each after waiting up to GAP for the server to answer;
    how many bytes of ``rest`` went out before it answered or closed, and what it sent (b"" when it closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(start)
        sock.settimeout(GAP)
        for sent in range(len(rest)):
            try:
                return sent, sock.recv(65536)
            except TimeoutError:
                pass
            try:
                sock.sendall(rest[sent : sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                return sent, b""
    return len(rest), b"(everything sent)"


def client_hello() -> bytes:
    """The first flight of a real TLS client (Python's ssl, as a browser would open), as bytes."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def put_head(length: int, path: str = "/api/values/slider1", method: str = "PUT") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_a_head_a_body_and_a_polling_body_sent_a_byte_at_a_time_are_let_go_and_nothing_is_applied(
    tmp_path: Path, bridge_factory: Start
) -> None:
    proc = bridge_factory(write_config(tmp_path), env=QUICK)
    before = proc.get_json("/api/values")["slider1"]

    # The head: a header line that never ends.
    sent, answer = trickle(proc.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", b"a" * 400)
    assert sent < 400 and b"200 OK" not in answer, (sent, answer)

    # A value's body: {"value": 7} held back a byte at a time.
    body = b'{"value": 7' + b" " * 400 + b"}"
    sent, answer = trickle(proc.port, put_head(len(body)) + body[:5], body[5:])
    assert sent < len(body) - 5, sent
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer
    assert proc.get_json("/api/values")["slider1"] == before  # nothing half-read was applied

    # A long-polling POST, checked before Engine.IO reads it (bridge.web.polling).
    polling = b"4" + b"2" * 400
    head = put_head(len(polling), "/socket.io/?EIO=4&transport=polling&sid=x", "POST")
    sent, answer = trickle(proc.port, head + polling[:1], polling[1:])
    assert sent < len(polling) - 1 and (answer == b"" or answer.startswith(b"HTTP/1.1 400")), (sent, answer)

    assert proc.get_json("/healthz")["status"] == "ok"
    log = proc.output()
    assert "request body took over 1 s" in log and "Traceback" not in log


def test_a_tls_handshake_sent_a_byte_at_a_time_is_let_go(tmp_path: Path, bridge_factory: Start) -> None:
    proc = bridge_factory(write_config(tmp_path, extra='tls = "auto"\n'), env=QUICK)
    hello = client_hello()
    sent, answer = trickle(proc.port, hello[:1], hello[1:])
    assert sent < len(hello) - 1 and answer == b"", (sent, len(hello), answer[:40])
    assert proc.get_json("/healthz")["status"] == "ok"
    assert "Traceback" not in proc.output()


def test_a_request_timeout_that_is_no_number_of_seconds_is_said_and_15_used(
    tmp_path: Path, bridge_factory: Start
) -> None:
    proc = bridge_factory(write_config(tmp_path), env={"STAGE_BRIDGE_REQUEST_TIMEOUT": "soon"})
    assert "STAGE_BRIDGE_REQUEST_TIMEOUT='soon' is not a number of seconds above 0; 15 is used" in proc.output()
