"""OPC UA connection security for the capture client: its own application certificate
(made on first start in ``Security.certificate_dir``) and the server's, trusted only when that
exact certificate is in the trust list ``Security.trust_dir``. The server's certificate is
read from its endpoints (unsecured GetEndpoints) and checked before any secure channel is
opened, and again when a session is created (on every reconnect)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import security_policies
from cryptography import x509

from opencdmo.equipment import opcua_pki

Mode = Literal["None", "Sign", "SignAndEncrypt"]


@dataclass(frozen=True)
class Security:
    """How to secure the connection; ``None`` mode needs neither directory."""

    mode: Mode = "None"
    policy: Literal["Basic256Sha256"] = "Basic256Sha256"
    certificate_dir: Path | None = None  # the client's own certificate and key
    trust_dir: Path | None = None  # the trusted server certificates


class CaptureError(Exception):
    """A configuration the client cannot run with (not worth retrying)."""


class UntrustedServer(CaptureError):
    """The server's certificate is not in the trust list."""


async def secure(
    client: Client, endpoint: str, security: Security, application_uri: str, request_timeout: float
) -> None:
    """Set up ``client`` for Basic256Sha256 in ``security.mode``; raises ``UntrustedServer``
    when the server's certificate is not in the trust list."""
    if security.certificate_dir is None or security.trust_dir is None:
        raise CaptureError(f"{security.mode} needs a certificate directory and a trust list")
    own = opcua_pki.ensure_certificate(security.certificate_dir, application_uri, server=False)
    server_der = await _server_certificate(endpoint, security, request_timeout)
    trusted = opcua_pki.trusted_fingerprints(security.trust_dir)
    if opcua_pki.fingerprint(server_der) not in trusted:
        raise UntrustedServer(_untrusted(endpoint, server_der, security.trust_dir))

    async def validate(certificate: x509.Certificate, _app: ua.ApplicationDescription) -> None:
        der = opcua_pki.der(certificate)
        if opcua_pki.fingerprint(der) not in trusted:
            raise UntrustedServer(_untrusted(endpoint, der, security.trust_dir))

    client.certificate_validator = validate
    await client.set_security(
        security_policies.SecurityPolicyBasic256Sha256,
        str(own.certificate),
        str(own.private_key),
        server_certificate=server_der,
        mode=getattr(ua.MessageSecurityMode, security.mode),
    )


async def _server_certificate(endpoint: str, security: Security, request_timeout: float) -> bytes:
    """The certificate the server offers on the endpoint asked for (read unsecured)."""
    probe = Client(endpoint, timeout=request_timeout)
    endpoints = await probe.connect_and_get_server_endpoints()
    mode = getattr(ua.MessageSecurityMode, security.mode)
    uri = security_policies.SecurityPolicyBasic256Sha256.URI
    for found in endpoints:
        if found.SecurityMode == mode and found.SecurityPolicyUri == uri:
            return opcua_pki.first_certificate(bytes(found.ServerCertificate))
    raise CaptureError(f"{endpoint} offers no {security.policy} {security.mode} endpoint")


def _untrusted(endpoint: str, der: bytes, trust_dir: Path | None) -> str:
    subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    return (
        f"the OPC UA server at {endpoint} presented a certificate that is not in the trust "
        f"list {trust_dir}: {subject}, SHA-256 {opcua_pki.fingerprint(der)}"
    )
