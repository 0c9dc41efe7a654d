"""HTTPS: the certificate made once and kept, its fingerprint in the log, https:// join URLs, wss, Secure cookies."""

from __future__ import annotations

import http.client
import io
import re
import shutil
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import segno

from bridge.tls import describe
from tests.helpers import BridgeProcess, Client, tls_context, write_config

Start = Callable[..., BridgeProcess]


def auto(folder: Path, extra: str = "") -> Path:
    return write_config(folder, extra='tls = "auto"\n' + extra)


def test_auto_makes_a_certificate_once_logs_its_fingerprint_and_keeps_it(
    tmp_path: Path, bridge_factory: Start, client_factory: Callable[..., Client]
) -> None:
    config = auto(tmp_path)
    cert, key = tmp_path / "state.cert.pem", tmp_path / "state.key.pem"
    assert not cert.exists()
    proc = bridge_factory(config)
    assert proc.url.startswith("https://")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600  # the key is its owner's alone
    served = describe(cert, key)
    log = proc.output()
    assert f"SHA-256 fingerprint {served.fingerprint}" in log
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", served.fingerprint)
    assert f"open https://127.0.0.1:{proc.port}/" in log
    assert "made a self-signed certificate" in log
    # The python client checks the certificate (127.0.0.1 is in it) and talks over wss.
    client = client_factory(proc.url)
    client.wait_event("snapshot")
    assert client.sio.transport() == "websocket"
    first = cert.read_bytes(), key.read_bytes()

    proc.stop()
    proc.start()  # the same port, the same log file
    assert (cert.read_bytes(), key.read_bytes()) == first
    log = proc.output()
    assert log.count("made a self-signed certificate") == 1
    assert log.count(f"SHA-256 fingerprint {served.fingerprint}") == 2
    client.wait_event("snapshot", lambda _: len(client.of("snapshot")) >= 2)  # reconnected over TLS


def test_join_url_and_qr_code_are_https(tmp_path: Path, bridge_factory: Start, certificate: tuple[Path, Path]) -> None:
    proc = bridge_factory(auto(tmp_path))
    url = proc.get_json("/join")["url"]
    assert url.startswith("https://") and url.endswith(f":{proc.port}/")
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="svg", scale=6, border=2, dark="#000", light="#fff", xmldecl=False)
    assert proc.get_text("/qr.svg") == buffer.getvalue().decode()  # the QR code holds exactly that URL


def test_plain_http_on_the_https_port_is_sent_to_https(tmp_path: Path, bridge_factory: Start) -> None:
    proc = bridge_factory(auto(tmp_path))
    with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as sock:
        sock.sendall(f"GET /?view=x HTTP/1.1\r\nHost: 127.0.0.1:{proc.port}\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    head = answer.decode("latin-1").split("\r\n")
    assert head[0] == "HTTP/1.1 308 Permanent Redirect"
    assert f"Location: https://127.0.0.1:{proc.port}/?view=x" in head
    assert proc.get_json("/healthz")["status"] == "ok"  # still serving, and nothing alarming logged
    assert "Traceback" not in proc.output() and "SSLError" not in proc.output()


def key_cookie(proc: BridgeProcess) -> str:
    host = ("127.0.0.1", proc.port)
    context = tls_context(proc.url)
    conn = (
        http.client.HTTPSConnection(*host, timeout=5, context=context)
        if context
        else http.client.HTTPConnection(*host, timeout=5)
    )
    try:
        conn.request("GET", "/?key=stage-key-1")
        response = conn.getresponse()
        assert response.status == 303
        return str(response.getheader("Set-Cookie"))
    finally:
        conn.close()


def test_the_key_cookie_is_secure_under_https_only(tmp_path: Path, bridge_factory: Start) -> None:
    (tmp_path / "plain").mkdir()
    plain = bridge_factory(write_config(tmp_path / "plain", extra='key = "stage-key-1"'))
    secure = bridge_factory(auto(tmp_path, 'key = "stage-key-1"'))
    assert "Secure" not in key_cookie(plain)
    cookie = key_cookie(secure)
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_certificate_files_named_in_the_config_are_served(
    tmp_path: Path, bridge_factory: Start, client_factory: Callable[..., Client], certificate: tuple[Path, Path]
) -> None:
    (tmp_path / "certs").mkdir()
    shutil.copyfile(certificate[0], tmp_path / "certs" / "show.pem")
    shutil.copyfile(certificate[1], tmp_path / "certs" / "show.key")
    config = write_config(tmp_path, extra='tls = { cert = "certs/show.pem", key = "certs/show.key" }')
    proc = bridge_factory(config)
    assert f"SHA-256 fingerprint {describe(*certificate).fingerprint}" in proc.output()
    assert "made a self-signed" not in proc.output()
    client = client_factory(proc.url)
    client.wait_event("snapshot")
    proc.put_values(slider1=33)
    client.wait_value("slider1", 33)


def test_a_certificate_that_is_not_one_stops_start_up_with_one_line(tmp_path: Path, bridge_factory: Start) -> None:
    (tmp_path / "c.pem").write_text("not a certificate\n")
    (tmp_path / "k.pem").write_text("not a key\n")
    proc = bridge_factory(write_config(tmp_path, extra='tls = { cert = "c.pem", key = "k.pem" }'), wait=False)
    assert proc.proc is not None and proc.proc.wait(timeout=60) == 1
    errors = [line for line in proc.output().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: cannot read the certificate {tmp_path / 'c.pem'}")


def test_a_kept_certificate_that_does_not_name_the_bridges_address_is_made_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The certificate kept for "auto" was used again whatever the bridge's address had become (another venue's
    LAN, a new [server] host): a phone that trusted it failed with "not valid for 192.168.77.5" (a reviewer's
    case). It is made again, naming the new address, and the log says why."""
    from cryptography import x509

    from bridge.config.sections import TlsConfig
    from bridge.tls import prepare

    config = TlsConfig(tmp_path / "state.cert.pem", tmp_path / "state.key.pem", True)
    first = prepare(config, ["127.0.0.1", "10.9.8.7"])
    assert prepare(config, ["10.9.8.7"]).fingerprint == first.fingerprint  # kept: it names that one
    moved = prepare(config, ["192.168.77.5"])
    assert moved.fingerprint != first.fingerprint
    assert "does not name 192.168.77.5; making a new one" in caplog.text
    names = x509.load_pem_x509_certificate(config.cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert "192.168.77.5" in {str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)}
    scoped = prepare(config, ["fe80::1%lo"])  # (a link-local host with its zone: made once, then kept)
    assert prepare(config, ["fe80::1%lo"]).fingerprint == scoped.fingerprint
