"""Run inside a private network namespace (``unshare -n``): a TCP desk gone without a word.

Only the namespace's own loopback exists; the desk's address, 10.99.0.3, is
added to it and taken away, as a desk whose power is cut or whose cable is
pulled: nothing answers, nothing says no. The bridge must say the desk is
down (the page's chip, ``/healthz``) and connect again once it is back.
Before, TCP retried for about 15 minutes, "connected" all the while, every
press going nowhere.

Exits 0 when all held; prints what failed otherwise.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from tests.console_tools import TcpConsole
from tests.helpers import BridgeProcess, wait_until, write_config

ADDRESS = "10.99.0.3"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


def state(proc: BridgeProcess) -> str:
    return str(proc.get_json("/healthz")["adapters"]["osc"]["targets"][0]["state"])


def main() -> int:
    ip("link", "set", "lo", "up")
    ip("addr", "add", f"{ADDRESS}/32", "dev", "lo")
    desk = TcpConsole("slip", host=ADDRESS).start()
    folder = Path(tempfile.mkdtemp())
    osc = (
        f'[osc]\nlisten = "127.0.0.1:0"\n[[osc.targets]]\naddress = "{ADDRESS}:{desk.port}"\ntransport = "tcp"\n'
        'keepalive = { message = ["/eos/ping"], every = 1.0 }\n'
    )
    proc = BridgeProcess(write_config(folder, extra=osc)).start()
    try:
        desk.wait_connected()
        wait_until(lambda: state(proc) == "connected", what="connected")
        ip("addr", "del", f"{ADDRESS}/32", "dev", "lo")  # the desk's power is cut
        wait_until(lambda: state(proc) != "connected", timeout=30, what="the desk seen gone")
        assert "took nothing for 10 s; connection dropped" in proc.output(), proc.output()

        ip("addr", "add", f"{ADDRESS}/32", "dev", "lo")  # and it is back
        desk.stop()
        back = TcpConsole("slip", port=desk.port, host=ADDRESS).start()
        back.wait_connected()
        wait_until(lambda: state(proc) == "connected", what="connected again")
        back.wait_for("/eos/ping", [])
        back.stop()
    finally:
        proc.stop()
        desk.stop()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
