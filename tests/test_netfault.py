"""OSC targets and the network under them, each in private namespaces (``unshare``): a network
interface that goes away and comes back, a broadcast address, a slow link, a stock /etc/hosts.

``unshare -n``: a namespace whose only interface is its own loopback, so nothing here can reach,
or disturb, any real network; ``-m``: a mount namespace, so a file bound over /etc/hosts is the
namespace's alone. Each scenario is a module run there, which prints "ok" when all held.
"""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT


def run_inside(module: str, *namespaces: str) -> None:
    result = subprocess.run(
        ["unshare", "-n", *namespaces, sys.executable, "-m", module],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")


def test_osc_target_network_goes_away_and_comes_back() -> None:
    run_inside("tests.netns_target")


def test_osc_broadcast_target_heard_and_not_heard_back() -> None:
    run_inside("tests.netns_broadcast")  # the loopback network's broadcast address


def test_osc_targets_behind_a_slow_link_get_every_change() -> None:
    run_inside("tests.netns_slowlink")  # the loopback slowed by tc


def test_a_target_named_localhost_is_heard_on_ipv4() -> None:
    run_inside("tests.netns_localhost", "-m")  # Debian's stock /etc/hosts, bound over the namespace's


def test_a_tcp_desk_gone_without_a_word_is_seen_down_and_connected_again() -> None:
    run_inside("tests.netns_tcpdesk")  # its address taken off the namespace's loopback
