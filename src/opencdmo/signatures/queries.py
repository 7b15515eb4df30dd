"""Signature data access: the signatures table, as typed rows (append-only: insert and read).

Each function runs in the transaction open in its context; none opens or commits one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from opencdmo.db.sql import DEFAULT
from opencdmo.signatures.tables import Signature


@dataclass(frozen=True)
class SignatureRow:
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


_ROW = (
    Signature.id,
    Signature.record_type,
    Signature.record_id,
    Signature.record_version,
    Signature.record_hash,
    Signature.signer_id,
    Signature.signer_name,
    Signature.meaning,
    Signature.reason,
    Signature.signed_at,
)


async def insert_signature(
    tenant_id: UUID,
    record_type: str,
    record_id: str,
    record_version: str,
    record_hash: str,
    signer_id: UUID,
    signer_name: str,
    meaning: str,
    reason: str,
) -> SignatureRow:
    """The new signature, signed at the database's clock (``clock_timestamp()``, as the audit
    trail's times), not the app's."""
    rows = await Signature.insert(
        Signature(
            tenant_id=tenant_id,
            id=DEFAULT,
            record_type=record_type,
            record_id=record_id,
            record_version=record_version,
            record_hash=record_hash,
            signer_id=signer_id,
            signer_name=signer_name,
            meaning=meaning,
            reason=reason,
            signed_at=DEFAULT,
        )
    ).returning(*_ROW)
    return SignatureRow(**rows[0])


async def signatures(record_type: str, record_id: str) -> list[SignatureRow]:
    """Every signature on the record (all its versions), oldest first."""
    rows = (
        await Signature.select(*_ROW)
        .where((Signature.record_type == record_type) & (Signature.record_id == record_id))
        .order_by(Signature.signed_at)
    )
    return [SignatureRow(**row) for row in rows]
