"""Run inside a private network namespace (``unshare -n``): the bridge announces itself over mDNS.

The namespace's only interface is its own loopback, with multicast switched
on, so every mDNS packet stays inside it. A bridge with ``[discovery] mdns =
true`` is found by python-zeroconf's browser and by python-oscquery's, which
then reads its namespace; a bridge with discovery left off is not heard of.
Exits 0 when all held; prints what failed otherwise.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from zeroconf import IPVersion, ServiceBrowser, ServiceListener, Zeroconf

from tests.helpers import CONTROLS_TOML, BridgeProcess, free_port, wait_until, write_config

NAME = "Rig Test"
TYPES = ["_oscjson._tcp.local.", "_osc._udp.local.", "_http._tcp.local."]


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


class Seen(ServiceListener):
    """Every service name a browser has heard of, and which of them said goodbye."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.removed: set[str] = set()
        self._lock = threading.Lock()

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        with self._lock:
            self.names.add(name)
            self.removed.discard(name)

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.add_service(zc, type_, name)

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        with self._lock:
            self.removed.add(name)

    def found(self) -> set[str]:
        with self._lock:
            return self.names - self.removed


def bridge(folder: Path, mdns: bool) -> tuple[BridgeProcess, int, int]:
    osc_port, oq_port = free_port(socket.SOCK_DGRAM), free_port()
    extra = (
        f'[osc]\nlisten = "127.0.0.1:{osc_port}"\ntargets = []\n[oscquery]\nport = {oq_port}\n'
        f'[discovery]\nmdns = {"true" if mdns else "false"}\nname = "{NAME if mdns else "Silent"}"\n'
    )
    folder.mkdir()
    return BridgeProcess(write_config(folder, extra=extra, controls=CONTROLS_TOML)).start(), osc_port, oq_port


def main() -> int:
    ip("link", "set", "lo", "up")
    ip("link", "set", "lo", "multicast", "on")
    ip("route", "add", "224.0.0.0/4", "dev", "lo")
    folder = Path(tempfile.mkdtemp())
    silent, _, _ = bridge(folder / "silent", mdns=False)
    zeroconf = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    seen = Seen()
    browser = ServiceBrowser(zeroconf, TYPES, seen)
    proc, osc_port, oq_port = bridge(folder / "loud", mdns=True)
    try:
        wanted = {f"{NAME}.{kind}" for kind in TYPES}
        wait_until(lambda: wanted <= seen.found(), what=f"mDNS to announce {sorted(wanted)}")
        assert seen.found() == wanted, seen.found()  # the bridge with discovery off says nothing
        assert "discovery" not in silent.get_json("/healthz")["adapters"]

        ports = {}
        for kind in TYPES:
            info = zeroconf.get_service_info(kind, f"{NAME}.{kind}", timeout=5000)
            assert info is not None, kind
            assert info.parsed_addresses() == ["127.0.0.1"], info
            ports[kind] = info.port
            if kind == "_http._tcp.local.":
                assert info.properties == {b"path": b"/"}, info.properties
        assert ports == {TYPES[0]: oq_port, TYPES[1]: osc_port, TYPES[2]: proc.port}, ports
        health = wait_until(
            lambda: (h := proc.get_json("/healthz")["adapters"]["discovery"])["state"] == "advertising" and h,
            what="discovery to report advertising",
        )
        assert sorted(health["services"]) == sorted(wanted), health

        check_python_oscquery(osc_port)

        # The OSC port moved by a config reload: announced again with it (it kept the old one).
        moved = free_port(socket.SOCK_DGRAM)
        config = proc.config
        config.write_text(
            config.read_text(encoding="utf-8").replace(f"127.0.0.1:{osc_port}", f"127.0.0.1:{moved}"), encoding="utf-8"
        )

        def announced_osc_port() -> int | None:
            info = zeroconf.get_service_info(TYPES[1], f"{NAME}.{TYPES[1]}", timeout=1000)
            return None if info is None else info.port

        wait_until(lambda: announced_osc_port() == moved, what="the moved OSC port announced")

        proc.stop()  # goodbye packets: browsers forget us at once, not after the records' time to live
        wait_until(lambda: not seen.found(), what="the services to be withdrawn")
    finally:
        proc.stop()
        silent.stop()
        browser.cancel()
        zeroconf.close()
    print("ok")
    return 0


def check_python_oscquery(osc_port: int) -> None:
    """python-oscquery finds us by name over mDNS and reads the namespace: a peer we did not write."""
    from pythonoscquery.osc_query_browser import OSCQueryBrowser
    from pythonoscquery.osc_query_client import OSCQueryClient

    browser = OSCQueryBrowser()
    try:
        service = wait_until(lambda: browser.find_service_by_name(NAME), what="python-oscquery to find the bridge")
        client = OSCQueryClient(service)
        host = client.get_host_info()
        assert host is not None and host.name == NAME and host.osc_port == osc_port, host
        node = client.query_node("/slider1")
        assert node is not None and node.value == [25.0] and node.description == "Slider 1", node
    finally:
        browser.browser.cancel()
        browser.zc.close()


if __name__ == "__main__":
    sys.exit(main())
