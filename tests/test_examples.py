"""The example configs load, and each starts as a real bridge (on loopback ports) and serves its surface."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.config import load_config
from tests.helpers import ROOT, BridgeProcess, Client, free_port

EXAMPLES = sorted((ROOT / "config" / "examples").glob("*.toml"))


@pytest.mark.unit
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_loads(path: Path) -> None:
    config = load_config(path)
    assert config.controls and config.osc is not None


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_starts_and_serves_its_page(
    path: Path, tmp_path: Path, bridge_factory: Callable[..., BridgeProcess], client_factory: Callable[..., Client]
) -> None:
    # As it ships, but with the OSC ports and the desk on loopback, and no key to type.
    text = path.read_text(encoding="utf-8")
    text = text.replace('"0.0.0.0:9001"', f'"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"')
    text = re.sub(r'address = "[0-9.]+:(\d+)"', lambda m: f'address = "127.0.0.1:{free_port()}"', text)
    text = re.sub(r'^key = "auto".*$', "", text, flags=re.MULTILINE)
    local = tmp_path / path.name
    local.write_text(text, encoding="utf-8")
    proc = bridge_factory(local)
    snapshot = client_factory(proc.url).wait_event("snapshot")["values"]
    config = load_config(local)
    assert list(snapshot) == [c.id for c in config.controls]
    page = proc.get_text("/")
    assert all(f'id="{c.id}"' in page for c in config.controls)
