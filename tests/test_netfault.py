"""A target's network interface goes away and comes back, in a private network namespace."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT


def test_osc_target_network_goes_away_and_comes_back() -> None:
    # unshare -n: a namespace whose only interface is its own loopback, so
    # nothing here can reach, or disturb, any real network.
    result = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests.netns_target"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")


def test_osc_broadcast_target_heard_and_not_heard_back() -> None:
    # unshare -n: the namespace's loopback network and its broadcast address (tests/netns_broadcast.py).
    result = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests.netns_broadcast"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")


def test_osc_targets_behind_a_slow_link_get_every_change() -> None:
    # unshare -n: only the namespace's loopback, slowed by tc (tests/netns_slowlink.py).
    result = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests.netns_slowlink"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")
