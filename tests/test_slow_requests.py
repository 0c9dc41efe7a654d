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


def trickle(port: int, start: bytes, rest: bytes, piece: int = 1) -> tuple[int, bytes]:
    """Send ``start``, then ``rest`` ``piece`` bytes at a time, each after waiting up to GAP for the server;
    how many bytes of ``rest`` went out before it closed the connection, and all it sent meanwhile."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(start)
        sock.settimeout(GAP)
        for sent in range(0, len(rest), piece):
            try:
                data = sock.recv(65536)
                if not data:
                    return sent, got  # closed
                got += data
            except TimeoutError:
                pass
            except ConnectionResetError:
                return sent, got
            try:
                sock.sendall(rest[sent : sent + piece])
            except (BrokenPipeError, ConnectionResetError):
                return sent, got
        sock.settimeout(5)  # everything went: what the server says to the whole request
        try:
            while data := sock.recv(65536):
                got += data
                if b"\r\n\r\n" in got and len(got) >= len(got.split(b"\r\n\r\n")[0]) + 4:
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    return len(rest), got


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

    # A value's body: {"value": 7} held back a byte at a time; the same with an Upgrade header, which
    # gevent-websocket serves as plain HTTP when the rest of a handshake is missing.
    body = b'{"value": 7' + b" " * 400 + b"}"
    for extra in (b"", b"Upgrade: websocket\r\n"):
        head = put_head(len(body)).replace(b"\r\n\r\n", b"\r\n" + extra + b"\r\n")
        sent, answer = trickle(proc.port, head + body[:5], body[5:])
        assert sent < len(body) - 5 and (answer == b"" or answer.startswith(b"HTTP/1.1 400")), (extra, sent, answer)
    assert proc.get_json("/api/values")["slider1"] == before  # nothing half-read was applied

    # Bodies the application answers without reading (a 404, a 413): what is left is not waited for either.
    for head in (put_head(100_000, "/nothing-here", "POST"), put_head(50_000_000)):
        sent, answer = trickle(proc.port, head, b" " * 400)
        assert sent < 400 and answer.split(b" ")[1] in (b"404", b"413"), (head, sent, answer)

    # A long-polling POST, checked before Engine.IO reads it (bridge.web.polling).
    polling = b"4" + b"2" * 400
    head = put_head(len(polling), "/socket.io/?EIO=4&transport=polling&sid=x", "POST")
    sent, answer = trickle(proc.port, head + polling[:1], polling[1:])
    assert sent < len(polling) - 1 and (answer == b"" or answer.startswith(b"HTTP/1.1 400")), (sent, answer)

    assert proc.get_json("/healthz")["status"] == "ok"
    log = proc.output()
    assert "its request body came slower than its 1 s allow" in log and "Traceback" not in log


def test_a_large_body_that_keeps_coming_gets_the_time_it_needs(tmp_path: Path, bridge_factory: Start) -> None:
    """An import of scenes (up to 16 MB) on a slow link takes longer than the request timeout: every 8 KB that
    comes buys a second more. 200 KB here, in 20 KB pieces, for a timeout of 1 s."""
    proc = bridge_factory(write_config(tmp_path), env=QUICK)
    status, _ = proc.request_json("PUT", "/api/scenes/intro")
    assert status == 200, status
    exported = proc.get_text("/api/scenes/export").encode()
    body = exported + b" " * (200_000 - len(exported))
    head = put_head(len(body), "/api/scenes/import", "POST").replace(b"HTTP/1.1", b"HTTP/1.0")
    sent, answer = trickle(proc.port, head, body, piece=20_000)
    assert sent == len(body) and answer.startswith(b"HTTP/1.1 200"), (sent, answer[:200])
    assert "slower than" not in proc.output()


def test_a_tls_handshake_sent_a_byte_at_a_time_is_let_go(tmp_path: Path, bridge_factory: Start) -> None:
    proc = bridge_factory(write_config(tmp_path, extra='tls = "auto"\n'), env=QUICK)
    hello = client_hello()
    sent, answer = trickle(proc.port, hello[:1], hello[1:])
    assert sent < len(hello) - 1 and answer == b"", (sent, len(hello), answer[:40])
    assert proc.get_json("/healthz")["status"] == "ok"
    assert "Traceback" not in proc.output()


def test_a_body_at_a_slow_but_steady_rate_is_credited_as_it_comes(tmp_path: Path, bridge_factory: Start) -> None:
    """4 KB every 0.1 s (40 KB/s, five times the 8 KB/s that buys time) for 2.5 s, with a timeout of 1 s: each
    8 KB buys its second as it comes (the first version credited 64 KB pieces, and refused it at 1 s)."""
    proc = bridge_factory(write_config(tmp_path), env=QUICK)
    exported = proc.get_text("/api/scenes/export").encode()
    body = exported + b" " * (100_000 - len(exported))
    head = put_head(len(body), "/api/scenes/import", "POST").replace(b"HTTP/1.1", b"HTTP/1.0")
    sent, answer = trickle(proc.port, head, body, piece=4_000)
    assert sent == len(body) and answer.startswith(b"HTTP/1.1 200"), (sent, answer[:200])


def test_an_unread_body_is_not_drained_past_a_limit_nor_invited_after_the_answer(
    tmp_path: Path, bridge_factory: Start
) -> None:
    proc = bridge_factory(write_config(tmp_path))
    # 10 MB refused at once (413): the connection closes after 64 KB rather than reading all of it.
    sent, answer = trickle(proc.port, put_head(10_000_000), b" " * 10_000_000, piece=65_536)
    assert sent < 10_000_000 and answer.startswith(b"HTTP/1.1 413"), (sent, answer[:100])
    # A client waiting for "100 Continue" before it sends its body: the 404 is the answer, and no 100 after it
    # (which would invite the body; gevent's own discard is careful of that, the first TimedBody was not).
    head = put_head(10, "/nothing-here", "POST").replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
        sock.sendall(head)
        got = b""
        while data := sock.recv(65536):  # until the server closes
            got += data
    assert got.startswith(b"HTTP/1.1 404") and b"100 Continue" not in got, got


@pytest.mark.parametrize("value", ["soon", "1e9", "0.001", "nan"])
def test_a_request_timeout_that_is_no_number_of_seconds_is_said_and_15_used(
    tmp_path: Path, bridge_factory: Start, value: str
) -> None:
    proc = bridge_factory(write_config(tmp_path), env={"STAGE_BRIDGE_REQUEST_TIMEOUT": value})
    said = f"STAGE_BRIDGE_REQUEST_TIMEOUT={value!r} is not a number of seconds from 1 to 3600; 15 is used"
    assert said in proc.output()
