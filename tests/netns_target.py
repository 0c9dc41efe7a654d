"""Run inside a private network namespace (``unshare -n``): an OSC target's network goes away and comes back.

Only the namespace's own loopback exists: the target's address, 10.99.0.2, is
added to it, taken away (the route vanishes: "Network is unreachable") and
added again, while a second target on 127.0.0.1 must hear every change.
Exits 0 when all held; prints what failed otherwise.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.helpers import BridgeProcess, free_port, wait_until, write_config
from tests.osc_tools import OscPeer

ADDRESS = "10.99.0.2"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


def main() -> int:
    ip("link", "set", "lo", "up")
    ip("addr", "add", f"{ADDRESS}/32", "dev", "lo")
    far, near = OscPeer(ADDRESS), OscPeer()
    folder = Path(tempfile.mkdtemp())
    osc_port = free_port(socket.SOCK_DGRAM)
    extra = f'[osc]\nlisten = "127.0.0.1:{osc_port}"\ntargets = ["{ADDRESS}:{far.port}", "127.0.0.1:{near.port}"]\n'
    proc = BridgeProcess(write_config(folder, extra=extra)).start()
    try:
        proc.put_json("/api/values/slider1", {"value": 1})
        far.wait_for("/slider1", lambda a: a == [1.0])
        near.wait_for("/slider1", lambda a: a == [1.0])

        ip("addr", "del", f"{ADDRESS}/32", "dev", "lo")  # the target's network goes away
        for value in (2, 3):
            proc.put_json("/api/values/slider1", {"value": value})
            near.wait_for("/slider1", lambda a, v=value: a == [float(v)])  # the other target is undisturbed
        targets = {t["address"]: t for t in proc.get_json("/healthz")["adapters"]["osc"]["targets"]}
        assert targets[f"{ADDRESS}:{far.port}"]["state"] == "unreachable", targets
        assert "unreachable" in proc.output()

        ip("addr", "add", f"{ADDRESS}/32", "dev", "lo")  # and comes back
        proc.put_json("/api/values/slider1", {"value": 4})
        far.wait_for("/slider1", lambda a: a == [4.0])  # retried: it hears changes again
        near.wait_for("/slider1", lambda a: a == [4.0])
        assert proc.output().count(f"OSC target {ADDRESS}:{far.port} ({ADDRESS}) unreachable") == 1
        wait_until(lambda: proc.get_json("/api/values")["slider1"] == 4, what="the bridge still serving")
    finally:
        proc.stop()
        far.close()
        near.close()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
