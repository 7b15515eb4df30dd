"""Signature data access: every read and write of the signatures table, as typed rows.

Each function runs in the transaction open in its context (a command's unit of work or a
page's read view); none opens or commits one of its own. Row-level security shows only the
tenant's own signatures.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from opencdmo.db.clock import database_now
from opencdmo.signatures.tables import Signature


@dataclass(frozen=True)
class SignatureRow:
    """One signature as stored."""

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
    method: str  # how the signer re-authenticated: password, signing_password, reauthentication


@dataclass(frozen=True)
class Slot:
    """A signature's id and time, chosen before its unit of work: for a record that must
    carry its own signature (a transfer package) and is written before the unit opens."""

    id: UUID
    signed_at: datetime


async def slot() -> Slot:
    """A fresh signature id, and the database's time now. Raw SQL: Piccolo has no select
    without a table."""
    rows = await Signature.raw("SELECT clock_timestamp() AS now")
    return Slot(uuid4(), rows[0]["now"])


@dataclass(frozen=True)
class Signer:
    """Who signed a record version, with which meaning."""

    signer_id: UUID
    meaning: str


_ROW = tuple(getattr(Signature, f.name) for f in fields(SignatureRow))


def _row(raw: dict[str, Any]) -> SignatureRow:
    return SignatureRow(**{f.name: raw[f.name] for f in fields(SignatureRow)})


async def insert(
    tenant_id: UUID,
    record_type: str,
    record_id: str,
    record_version: str,
    record_hash: str,
    signer_id: UUID,
    signer_name: str,
    meaning: str,
    reason: str,
    slot: Slot | None = None,
    method: str = "password",
) -> SignatureRow:
    """A signature, signed now by the database's clock (as the audit trail's events are), or
    with the id and database time of a ``slot`` taken when the password was re-entered."""
    signature = Signature(
        tenant_id=tenant_id,
        record_type=record_type,
        record_id=record_id,
        record_version=record_version,
        record_hash=record_hash,
        signer_id=signer_id,
        signer_name=signer_name,
        meaning=meaning,
        reason=reason,
        signed_at=database_now() if slot is None else slot.signed_at,
        method=method,
    )
    if slot is not None:
        signature.id = slot.id
    rows = await Signature.insert(signature).returning(*_ROW)
    return _row(rows[0])


async def on_record(record_type: str, record_id: str) -> list[SignatureRow]:
    """Every signature on the record (all its versions), oldest first."""
    rows = await (
        Signature.select(*_ROW)
        .where((Signature.record_type == record_type) & (Signature.record_id == record_id))
        .order_by(Signature.signed_at)
    )
    return [_row(r) for r in rows]


async def by_ids(signature_ids: list[UUID]) -> list[SignatureRow]:
    """These signatures, oldest first."""
    if not signature_ids:
        return []
    rows = await (
        Signature.select(*_ROW)
        .where(Signature.id.is_in(signature_ids))
        .order_by(Signature.signed_at)
    )
    return [_row(r) for r in rows]


async def signers(record_type: str, record_id: str, record_version: str) -> list[Signer]:
    """Who signed this version of the record, with which meaning."""
    rows = await Signature.select(Signature.signer_id, Signature.meaning).where(
        (Signature.record_type == record_type)
        & (Signature.record_id == record_id)
        & (Signature.record_version == record_version)
    )
    return [Signer(r["signer_id"], r["meaning"]) for r in rows]
