"""OPC UA application certificates and trust lists, with ``cryptography``.

An application (the simulator's server, the capture client) keeps its own key and self-signed
certificate in a directory: made on first start, reused afterwards. A trust list is a directory
of DER or PEM certificates; a peer is trusted only when its exact certificate is in it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_FILE = "key.pem"
CERT_FILE = "cert.der"
VALID_DAYS = 365 * 2


@dataclass(frozen=True)
class Credentials:
    """Where an application's certificate (DER) and private key (PEM) are kept."""

    certificate: Path
    private_key: Path


def ensure_certificate(directory: Path, application_uri: str, *, server: bool) -> Credentials:
    """The application's certificate and key in ``directory``, made there if missing."""
    directory.mkdir(parents=True, exist_ok=True)
    found = Credentials(directory / CERT_FILE, directory / KEY_FILE)
    if found.private_key.is_file() and _current(found.certificate):
        return found
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    found.private_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    found.private_key.chmod(0o600)
    found.certificate.write_bytes(
        _self_signed(key, application_uri, server).public_bytes(serialization.Encoding.DER)
    )
    return found


def _current(path: Path) -> bool:
    """A certificate file that exists and is valid for at least another day."""
    if not path.is_file():
        return False
    certificate = x509.load_der_x509_certificate(path.read_bytes())
    return certificate.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=1)


def _self_signed(key: rsa.RSAPrivateKey, application_uri: str, server: bool) -> x509.Certificate:
    host = socket.gethostname()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, application_uri)])
    now = dt.datetime.now(dt.UTC)
    usage = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(application_uri), x509.DNSName(host)]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .sign(key, hashes.SHA256())
    )


def fingerprint(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate, as colon-separated hex."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def trusted_fingerprints(trust_dir: Path) -> set[str]:
    """The fingerprints of the certificates (DER or PEM files) in a trust list directory."""
    if not trust_dir.is_dir():
        return set()
    found = set()
    for path in sorted(trust_dir.iterdir()):
        if path.is_file():
            found.add(fingerprint(_der(path.read_bytes())))
    return found


def trust(trust_dir: Path, certificate_der: bytes, name: str) -> Path:
    """Add a certificate to a trust list (as ``<name>.der``); returns its path."""
    trust_dir.mkdir(parents=True, exist_ok=True)
    path = trust_dir / f"{name}.der"
    path.write_bytes(certificate_der)
    return path


def der(certificate: x509.Certificate) -> bytes:
    """A certificate's DER encoding."""
    return certificate.public_bytes(serialization.Encoding.DER)


def first_certificate(data: bytes) -> bytes:
    """The first certificate of a DER blob that may hold a chain (its outer SEQUENCE)."""
    if len(data) < 4 or data[0] != 0x30 or data[1] != 0x82:
        return data
    return data[: int.from_bytes(data[2:4], "big") + 4]


def _der(data: bytes) -> bytes:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    return data
