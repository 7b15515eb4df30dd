"""Batch execution data access: phase states, exceptions, deviations, verifications,
chain-of-identity checks and the chain of custody, as typed rows.

Each function runs in the transaction open in its context; none opens or commits one of its
own. Row-level security keeps every query inside the tenant.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from opencdmo.batches.tables import (
    Batch,
    BatchCustody,
    BatchException,
    BatchIdentityCheck,
    BatchPhase,
    BatchVerification,
    Deviation,
)
from opencdmo.db.clock import database_now
from opencdmo.db.rows import columns, typed
from opencdmo.errors import NotFound

# --- phases -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseRow:
    position: int
    procedure: str
    step: str
    phase: str
    status: str
    started_at: datetime | None
    started_by: UUID | None
    ended_at: datetime | None
    ended_by: UUID | None


async def insert_phases(
    tenant_id: UUID, batch_id: UUID, planned: list[tuple[int, str, str, str]]
) -> None:
    """One idle row per (position, procedure, step, phase)."""
    await BatchPhase.insert(
        *[
            BatchPhase(
                tenant_id=tenant_id,
                batch_id=batch_id,
                position=position,
                procedure=procedure,
                step=step,
                phase=phase,
                updated_at=database_now(),
            )
            for position, procedure, step, phase in planned
        ]
    )


async def phases(batch_id: UUID) -> list[PhaseRow]:
    rows = (
        await BatchPhase.select(*columns(BatchPhase, PhaseRow))
        .where(BatchPhase.batch_id == batch_id)
        .order_by(BatchPhase.position)
    )
    return [typed(PhaseRow, r) for r in rows]


async def phases_of(batch_ids: list[UUID]) -> dict[UUID, list[PhaseRow]]:
    """The phases of several batches, in recipe order (for the live board)."""
    if not batch_ids:
        return {}
    rows = (
        await BatchPhase.select(BatchPhase.batch_id, *columns(BatchPhase, PhaseRow))
        .where(BatchPhase.batch_id.is_in(batch_ids))
        .order_by(BatchPhase.position)
    )
    found: dict[UUID, list[PhaseRow]] = {i: [] for i in batch_ids}
    for r in rows:
        found[r["batch_id"]].append(typed(PhaseRow, r))
    return found


async def phase(batch_id: UUID, step: str, phase: str) -> PhaseRow:
    raw = await (
        BatchPhase.select(*columns(BatchPhase, PhaseRow))
        .where(
            (BatchPhase.batch_id == batch_id)
            & (BatchPhase.step == step)
            & (BatchPhase.phase == phase)
        )
        .first()
    )
    if raw is None:
        raise NotFound(f"This batch has no phase {phase[:64]} in step {step[:64]}.")
    return typed(PhaseRow, raw)


async def set_phase_status(
    batch_id: UUID, step: str, phase: str, status: str, actor: UUID, *, starts: bool, ends: bool
) -> None:
    values: dict[Any, Any] = {BatchPhase.status: status, BatchPhase.updated_at: database_now()}
    if starts:
        values |= {BatchPhase.started_at: database_now(), BatchPhase.started_by: actor}
    if ends:
        values |= {BatchPhase.ended_at: database_now(), BatchPhase.ended_by: actor}
    await BatchPhase.update(values).where(
        (BatchPhase.batch_id == batch_id) & (BatchPhase.step == step) & (BatchPhase.phase == phase)
    )


async def mark_batch_times(batch_id: UUID, *, starts: bool, ends: bool) -> None:
    values: dict[Any, Any] = {}
    if starts:
        values[Batch.started_at] = database_now()
    if ends:
        values[Batch.ended_at] = database_now()
    if values:
        await Batch.update(values).where(Batch.id == batch_id)


# --- exceptions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewException:
    kind: str
    severity: str
    message: str
    step: str | None = None
    phase: str | None = None
    field: str | None = None
    entry_id: UUID | None = None


@dataclass(frozen=True)
class ExceptionRow:
    id: UUID
    batch_id: UUID
    kind: str
    severity: str
    step: str | None
    phase: str | None
    field: str | None
    entry_id: UUID | None
    message: str
    raised_by: UUID | None
    raised_at: datetime
    disposition: str | None
    disposition_comment: str | None
    dispositioned_by: UUID | None
    dispositioned_at: datetime | None
    deviation_id: UUID | None


async def insert_exception(
    tenant_id: UUID, batch_id: UUID, new: NewException, raised_by: UUID | None
) -> ExceptionRow:
    rows = await BatchException.insert(
        BatchException(
            tenant_id=tenant_id,
            batch_id=batch_id,
            raised_by=raised_by,
            raised_at=database_now(),
            **{f.name: getattr(new, f.name) for f in fields(NewException)},
        )
    ).returning(*columns(BatchException, ExceptionRow))
    return typed(ExceptionRow, rows[0])


async def exceptions(batch_id: UUID) -> list[ExceptionRow]:
    rows = (
        await BatchException.select(*columns(BatchException, ExceptionRow))
        .where(BatchException.batch_id == batch_id)
        .order_by(BatchException.raised_at)
        .order_by(BatchException.id)
    )
    return [typed(ExceptionRow, r) for r in rows]


async def exception(exception_id: UUID, *, lock: bool = False) -> ExceptionRow:
    query = BatchException.select(*columns(BatchException, ExceptionRow)).where(
        BatchException.id == exception_id
    )
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    if raw is None:
        raise NotFound("No such exception.")
    return typed(ExceptionRow, raw)


async def open_counts(batch_ids: list[UUID]) -> dict[UUID, int]:
    """How many undispositioned exceptions each batch has."""
    if not batch_ids:
        return {}
    rows = (
        await BatchException.select(BatchException.batch_id)
        .where(BatchException.batch_id.is_in(batch_ids) & BatchException.disposition.is_null())
        .output(as_list=True)
    )
    found: dict[UUID, int] = {}
    for batch_id in rows:
        found[batch_id] = found.get(batch_id, 0) + 1
    return found


async def dispose(
    exception_id: UUID,
    disposition: str,
    comment: str | None,
    actor: UUID,
    deviation_id: UUID | None = None,
) -> None:
    await BatchException.update(
        {
            BatchException.disposition: disposition,
            BatchException.disposition_comment: comment,
            BatchException.dispositioned_by: actor,
            BatchException.dispositioned_at: database_now(),
            BatchException.deviation_id: deviation_id,
        }
    ).where((BatchException.id == exception_id) & BatchException.disposition.is_null())


# --- deviations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviationRow:
    id: UUID
    batch_id: UUID
    number: str
    classification: str
    description: str
    impact: str | None
    root_cause: str | None
    capa_reference: str | None
    status: str
    opened_by: UUID
    opened_at: datetime
    closed_by: UUID | None
    closed_at: datetime | None
    close_signature_id: UUID | None


async def insert_deviation(
    tenant_id: UUID,
    batch_id: UUID,
    number: str,
    classification: str,
    description: str,
    opened_by: UUID,
) -> DeviationRow:
    rows = await Deviation.insert(
        Deviation(
            tenant_id=tenant_id,
            batch_id=batch_id,
            number=number,
            classification=classification,
            description=description,
            opened_by=opened_by,
            opened_at=database_now(),
            updated_at=database_now(),
        )
    ).returning(*columns(Deviation, DeviationRow))
    return typed(DeviationRow, rows[0])


async def deviations(batch_id: UUID) -> list[DeviationRow]:
    rows = (
        await Deviation.select(*columns(Deviation, DeviationRow))
        .where(Deviation.batch_id == batch_id)
        .order_by(Deviation.opened_at)
    )
    return [typed(DeviationRow, r) for r in rows]


async def deviation_count(batch_id: UUID) -> int:
    return int(await Deviation.count().where(Deviation.batch_id == batch_id))


async def deviation(deviation_id: UUID, *, lock: bool = False) -> DeviationRow:
    query = Deviation.select(*columns(Deviation, DeviationRow)).where(Deviation.id == deviation_id)
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    if raw is None:
        raise NotFound("No such deviation.")
    return typed(DeviationRow, raw)


async def close_deviation(
    deviation_id: UUID,
    impact: str,
    root_cause: str,
    capa_reference: str | None,
    actor: UUID,
    signature_id: UUID,
) -> None:
    await Deviation.update(
        {
            Deviation.impact: impact,
            Deviation.root_cause: root_cause,
            Deviation.capa_reference: capa_reference,
            Deviation.status: "closed",
            Deviation.closed_by: actor,
            Deviation.closed_at: database_now(),
            Deviation.close_signature_id: signature_id,
            Deviation.updated_at: database_now(),
        }
    ).where(Deviation.id == deviation_id)


# --- verifications ----------------------------------------------------------------------------


@dataclass(frozen=True)
class VerificationRow:
    id: UUID
    step: str
    phase: str
    kind: str
    signature_id: UUID
    verified_by: UUID
    verified_at: datetime


async def insert_verification(
    tenant_id: UUID,
    batch_id: UUID,
    step: str,
    phase: str,
    kind: str,
    signature_id: UUID,
    actor: UUID,
) -> None:
    await BatchVerification.insert(
        BatchVerification(
            tenant_id=tenant_id,
            batch_id=batch_id,
            step=step,
            phase=phase,
            kind=kind,
            signature_id=signature_id,
            verified_by=actor,
            verified_at=database_now(),
        )
    )


async def verifications(batch_id: UUID) -> list[VerificationRow]:
    rows = (
        await BatchVerification.select(*columns(BatchVerification, VerificationRow))
        .where(BatchVerification.batch_id == batch_id)
        .order_by(BatchVerification.verified_at)
    )
    return [typed(VerificationRow, r) for r in rows]


# --- chain of identity and custody ------------------------------------------------------------


@dataclass(frozen=True)
class IdentityCheckRow:
    id: UUID
    step: str
    scanned: str
    matched: bool
    checked_by: UUID
    checked_at: datetime


async def insert_identity_check(
    tenant_id: UUID, batch_id: UUID, step: str, scanned: str, matched: bool, actor: UUID
) -> IdentityCheckRow:
    rows = await BatchIdentityCheck.insert(
        BatchIdentityCheck(
            tenant_id=tenant_id,
            batch_id=batch_id,
            step=step,
            scanned=scanned,
            matched=matched,
            checked_by=actor,
            checked_at=database_now(),
        )
    ).returning(*columns(BatchIdentityCheck, IdentityCheckRow))
    return typed(IdentityCheckRow, rows[0])


async def identity_checks(batch_id: UUID) -> list[IdentityCheckRow]:
    rows = (
        await BatchIdentityCheck.select(*columns(BatchIdentityCheck, IdentityCheckRow))
        .where(BatchIdentityCheck.batch_id == batch_id)
        .order_by(BatchIdentityCheck.checked_at)
        .order_by(BatchIdentityCheck.id)
    )
    return [typed(IdentityCheckRow, r) for r in rows]


@dataclass(frozen=True)
class CustodyRow:
    id: UUID
    holder_id: UUID
    location: str
    received_at: datetime


async def insert_custody(tenant_id: UUID, batch_id: UUID, holder: UUID, location: str) -> None:
    await BatchCustody.insert(
        BatchCustody(
            tenant_id=tenant_id,
            batch_id=batch_id,
            holder_id=holder,
            location=location,
            received_at=database_now(),
        )
    )


async def custody(batch_id: UUID) -> list[CustodyRow]:
    rows = (
        await BatchCustody.select(*columns(BatchCustody, CustodyRow))
        .where(BatchCustody.batch_id == batch_id)
        .order_by(BatchCustody.received_at)
        .order_by(BatchCustody.id)
    )
    return [typed(CustodyRow, r) for r in rows]


# --- release ----------------------------------------------------------------------------------


async def set_disposition(batch_id: UUID, disposition: str, signature_id: UUID) -> None:
    await Batch.update(
        {
            Batch.disposition: disposition,
            Batch.disposition_signature_id: signature_id,
            Batch.dispositioned_at: database_now(),
            Batch.updated_at: database_now(),
        }
    ).where(Batch.id == batch_id)
