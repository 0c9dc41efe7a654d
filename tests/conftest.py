"""Fixtures: fresh objects per test, and real processes that are always stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.config import Config, load_config
from bridge.hub import Hub
from tests.helpers import BridgeProcess, Client, write_config


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
def client_factory() -> Iterator[Callable[[str], Client]]:
    clients: list[Client] = []

    def connect(url: str) -> Client:
        client = Client(url)
        clients.append(client)
        return client

    yield connect
    # websocket-client waits up to 3 s for each close handshake; close them side by side.
    closers = [threading.Thread(target=client.close) for client in clients]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join()
