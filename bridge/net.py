"""Addresses a person can open: localhost and this machine's LAN address."""

from __future__ import annotations

import socket


def lan_address() -> str | None:
    """This machine's IPv4 address on the LAN, or None.

    Connecting a UDP socket only asks the kernel for a route: no packet is sent.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))
            address: str = sock.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address  # noqa: S104


def urls(host: str, port: int, scheme: str = "http") -> list[str]:
    """The URLs to open for a server bound to ``host``: localhost first, then the LAN one."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104
        found = [f"{scheme}://localhost:{port}/"]
        lan = lan_address()
        if lan:
            found.append(f"{scheme}://{lan}:{port}/")
        return found
    return [f"{scheme}://{host}:{port}/"]
