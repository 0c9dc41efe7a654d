"""Zero-config discovery: the bridge announces itself over mDNS (Bonjour, Avahi).

With ``[discovery] mdns = true``, python-zeroconf advertises, under the
config's name:

- ``_oscjson._tcp``: the OSCQuery server, which OSCQuery clients look for;
- ``_osc._udp``: the OSC input port;
- ``_http._tcp``: the page, for browsers and apps that list web services.

Off by default: mDNS sends multicast on every interface the bridge serves
on, which a show network's administrator may not want. Registration probes
the network for a second or two, so it runs on a thread of its own and never
delays the start; if it fails, the bridge runs on and says so once.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ifaddr
from zeroconf import InterfaceChoice, IPVersion, ServiceInfo, Zeroconf

from bridge.config import Config
from bridge.flow import Workers
from bridge.model import Change

log = logging.getLogger(__name__)

OSCQUERY_TYPE = "_oscjson._tcp.local."
OSC_TYPE = "_osc._udp.local."
HTTP_TYPE = "_http._tcp.local."
_WILDCARDS = ("0.0.0.0", "", "::")  # noqa: S104


@dataclass(frozen=True)
class Service:
    """One service to announce: its DNS-SD type, the interface it is bound to, its port."""

    type: str
    host: str
    port: int
    properties: dict[str, str] = field(default_factory=dict)


def services(config: Config, oscquery_port: int | None = None) -> list[Service]:
    """The services this config serves; ``oscquery_port`` is the port actually bound."""
    found = [Service(HTTP_TYPE, config.server.host, config.server.port, {"path": "/"})]
    if config.osc is not None:
        found.append(Service(OSC_TYPE, config.osc.listen_host, config.osc.listen_port))
    if config.oscquery is not None:
        host = config.oscquery.host if config.oscquery.host is not None else config.server.host
        found.append(Service(OSCQUERY_TYPE, host, oscquery_port or config.oscquery.port))
    return found


def addresses(host: str) -> list[str]:
    """The IPv4 addresses a service bound to ``host`` is reached at.

    A wildcard means every interface: their addresses, loopback only when
    there is nothing else (a machine with no network yet).
    """
    if host not in _WILDCARDS:
        try:
            return [str(ipaddress.IPv4Address(host))]
        except ValueError:
            return [socket.gethostbyname(host)]
    found = [
        ip.ip
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if isinstance(ip.ip, str) and not ip.ip.startswith("169.254.")
    ]
    outside = [ip for ip in found if not ip.startswith("127.")]
    return sorted(set(outside or found))


class Advertiser:
    """Announces the bridge's services while it runs. An adapter only for its life cycle."""

    name = "discovery"

    def __init__(self, config: Config, oscquery_port: Callable[[], int | None] | None = None) -> None:
        self.config = config
        self.instance = config.discovery.name
        self._oscquery_port = oscquery_port
        self._zeroconf: Zeroconf | None = None
        self._registered: list[ServiceInfo] = []
        self._workers = Workers()
        self._lock = threading.Lock()
        self.state = "off"

    def start(self) -> None:
        port = self._oscquery_port() if self._oscquery_port is not None else None
        wanted = services(self.config, port)
        self.state = "starting"
        self._workers.start((lambda: self._register(wanted), "mdns"))

    def _register(self, wanted: list[Service]) -> None:
        hosts = {service.host for service in wanted}
        interfaces: Any = InterfaceChoice.All if hosts & set(_WILDCARDS) else sorted(addresses(h)[0] for h in hosts)
        # The A records name this machine; a name of its own keeps clear of the system's responder.
        server = f"{_label(socket.gethostname())}-stage-bridge.local."
        try:
            zeroconf = Zeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
        except OSError as err:
            self.state = f"failed: {err}"
            log.warning("mDNS: cannot start (%s); the bridge runs on without discovery", err)
            return
        with self._lock:
            self._zeroconf = zeroconf
        # Each registration probes for a name clash for a second or two: side by side, not one after another.
        probes = Workers()
        for service in wanted:
            probes.spawn(lambda service=service: self._announce(zeroconf, service, server), "mdns-probe")  # type: ignore[misc]
        probes.join()
        if not self.state.startswith("failed"):
            self.state = "advertising"

    def _announce(self, zeroconf: Zeroconf, service: Service, server: str) -> None:
        if self._workers.stopping.is_set():
            return
        info = ServiceInfo(
            service.type,
            f"{self.instance}.{service.type}",
            port=service.port,
            parsed_addresses=addresses(service.host),
            properties=service.properties,
            server=server,
        )
        try:
            # Another device with the same name: ours becomes "name (2)".
            zeroconf.register_service(info, allow_name_change=True)
        except Exception as err:  # zeroconf's errors have no common base worth naming
            self.state = f"failed: {err}"
            log.warning("mDNS: cannot advertise %s (%s)", service.type, err)
            return
        with self._lock:
            self._registered.append(info)
        log.info("mDNS: advertising %r as %s on port %d", info.name, service.type, service.port)

    def stop(self) -> None:
        self._workers.stop(timeout=10)
        with self._lock:
            zeroconf, self._zeroconf = self._zeroconf, None
            self._registered.clear()
        if zeroconf is not None:
            try:
                zeroconf.unregister_all_services()  # goodbye packets: browsers drop us at once
            except Exception as err:  # the bridge is stopping: say so, and close all the same
                log.warning("mDNS: cannot withdraw the announcements (%s)", err)
            # Under gevent every green thread shares zeroconf's event loop thread, so
            # close() believes it runs inside the loop and warns that it skips the
            # goodbyes; they are already sent above.
            quiet = _DropMessage("skipped as it does blocking i/o")
            logging.getLogger("zeroconf").addFilter(quiet)
            try:
                zeroconf.close()
            finally:
                logging.getLogger("zeroconf").removeFilter(quiet)
        self.state = "off"

    def send(self, change: Change) -> None:
        """Changes are not announced; only the services are."""

    def describe(self) -> dict[str, Any]:
        with self._lock:
            names = [info.name for info in self._registered]
        return {"state": self.state, "name": self.instance, "services": names}


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def _label(hostname: str) -> str:
    """A host name cut to one DNS label of letters, digits and hyphens."""
    label = "".join(ch if ch.isascii() and (ch.isalnum() or ch == "-") else "-" for ch in hostname.split(".")[0])
    return label.strip("-")[:40] or "host"
