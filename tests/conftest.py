"""Fixtures: fresh objects per test, and real processes that are always stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from bridge.config import Config, load_config
from bridge.hub import Hub
from bridge.net import lan_address
from bridge.tls import describe, make_certificate
from tests.browser import TEST_HOST, Pages, is_loopback, launch
from tests.helpers import BridgeProcess, Client, unavailable, write_config
from tests.jack import JackServer, MidiPeer, jack_available
from tests.osc_tools import OscDump, OscPeer


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return write_config(tmp_path)


@pytest.fixture
def config(config_file: Path) -> Config:
    return load_config(config_file)


@pytest.fixture
def hub(config: Config) -> Hub:
    return Hub(config.controls)


@pytest.fixture
def bridge_factory(tmp_path: Path) -> Iterator[Callable[..., BridgeProcess]]:
    """Start real bridge processes; every one is stopped after the test."""
    started: list[BridgeProcess] = []

    def start(config: Path | None = None, wait: bool = True, env: dict[str, str] | None = None) -> BridgeProcess:
        proc = BridgeProcess(config or write_config(tmp_path), env=env)
        started.append(proc)
        return proc.start(wait=wait)

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def server(bridge_factory: Callable[..., BridgeProcess]) -> BridgeProcess:
    return bridge_factory()


@pytest.fixture
def client_factory() -> Iterator[Callable[..., Any]]:
    """Socket.IO clients (``kind``: Client or another class with ``close()``, given ``extra`` arguments),
    all closed afterwards."""
    clients: list[Any] = []

    def connect(url: str, kind: Callable[..., Any] = Client, *extra: Any) -> Any:
        client = kind(url, *extra)
        clients.append(client)
        return client

    yield connect
    # websocket-client waits up to 3 s for each close handshake; close them side by side.
    closers = [threading.Thread(target=client.close) for client in clients]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join()


@pytest.fixture(scope="module")
def jack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JackServer]:
    """A JACK server of the test module's own; JACK_DEFAULT_SERVER points at it meanwhile."""
    reason = jack_available()
    if reason is not None:
        unavailable(reason)
    server = JackServer(tmp_path_factory.mktemp("jack"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JACK_DEFAULT_SERVER", server.name)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def peer(jack: JackServer) -> Iterator[MidiPeer]:
    """A MIDI device on the test module's JACK server, playing the controller."""
    device = MidiPeer()
    yield device
    device.close()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One self-signed certificate (cert, key) for the run: the HTTPS bridges keep it as theirs (``secure()``),
    and the test browsers accept it, and only it, by its public key."""
    folder = tmp_path_factory.mktemp("certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    # Named as the bridge's own would be (its LAN address too), or the bridge makes one of its own instead.
    make_certificate(cert, key, [TEST_HOST, *(lan for lan in [lan_address()] if lan)])
    return cert, key


@pytest.fixture(scope="module")
def browser(certificate: tuple[Path, Path]) -> Iterator[Browser]:
    spki = describe(*certificate).spki
    with sync_playwright() as playwright:
        chromium = launch(playwright, [f"--ignore-certificate-errors-spki-list={spki}"])
        yield chromium
        chromium.close()


@pytest.fixture
def pages(browser: Browser) -> Iterator[Pages]:
    """Fresh contexts per test; whatever a test does, no request may leave the machine."""
    opened = Pages(browser)
    yield opened
    opened.close()
    outside = [url for url in opened.requests if not is_loopback(url)]
    assert outside == [], f"requests beyond loopback: {outside}"


@pytest.fixture
def dump() -> Iterator[OscDump]:
    """liblo's oscdump on a free UDP port, stopped afterwards."""
    d = OscDump()
    yield d
    d.close()


@pytest.fixture
def peers() -> Iterator[Callable[[], OscPeer]]:
    """python-osc peers on free UDP ports, each closed afterwards."""
    made: list[OscPeer] = []

    def make() -> OscPeer:
        peer = OscPeer()
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()
