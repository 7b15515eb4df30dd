"""The tenant's OPC UA trust list: the server certificates its administrators trust, each
added (an uploaded PEM or DER file holding one X.509 certificate) and removed (with a reason)
by an audited command (``equipment:trust``).

The capture worker and the setpoint writer connect with Sign or SignAndEncrypt only to a
server whose certificate is in the list: ``trust_dir`` writes the tenant's current list into
the directory of DER files that ``opcua_security`` reads, just before connecting, so a
certificate added or removed counts from the next connection on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from uuid import UUID

import asyncpg
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.tx import read_view, tenant_id_transaction, unit_of_work
from opencdmo.equipment import opcua_pki
from opencdmo.equipment import trust_queries as q
from opencdmo.equipment.trust_queries import NewCertificate, TrustedRow
from opencdmo.errors import Conflict, Forbidden, ValidationFailed
from opencdmo.fields import check_reason
from opencdmo.scope import TenantContext

FILE_MAX: Final = 64 * 1024
REASON_MAX: Final = 2000
SUBJECT_MAX: Final = 2000
ENTITY: Final = "opcua_certificate"


@dataclass(frozen=True)
class Listing:
    certificates: list[TrustedRow]
    names: dict[UUID, str]  # who added or removed them


def _refused(message: str) -> ValidationFailed:
    return ValidationFailed(message, details={"field": "certificate"})


def parse(data: bytes) -> NewCertificate:
    """One X.509 certificate from a PEM or DER file; anything else is refused, saying why."""
    if not data.strip():
        raise _refused("The file is empty: choose the server's certificate (PEM or DER).")
    if len(data) > FILE_MAX:
        raise _refused(f"The file is larger than {FILE_MAX // 1024} KiB: it is no certificate.")
    certificate = _pem(data) if data.lstrip().startswith(b"-----BEGIN") else _der(data)
    der = certificate.public_bytes(serialization.Encoding.DER)
    not_after = certificate.not_valid_after_utc
    if not_after <= dt.datetime.now(dt.UTC):
        raise _refused(f"This certificate expired on {not_after:%Y-%m-%d %H:%M} UTC.")
    return NewCertificate(
        opcua_pki.fingerprint(der),
        der,
        certificate.subject.rfc4514_string()[:SUBJECT_MAX] or "(no subject)",
        not_after,
    )


def _pem(data: bytes) -> x509.Certificate:
    blocks = data.count(b"-----BEGIN ")
    if blocks != 1 or b"-----BEGIN CERTIFICATE-----" not in data:
        raise _refused(
            "A PEM file here holds exactly one certificate (BEGIN CERTIFICATE) and nothing "
            "else: no private key, no chain."
        )
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise _refused("The PEM file does not hold a readable X.509 certificate.") from None


def _der(data: bytes) -> x509.Certificate:
    first = opcua_pki.first_certificate(data)
    try:
        certificate = x509.load_der_x509_certificate(first)
    except ValueError:
        raise _refused("The file is not an X.509 certificate (PEM or DER).") from None
    if first != data or certificate.public_bytes(serialization.Encoding.DER) != data:
        raise _refused(
            "The DER file holds more than one certificate, or more after it: upload the "
            "server's certificate alone."
        )
    return certificate


def _actor(ctx: TenantContext) -> UUID:
    if ctx.user_id is None:
        raise Forbidden("Only a signed-in person changes the trust list.")
    return ctx.user_id


async def add(ctx: TenantContext, data: bytes, filename: str = "") -> TrustedRow:
    """Trust the server certificate in ``data`` (PEM or DER); audited."""
    new = parse(data)
    name = filename.strip()[:200]
    by = _actor(ctx)
    async with unit_of_work(ctx):
        await authorize(ctx, "equipment", "trust")
        if await q.current_by_thumbprint(new.thumbprint) is not None:
            raise Conflict(
                f"This certificate is trusted already (SHA-256 {new.thumbprint[:23]}…).",
                details={"field": "certificate"},
            )
        try:
            found = await q.insert(ctx.tenant_id, new, by)
        except asyncpg.UniqueViolationError:
            raise Conflict("This certificate was added a moment ago.") from None
        await audit.record(
            ctx,
            "equipment.certificate_trusted",
            ENTITY,
            found,
            new={
                "thumbprint": new.thumbprint,
                "subject": new.subject,
                "not_after": new.not_after.isoformat(),
                "file": name,
            },
        )
        return await q.one(found)


async def remove(ctx: TenantContext, certificate_id: UUID, reason: str) -> TrustedRow:
    """Stop trusting a certificate, saying why; audited (the row stays, marked removed)."""
    why = check_reason(reason, limit=REASON_MAX)
    by = _actor(ctx)
    async with unit_of_work(ctx):
        await authorize(ctx, "equipment", "trust")
        row = await q.one(certificate_id, lock=True)
        if not row.current:
            raise Conflict("This certificate was removed from the trust list already.")
        await q.remove(row.id, by, why)
        await audit.record(
            ctx,
            "equipment.certificate_removed",
            ENTITY,
            row.id,
            old={"thumbprint": row.thumbprint, "subject": row.subject},
            new={"thumbprint": row.thumbprint, "removed": True},
            reason=why,
        )
        return await q.one(row.id)


async def listing(ctx: TenantContext) -> list[TrustedRow]:
    async with read_view(ctx):
        await authorize(ctx, "equipment", "trust")
        return await q.listing()


async def trust_dir(tenant_id: UUID, base: Path) -> Path:
    """The tenant's current trust list as a directory of DER files (``base/trust/<tenant
    id>``), written now: a certificate added since appears, a removed one goes."""
    async with tenant_id_transaction(tenant_id):
        current = await q.current_der()
    directory = base / "trust" / str(tenant_id)
    await asyncio.to_thread(_materialise, directory, current)
    return directory


def _materialise(directory: Path, current: dict[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    wanted = {f"{thumbprint.replace(':', '')}.der": der for thumbprint, der in current.items()}
    for name, der in wanted.items():
        path = directory / name
        if path.is_file() and path.read_bytes() == der:
            continue
        partial = directory / f".{name}.{os.getpid()}.tmp"
        partial.write_bytes(der)
        os.replace(partial, path)  # another process reading the list sees all or nothing
    for path in directory.iterdir():
        if path.name not in wanted and not path.name.startswith("."):
            path.unlink(missing_ok=True)
