"""Review by exception and release: QA dispositions each exception (accepted with a comment,
or escalated to a deviation), closes deviations with a signature, and releases or rejects the
batch with a signature.

Release and rejection are refused while an exception is undispositioned or a deviation
open, and to anyone who performed or verified a step of the batch. The signature covers the
whole record: every entry's current value, each exception's disposition and each deviation,
and the control recipe's hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.batches import entry_queries, execution, queries, states
from opencdmo.batches import execution_queries as xq
from opencdmo.batches.execution_queries import DeviationRow, ExceptionRow
from opencdmo.batches.queries import BatchRow
from opencdmo.db.tx import tenant_transaction, unit_of_work
from opencdmo.errors import Conflict, Forbidden, NotFound, ValidationFailed
from opencdmo.fields import check_text
from opencdmo.inventory import consumption_queries as cq
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.signatures import service as signatures
from opencdmo.signatures.service import SignedRecord

CLASSIFICATIONS = ("minor", "major", "critical")
DECISIONS = {"release": "released", "reject": "rejected"}
TEXT_MAX = 4000


def _required(value: str, field: str, name: str) -> str:
    text = check_text(value, field, name, limit=TEXT_MAX).strip()
    if not text:
        raise ValidationFailed(f"{name} is required.", details={"field": field})
    return text


async def accept_exception(
    ctx: TenantContext, batch_id: UUID, exception_id: UUID, comment: str
) -> ExceptionRow:
    """QA accepts an exception of the batch with a comment (its disposition, given once)."""
    comment = _required(comment, "comment", "A comment")
    async with unit_of_work(ctx):
        row = await queries.batch(batch_id, lock=True)
        found = await xq.exception(exception_id)
        if found.batch_id != batch_id:
            raise NotFound("No such exception.")
        await authorize(ctx, "batches", "review", site_id=row.site_id)
        found = await xq.exception(exception_id, lock=True)
        _undisposed(found)
        await xq.dispose(exception_id, "accepted", comment, execution.actor(ctx))
        await audit.record(
            ctx,
            "batch.exception_accepted",
            "batch",
            row.id,
            new={
                "number": row.number,
                "exception_id": str(exception_id),
                "kind": found.kind,
                "message": found.message,
            },
            reason=comment,
        )
        return await xq.exception(exception_id)


def _undisposed(found: ExceptionRow) -> None:
    if found.disposition is not None:
        raise Conflict(
            f"This exception has been {found.disposition} already.",
            details={"disposition": found.disposition},
        )


async def open_deviation(
    ctx: TenantContext,
    batch_id: UUID,
    exception_ids: list[UUID],
    classification: str,
    description: str,
) -> DeviationRow:
    """A deviation opened from one or more of the batch's undispositioned exceptions, which
    are escalated to it. Its number is the batch's number and a counter."""
    if classification not in CLASSIFICATIONS:
        raise ValidationFailed(
            f"classification: must be one of {', '.join(CLASSIFICATIONS)}.",
            details={"field": "classification"},
        )
    description = _required(description, "description", "A description")
    if not exception_ids:
        raise ValidationFailed(
            "A deviation is opened from at least one exception.",
            details={"field": "exception_ids"},
        )
    async with unit_of_work(ctx):
        row = await queries.batch(batch_id, lock=True)
        await authorize(ctx, "batches", "deviate", site_id=row.site_id)
        mine = {e.id: e for e in await xq.exceptions(batch_id)}
        chosen = []
        for exception_id in dict.fromkeys(exception_ids):
            found = mine.get(exception_id)
            if found is None:
                raise ValidationFailed(
                    "An exception named is not one of this batch's.",
                    details={"field": "exception_ids", "id": str(exception_id)},
                )
            _undisposed(found)
            chosen.append(found)
        number = f"DEV-{row.number}-{await xq.deviation_count(batch_id) + 1:02d}"
        deviation = await xq.insert_deviation(
            ctx.tenant_id, batch_id, number, classification, description, execution.actor(ctx)
        )
        for found in chosen:
            await xq.dispose(
                found.id, "escalated", None, execution.actor(ctx), deviation_id=deviation.id
            )
        await audit.record(
            ctx,
            "batch.deviation_opened",
            "batch",
            batch_id,
            new={
                "number": row.number,
                "deviation_id": str(deviation.id),
                "deviation": number,
                "classification": classification,
                "description": description,
                "exception_ids": [str(e.id) for e in chosen],
            },
        )
        return deviation


def deviation_record(found: DeviationRow, impact: str, root_cause: str, capa: str | None) -> Any:
    return SignedRecord(
        "deviation",
        str(found.id),
        "1",
        found.opened_by,
        {
            "number": found.number,
            "classification": found.classification,
            "description": found.description,
            "impact": impact,
            "root_cause": root_cause,
            "capa_reference": capa,
        },
    )


async def close_deviation(
    settings: Settings,
    ctx: TenantContext,
    batch_id: UUID,
    deviation_id: UUID,
    impact: str,
    root_cause: str,
    capa_reference: str | None,
    password: str,
    reason: str,
) -> DeviationRow:
    """QA closes a deviation with its impact assessment, root cause and CAPA reference,
    signing it 'approved' (not the person who opened it)."""
    impact = _required(impact, "impact", "The impact assessment")
    root_cause = _required(root_cause, "root_cause", "The root cause")
    capa = check_text(capa_reference or "", "capa_reference", "The CAPA reference").strip()
    async with tenant_transaction(ctx):
        row = await queries.batch(batch_id)
        found = await xq.deviation(deviation_id)
    if found.batch_id != batch_id:
        raise NotFound("No such deviation.")
    await authorize(ctx, "batches", "review", site_id=row.site_id)
    _open(found)
    signing = await signatures.prepare(settings, ctx, "approved", reason, password)
    async with unit_of_work(ctx):
        row = await queries.batch(found.batch_id, lock=True)
        found = await xq.deviation(deviation_id, lock=True)
        _open(found)
        signature = await signatures.apply(
            ctx, signing, deviation_record(found, impact, root_cause, capa or None)
        )
        await xq.close_deviation(
            deviation_id, impact, root_cause, capa or None, execution.actor(ctx), signature.id
        )
        await audit.record(
            ctx,
            "batch.deviation_closed",
            "batch",
            row.id,
            new={
                "number": row.number,
                "deviation_id": str(deviation_id),
                "deviation": found.number,
                "impact": impact,
                "root_cause": root_cause,
                "capa_reference": capa or None,
                "signature_id": str(signature.id),
            },
            reason=signing.reason,
        )
        return await xq.deviation(deviation_id)


def _open(found: DeviationRow) -> None:
    if found.status != "open":
        raise Conflict(f"Deviation {found.number} is closed already.")


@dataclass(frozen=True)
class ReleaseView:
    batch: BatchRow
    signature: signatures.SignatureView


async def record_content(batch: BatchRow) -> dict[str, Any]:
    """What a release signature covers (read in the open transaction)."""
    frozen = await queries.control_recipe(batch.id)
    found = await entry_queries.of_batch(batch.id)
    superseded = {e.supersedes for e in found if e.supersedes is not None}
    return {
        "batch": str(batch.id),
        "number": batch.number,
        "control_recipe_hash": frozen.content_hash,
        "status": batch.status,
        "entries": [
            {"id": str(e.id), "value": e.value, "unit": e.unit, "current": e.id not in superseded}
            for e in found
        ],
        "exceptions": [
            {"id": str(e.id), "disposition": e.disposition} for e in await xq.exceptions(batch.id)
        ],
        "deviations": [
            {"id": str(d.id), "status": d.status} for d in await xq.deviations(batch.id)
        ],
        **await _materials(batch.id),
    }


async def _materials(batch_id: UUID) -> dict[str, Any]:
    """The containers the batch used and the lots it made (left out when there are none, so
    a record signed before materials were recorded reads as it was signed)."""
    used = await cq.consumptions(batch_id)
    made = await cq.outputs(batch_id)
    if not used and not made:
        return {}
    return {
        "materials": [
            {
                "id": str(c.id),
                "step": c.step,
                "container": str(c.container_id),
                "quantity": str(c.quantity),
                "unit": c.unit,
            }
            for c in used
        ],
        "outputs": [str(lot) for lot in made],
    }


async def batch_record(batch: BatchRow) -> SignedRecord:
    return SignedRecord("batch", str(batch.id), "1", None, await record_content(batch))


async def performers_and_verifiers(batch_id: UUID) -> set[UUID]:
    """Everyone who performed or verified a step of the batch."""
    found: set[UUID] = set()
    for phase in await xq.phases(batch_id):
        found |= {u for u in (phase.started_by, phase.ended_by) if u is not None}
    found |= {e.entered_by for e in await entry_queries.of_batch(batch_id)}
    found |= {v.verified_by for v in await xq.verifications(batch_id)}
    found |= {c.checked_by for c in await xq.identity_checks(batch_id)}
    found |= {c.consumed_by for c in await cq.consumptions(batch_id)}
    return found


async def _release_problems(ctx: TenantContext, batch_id: UUID, decision: str) -> BatchRow:
    """The batch, once it may be released or rejected by this person; a 409 or 403 why not."""
    row = await queries.batch(batch_id)
    if row.disposition is not None:
        raise Conflict(f"This batch has been {row.disposition} already.")
    wanted = {states.COMPLETE} if decision == "released" else {states.COMPLETE, *states.FINAL}
    if row.status not in wanted:
        raise Conflict(
            f"This batch is {states.STATE_NAMES[row.status]}: it is {decision} once it has "
            + ("completed." if decision == "released" else "ended."),
            details={"status": row.status},
        )
    open_exceptions = [e for e in await xq.exceptions(batch_id) if e.disposition is None]
    open_deviations = [d for d in await xq.deviations(batch_id) if d.status == "open"]
    if open_exceptions or open_deviations:
        parts = []
        if open_exceptions:
            parts.append(f"{len(open_exceptions)} exception(s) without a disposition")
        if open_deviations:
            parts.append("deviation(s) " + ", ".join(d.number for d in open_deviations) + " open")
        raise Conflict(
            f"This batch cannot be {decision}: " + " and ".join(parts) + ".",
            details={
                "exceptions": [str(e.id) for e in open_exceptions],
                "deviations": [str(d.id) for d in open_deviations],
            },
        )
    if ctx.user_id in await performers_and_verifiers(batch_id):
        raise Forbidden(
            f"Separation of duties: you performed or verified a step of this batch; another "
            f"person signs it as {decision}."
        )
    return row


async def decide(
    settings: Settings,
    ctx: TenantContext,
    batch_id: UUID,
    decision: str,
    password: str,
    reason: str,
) -> ReleaseView:
    """QA releases (``release``) or rejects (``reject``) the batch with a signature."""
    meaning = DECISIONS.get(decision)
    if meaning is None:
        raise ValidationFailed(
            "decision: must be release or reject.", details={"field": "decision"}
        )
    async with tenant_transaction(ctx):
        row = await queries.batch(batch_id)
        await authorize(ctx, "batches", "release", site_id=row.site_id)
        await _release_problems(ctx, batch_id, meaning)
    signing = await signatures.prepare(settings, ctx, meaning, reason, password)
    async with unit_of_work(ctx):
        await queries.batch(batch_id, lock=True)
        row = await _release_problems(ctx, batch_id, meaning)
        signature = await signatures.apply(ctx, signing, await batch_record(row))
        await xq.set_disposition(batch_id, meaning, signature.id)
        await audit.record(
            ctx,
            f"batch.{meaning}",
            "batch",
            batch_id,
            new={
                "number": row.number,
                "disposition": meaning,
                "signature_id": str(signature.id),
            },
            reason=signing.reason,
        )
        return ReleaseView(await queries.batch(batch_id), signature)
