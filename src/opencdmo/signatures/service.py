"""Part 11 electronic signatures (21 CFR 11.50, 11.70, 11.200).

``sign`` re-authenticates with the password, applies separation of duties, and links the
signature to the exact record version by the SHA-256 of its canonical content. ``verify``
recomputes that hash: a signature whose record changed since shows as invalid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from opencdmo.access.sod import check_author_may_not_approve
from opencdmo.audit import service as audit
from opencdmo.canonical import content_hash
from opencdmo.db.tx import tenant_transaction
from opencdmo.errors import NotAuthenticated, ValidationFailed
from opencdmo.identity.service import reauthenticate
from opencdmo.settings import Settings
from opencdmo.tenancy.context import TenantContext

MEANINGS = (
    "authored",
    "reviewed",
    "approved",
    "verified",
    "released",
    "rejected",
    "approved for publication",
    "responsibility",
)


class Signable(Protocol):
    """A record that can be signed: its identity, version, author and canonical content."""

    @property
    def record_type(self) -> str: ...

    @property
    def record_id(self) -> str: ...

    @property
    def record_version(self) -> str: ...

    @property
    def author_id(self) -> UUID | None: ...

    def signed_content(self) -> Any: ...


@dataclass(frozen=True)
class SignatureView:
    id: UUID
    record_type: str
    record_id: str
    record_version: str
    record_hash: str
    signer_id: UUID
    signer_name: str
    meaning: str
    reason: str
    signed_at: datetime
    valid: bool

    def manifestation(self, zone: str = "UTC") -> str:
        """Printed name, date and time with zone, and meaning (11.50)."""
        from opencdmo.web.templating import localtime

        return f"{self.signer_name} · {localtime(self.signed_at, zone)} · {self.meaning}"


async def sign(
    settings: Settings,
    ctx: TenantContext,
    record: Signable,
    meaning: str,
    reason: str,
    password: str,
) -> SignatureView:
    if ctx.user_id is None:
        raise NotAuthenticated("Only a signed-in person can sign.")
    if meaning not in MEANINGS:
        raise ValidationFailed(
            f"Unknown signature meaning '{meaning}'. Meanings: {', '.join(MEANINGS)}.",
            details={"field": "meaning"},
        )
    reason = " ".join(reason.split())
    if not reason:
        raise ValidationFailed("A reason is required to sign.", details={"field": "reason"})
    check_author_may_not_approve(record.author_id, ctx.user_id, meaning)
    await reauthenticate(settings, ctx, password)
    digest = content_hash(record.signed_content())
    async with tenant_transaction(ctx) as connection:
        row = await connection.fetchrow(
            "INSERT INTO signatures (tenant_id, record_type, record_id, record_version,"
            " record_hash, signer_id, signer_name, meaning, reason)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            " RETURNING *",
            ctx.tenant_id,
            record.record_type,
            record.record_id,
            record.record_version,
            digest,
            ctx.user_id,
            ctx.actor.full_name,
            meaning,
            reason,
        )
        await audit.record(
            ctx,
            "signature.applied",
            record.record_type,
            record.record_id,
            new={
                "signature_id": row["id"],
                "meaning": meaning,
                "record_version": record.record_version,
                "record_hash": digest,
            },
            reason=reason,
        )
    return _view(dict(row), digest)


def _view(row: dict[str, Any], current_hash: str | None) -> SignatureView:
    return SignatureView(
        row["id"],
        row["record_type"],
        row["record_id"],
        row["record_version"],
        row["record_hash"],
        row["signer_id"],
        row["signer_name"],
        row["meaning"],
        row["reason"],
        row["signed_at"],
        valid=current_hash == row["record_hash"],
    )


async def signatures_for(ctx: TenantContext, record: Signable) -> list[SignatureView]:
    """Every signature on the record (all versions), each checked against its current content."""
    current = content_hash(record.signed_content())
    async with tenant_transaction(ctx) as connection:
        rows = await connection.fetch(
            "SELECT * FROM signatures WHERE record_type = $1 AND record_id = $2 ORDER BY signed_at",
            record.record_type,
            record.record_id,
        )
    return [_view(dict(row), current) for row in rows]
