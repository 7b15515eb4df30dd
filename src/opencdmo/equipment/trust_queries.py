"""The tenant's trusted OPC UA server certificates: typed rows, read and written in the
transaction open in the context (row-level security keeps every query inside the tenant)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from opencdmo.db.clock import database_now
from opencdmo.db.rows import columns, typed
from opencdmo.equipment.tables import TrustedCertificate
from opencdmo.errors import NotFound


@dataclass(frozen=True)
class TrustedRow:
    id: UUID
    thumbprint: str
    subject: str
    not_after: datetime
    added_by: UUID
    added_at: datetime
    removed_by: UUID | None
    removed_at: datetime | None
    removal_reason: str | None

    @property
    def current(self) -> bool:
        return self.removed_at is None


@dataclass(frozen=True)
class NewCertificate:
    thumbprint: str
    der: bytes
    subject: str
    not_after: datetime


async def insert(tenant_id: UUID, new: NewCertificate, by: UUID) -> UUID:
    rows = await TrustedCertificate.insert(
        TrustedCertificate(
            tenant_id=tenant_id,
            thumbprint=new.thumbprint,
            certificate=new.der,
            subject=new.subject,
            not_after=new.not_after,
            added_by=by,
        )
    ).returning(TrustedCertificate.id)
    found: UUID = rows[0]["id"]
    return found


async def one(certificate_id: UUID, *, lock: bool = False) -> TrustedRow:
    query = TrustedCertificate.select(*columns(TrustedCertificate, TrustedRow)).where(
        TrustedCertificate.id == certificate_id
    )
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    if raw is None:
        raise NotFound("No such trusted certificate.")
    return typed(TrustedRow, raw)


async def current_by_thumbprint(thumbprint: str) -> TrustedRow | None:
    raw = await (
        TrustedCertificate.select(*columns(TrustedCertificate, TrustedRow))
        .where(
            (TrustedCertificate.thumbprint == thumbprint) & TrustedCertificate.removed_at.is_null()
        )
        .first()
    )
    return None if raw is None else typed(TrustedRow, raw)


async def listing() -> list[TrustedRow]:
    """Every certificate the tenant trusts or trusted, the current ones first, newest first."""
    rows = await TrustedCertificate.select(*columns(TrustedCertificate, TrustedRow)).order_by(
        TrustedCertificate.added_at, ascending=False
    )
    found = [typed(TrustedRow, r) for r in rows]
    return sorted(found, key=lambda r: not r.current)


async def current_der() -> dict[str, bytes]:
    """The certificates trusted now: thumbprint -> DER."""
    rows = await TrustedCertificate.select(
        TrustedCertificate.thumbprint, TrustedCertificate.certificate
    ).where(TrustedCertificate.removed_at.is_null())
    return {r["thumbprint"]: bytes(r["certificate"]) for r in rows}


async def remove(certificate_id: UUID, by: UUID, reason: str) -> datetime:
    rows = await (
        TrustedCertificate.update(
            {
                TrustedCertificate.removed_by: by,
                TrustedCertificate.removed_at: database_now(),
                TrustedCertificate.removal_reason: reason,
            }
        )
        .where(TrustedCertificate.id == certificate_id)
        .returning(TrustedCertificate.removed_at)
    )
    found: datetime = rows[0]["removed_at"]
    return found
