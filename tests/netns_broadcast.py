"""Run inside a private network namespace (``unshare -n``): OSC targets at a broadcast address.

Only the namespace's own loopback exists; its network, 127.0.0.0/8, has a
broadcast address, 127.255.255.255, and a broadcast there reaches every
socket of the namespace bound to its port and nothing beyond it. liblo's
``oscdump`` listens on all addresses, as a phone on the stage Wi-Fi would.

- A broadcast target is heard (before, the kernel refused the send without
  ``SO_BROADCAST``: "Permission denied", and the target stayed unreachable).
- A bridge whose broadcast reaches its own listening port (``listen`` and the
  target on the same port) hears its own message: it must drop it. Before, a
  GO pressed once fired for ever, the bridge re-broadcasting what it heard.

Exits 0 when all held; prints what failed otherwise.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.helpers import BridgeProcess, Client, free_port, wait_until, write_config
from tests.osc_tools import OscDump, OscPeer
from tests.test_loops import SHOW  # a level, a GO and a marker

BROADCAST = "127.255.255.255"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


def network() -> None:
    ip("link", "set", "lo", "up")


def osc_health(proc: BridgeProcess) -> dict:
    return proc.get_json("/healthz")["adapters"]["osc"]


def heard_by_a_phone() -> None:
    """A broadcast target: every listener on the network hears the changes."""
    phone = OscDump()
    folder = Path(tempfile.mkdtemp())
    listen = free_port(socket.SOCK_DGRAM)
    extra = f'[osc]\nlisten = "0.0.0.0:{listen}"\ntargets = ["{BROADCAST}:{phone.port}"]\n'
    proc = BridgeProcess(write_config(folder, extra=extra, controls=SHOW)).start()
    try:
        proc.put_json("/api/values/marker", {"value": 7})
        phone.wait_for("/marker f 7.000000")
        (target,) = osc_health(proc)["targets"]
        assert target["state"] == "ok" and target["broadcast"] is True, target
        assert f"OSC target {BROADCAST}:{phone.port} is a broadcast address" in proc.output(), proc.output()
        assert "Permission denied" not in proc.output(), proc.output()
    finally:
        proc.stop()
        phone.close()


def its_own_broadcast_dropped() -> None:
    """The bridge's broadcast comes back to its own listening port: a GO pressed once fires once."""
    desk = OscPeer()  # a second target, on loopback: counts what the bridge sends
    folder = Path(tempfile.mkdtemp())
    listen = free_port(socket.SOCK_DGRAM)
    extra = f'[osc]\nlisten = "0.0.0.0:{listen}"\ntargets = ["{BROADCAST}:{listen}", "127.0.0.1:{desk.port}"]\n'
    proc = BridgeProcess(write_config(folder, extra=extra, controls=SHOW)).start()
    page = Client(proc.url)
    try:
        page.send("go", 1)
        page.send("go", 0)
        wait_until(lambda: osc_health(proc)["echoes"] >= 1, what="its own broadcast heard and dropped")
        page.send("marker", 50)  # after the GO's broadcast came back
        desk.wait_for("/marker", lambda a: a == [50.0])
        wait_until(lambda: osc_health(proc)["echoes"] >= 2, what="the marker's broadcast heard and dropped")
        assert desk.got("/go") == [[1]], desk.got("/go")
        health = osc_health(proc)
        assert health["received"] == health["echoes"] == 2, health  # the GO and the marker, no more
    finally:
        page.close()
        proc.stop()
        desk.close()


def main() -> int:
    network()
    heard_by_a_phone()
    its_own_broadcast_dropped()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
