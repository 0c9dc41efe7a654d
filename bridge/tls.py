"""HTTPS: the certificate the page and Socket.IO are served with.

``[server] tls = "auto"`` makes a self-signed certificate once, with the
``cryptography`` package, and keeps it beside the state file, so that a
phone which accepted it keeps accepting it after a restart. Its SHA-256
fingerprint goes to the log: whoever accepts the certificate on a phone can
compare it with the one the browser shows. ``tls = { cert, key }`` serves
files made elsewhere (a certificate of the venue's own CA, say) as they are.

A browser gives a secure origin only to HTTPS pages, and some of what a
show page wants is kept for those: the Screen Wake Lock API above all.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from bridge.config.sections import TlsConfig
from bridge.errors import BridgeError
from bridge.state import write_atomic

log = logging.getLogger(__name__)

#: How long a made certificate is valid: Apple's limit for a server certificate (825 days), a little less.
VALID_DAYS = 820
#: A made certificate this close to its end is made again at start.
RENEW_DAYS = 30
COMMON_NAME = "Stage Bridge"


@dataclass(frozen=True)
class Served:
    """The certificate in use: its files, SHA-256 fingerprint and the SPKI hash browsers pin."""

    cert: Path
    key: Path
    fingerprint: str  # "AB:CD:..." over the DER certificate, as browsers show it
    spki: str  # base64 SHA-256 of the public key: what Chromium's --ignore-certificate-errors-spki-list takes

    def context(self) -> ssl.SSLContext:
        """A server-side TLS context with this certificate (TLS 1.2 at least)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(str(self.cert), str(self.key))
        except (OSError, ssl.SSLError) as err:
            raise BridgeError(
                f"cannot use the certificate {self.cert} with the key {self.key}: {err} (check [server] tls)"
            ) from err
        return context


def prepare(config: TlsConfig, names: list[str] | None = None) -> Served:
    """The certificate to serve: the configured files, or the one kept for ``auto`` (made when missing or old).

    ``names`` are the host names and addresses a made certificate covers
    (besides localhost and the loopback addresses).
    """
    if config.auto:
        reason = _unusable(config.cert, config.key, _covered(names or []))
        if reason is not None:
            if config.cert.exists() or config.key.exists():
                log.warning("TLS: the certificate kept at %s %s; making a new one", config.cert, reason)
            make_certificate(config.cert, config.key, names or [])
            served = describe(config.cert, config.key)
            log.info("TLS: made a self-signed certificate %s", config.cert)
            return served
    else:
        _require(config.cert, config.key)
    return describe(config.cert, config.key)


def describe(cert: Path, key: Path) -> Served:
    """The fingerprints of the certificate in ``cert``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError) as err:
        raise BridgeError(f"cannot read the certificate {cert}: {err} (check [server] tls)") from err
    der = loaded.public_bytes(serialization.Encoding.DER)
    spki = loaded.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return Served(
        cert=cert,
        key=key,
        fingerprint=fingerprint(der),
        spki=base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii"),
    )


def fingerprint(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate as browsers show it: upper-case hex pairs joined by colons."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def make_certificate(cert: Path, key: Path, names: list[str]) -> None:
    """Write a new self-signed certificate (ECDSA P-256) and its key; the key readable by its owner only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    alternatives: list[x509.GeneralName] = []
    for name in _covered(names):
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name.split("%")[0])))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # a phone whose clock is a little behind
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(private, hashes.SHA256())
    )
    try:
        cert.parent.mkdir(parents=True, exist_ok=True)
        key_bytes = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_atomic(key, key_bytes)  # made readable by this user alone from the start (mkstemp)
        write_atomic(cert, certificate.public_bytes(serialization.Encoding.PEM))
        os.chmod(cert, 0o644)
    except OSError as err:
        raise BridgeError(f"cannot write the certificate to {cert.parent}: {err.strerror or err}") from err


def _covered(names: list[str]) -> list[str]:
    """What a made certificate names: localhost, the loopback addresses, this host, and ``names``."""
    found: dict[str, None] = dict.fromkeys(["localhost", "127.0.0.1", "::1", socket.gethostname()])
    for name in names:
        if name and name not in ("0.0.0.0", "::"):  # noqa: S104 - wildcards are no name
            found[name] = None
    return list(found)


def _unusable(cert: Path, key: Path, names: list[str]) -> str | None:
    """Why a kept certificate cannot be used again (missing, unreadable, not its key's, near its end, not
    naming one of ``names``: the bridge's host or LAN address changed, at another venue), or None."""
    if not cert.is_file() or not key.is_file():
        return "is missing" if cert.exists() or key.exists() else "does not exist yet"
    from cryptography import x509

    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError):
        return "cannot be read"
    left = loaded.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    if left < datetime.timedelta(days=RENEW_DAYS):
        return f"ends in {max(0, left.days)} days"
    try:
        named = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "names no host"
    found = {str(n).lower() for n in named.get_values_for_type(x509.DNSName)}
    found |= {str(n) for n in named.get_values_for_type(x509.IPAddress)}
    missing = [name for name in names if _canonical(name) not in found]
    if missing:
        # (A phone that trusted it fails on the new address anyway: "not valid for 192.168.2.20".)
        return f"does not name {', '.join(missing)}"
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError):
        return "does not match its key"
    return None


def _canonical(name: str) -> str:
    """A host name in lower case, an address as :mod:`ipaddress` writes it (as a certificate's names are read)."""
    try:
        return str(ipaddress.ip_address(name.split("%")[0]))  # (a certificate names no IPv6 zone: fe80::1%eth0)
    except ValueError:
        return name.lower()


def _require(cert: Path, key: Path) -> None:
    for path in (cert, key):
        if not path.is_file():
            raise BridgeError(f"TLS file not found: {path} (check [server] tls)")
