"""Run inside private network and mount namespaces (``unshare -nm``): a target named ``localhost``.

The namespace's ``/etc/hosts`` is Debian's and Ubuntu's stock one, where
``localhost`` is both 127.0.0.1 and ::1, and the C library lists ::1 first.
liblo's ``oscdump`` listens on IPv4, as most OSC software does. Before, the
bridge took the first address, ::1, and the target stayed "unreachable"
(refused) with nothing heard; now a name with both is sent to on IPv4.

Exits 0 when all held; prints what failed otherwise.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.helpers import BridgeProcess, free_port, write_config
from tests.osc_tools import OscDump

HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def main() -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    folder = Path(tempfile.mkdtemp())
    hosts = folder / "hosts"
    hosts.write_text(HOSTS, encoding="utf-8")
    subprocess.run(["mount", "--bind", str(hosts), "/etc/hosts"], check=True)  # this namespace's alone
    first = socket.getaddrinfo("localhost", 9, type=socket.SOCK_DGRAM)[0][4][0]
    print("the C library lists first:", first)
    dump = OscDump()
    listen = free_port(socket.SOCK_DGRAM)
    extra = f'[osc]\nlisten = "0.0.0.0:{listen}"\ntargets = ["localhost:{dump.port}"]\n'
    proc = BridgeProcess(write_config(folder, extra=extra)).start()
    try:
        proc.put_json("/api/values/slider1", {"value": 3})
        dump.wait_for("/slider1 f 3.000000")
        (target,) = proc.get_json("/healthz")["adapters"]["osc"]["targets"]
        assert target["ip"] == "127.0.0.1" and target["state"] == "ok", target
    finally:
        proc.stop()
        dump.close()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
