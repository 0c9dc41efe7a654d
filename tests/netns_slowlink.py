"""Run inside a private network namespace (``unshare -n``): OSC targets behind a slow link.

Only the namespace's own loopback exists, slowed to 2 Mbit/s by a token
bucket (``tc qdisc ... tbf``), as a poor stage Wi-Fi is: a burst of long
texts fills the sending socket's buffer. Every target must still get every
change, stay "ok", and a ``/bridge/sync`` must send every value. Before,
the listening socket (which sends to the targets, and never blocks) said
"Resource temporarily unavailable": each target was marked unreachable and
about 60 % of the changes were lost, and the sync stopped after a third.

Exits 0 when all held; prints what failed otherwise.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from tests.helpers import BridgeProcess, free_port, wait_until, write_config
from tests.osc_tools import OscPeer

TEXTS = 300
SHOW = f"""
[[repeat]]
n = {TEXTS}

[[repeat.controls]]
id = "t{{n}}"
type = "text"
osc = "/t/{{n}}"
"""


def main() -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(
        ["tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "2mbit", "burst", "128k", "limit", "1000k"],
        check=True,
    )
    desks = [OscPeer() for _ in range(3)]
    folder = Path(tempfile.mkdtemp())
    listen = free_port(socket.SOCK_DGRAM)
    aimed = ", ".join(f'"127.0.0.1:{desk.port}"' for desk in desks)
    extra = f'[osc]\nlisten = "127.0.0.1:{listen}"\ntargets = [{aimed}]\n'
    proc = BridgeProcess(write_config(folder, extra=extra, controls=SHOW)).start()
    sender = OscPeer()
    bursts = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # blocking: the link is slow for it too
    try:
        for first in range(1, TEXTS + 1, 50):  # six bundles of 50 texts of 1,000 characters
            bundle = OscBundleBuilder(IMMEDIATELY)
            for n in range(first, first + 50):
                message = OscMessageBuilder(address=f"/t/{n}")
                message.add_arg(f"{n:04}" + "x" * 996)
                bundle.add_content(message.build())
            bursts.sendto(bundle.build().dgram, ("127.0.0.1", listen))
        for desk in desks:
            wait_until(lambda d=desk: len(d.received) >= TEXTS, what=f"every text at the desk on {desk.port}")
            assert sorted(address for address, _ in desk.received) == sorted(f"/t/{n}" for n in range(1, 301))
        targets = proc.get_json("/healthz")["adapters"]["osc"]["targets"]
        assert all(t["state"] == "ok" and t["errors"] == 0 and t["sent"] == TEXTS for t in targets), targets

        sender.send(listen, "/bridge/sync")  # every value back to the sender, through the same link
        wait_until(lambda: len(sender.received) >= TEXTS, what="the whole sync")
        assert len({address for address, _ in sender.received}) == TEXTS
        assert "sync to" not in proc.output(), proc.output()
    finally:
        proc.stop()
        bursts.close()
        sender.close()
        for desk in desks:
            desk.close()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
