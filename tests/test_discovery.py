"""mDNS discovery, in a private network namespace so that no packet leaves the machine."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.config import load_config
from bridge.discovery import HTTP_TYPE, OSC_TYPE, OSCQUERY_TYPE, Service, addresses, services
from tests.helpers import ROOT, unavailable, write_config


def namespaces_unavailable() -> str | None:
    """Why a private network namespace cannot be made here, or None when it can."""
    for command in ("unshare", "ip"):
        if shutil.which(command) is None:
            return f"{command} is not installed (Debian packages util-linux, iproute2)"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0:
        return f"cannot make a network namespace (unshare -n: {probe.stderr.strip()}); run as root"
    return None


@pytest.mark.unit
def test_services_follow_the_config(tmp_path: Path) -> None:
    extra = '[osc]\nlisten = "0.0.0.0:9001"\n[oscquery]\nport = 5001\nhost = "127.0.0.1"\n'
    config = load_config(write_config(tmp_path, extra=extra))
    assert services(config, oscquery_port=5002) == [
        Service(HTTP_TYPE, "127.0.0.1", 5000, {"path": "/"}),
        Service(OSC_TYPE, "0.0.0.0", 9001),  # noqa: S104 - read from the config, nothing bound
        Service(OSCQUERY_TYPE, "127.0.0.1", 5002),
    ]
    assert services(load_config(write_config(tmp_path))) == [Service(HTTP_TYPE, "127.0.0.1", 5000, {"path": "/"})]
    assert addresses("127.0.0.1") == ["127.0.0.1"]
    assert addresses("localhost") == ["127.0.0.1"]


def test_bridge_is_found_over_mdns_in_a_private_namespace() -> None:
    reason = namespaces_unavailable()
    if reason is not None:
        unavailable(reason)
    result = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests.netns_mdns"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")
