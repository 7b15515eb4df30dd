"""The batch record as BatchML: ``opencdmo.batches.record.BatchRecord`` mapped onto the
export's own model (``opencdmo.batches.batchml``), which knows nothing of the database."""

from __future__ import annotations

from datetime import datetime

from opencdmo.batches import batchml
from opencdmo.batches.record import BatchRecord, PhaseView


def _phase(view: PhaseView) -> batchml.Phase:
    return batchml.Phase(
        view.planned.phase,
        view.planned.phase_name,
        view.status,
        view.row.started_at,
        view.row.ended_at,
    )


def _span(phases: list[PhaseView]) -> tuple[datetime | None, datetime | None]:
    starts = [p.row.started_at for p in phases if p.row.started_at]
    ends = [p.row.ended_at for p in phases if p.row.ended_at]
    done = all(p.row.ended_at for p in phases)
    return (min(starts) if starts else None, max(ends) if ends and done else None)


def document(found: BatchRecord, exported_at: datetime) -> batchml.BatchRecordDoc:
    b = found.batch
    recipe = found.control_recipe.document["recipe"]
    header = batchml.BatchHeader(
        b.id,
        b.number,
        b.recipe_id,
        found.recipe_name,
        b.revision,
        str(recipe.get("product") or found.recipe_name),
        b.formula,
        found.site_code,
        b.sponsor,
        b.status,
        b.planned_start,
        found.control_recipe.content_hash,
        disposition=b.disposition,
        actual_start=b.started_at,
        actual_end=b.ended_at,
        created_at=b.created_at,
        donor_id=b.donor_id,
        coi_label=b.coi_label,
        apheresis_id=b.apheresis_id,
    )
    procedures = tuple(
        batchml.UnitProcedure(
            up.key,
            up.name,
            up.status,
            *_span([p for s in up.steps for p in s.phases]),
            operations=tuple(
                batchml.Operation(
                    s.key,
                    s.name,
                    s.status,
                    *_span(s.phases),
                    phases=tuple(_phase(p) for p in s.phases),
                )
                for s in up.steps
            ),
        )
        for up in found.procedures
    )
    return batchml.BatchRecordDoc(
        header,
        exported_at,
        unit_procedures=procedures,
        entries=tuple(
            batchml.Entry(
                e.id,
                e.step,
                e.phase,
                e.field,
                found.field_name(e.step, e.phase, e.field),
                e.value,
                e.source,
                found.name(e.entered_by),
                e.entered_at,
                e.check_result,
                unit=e.unit,
                device_time=e.device_time,
                supersedes=e.supersedes,
                reason=e.reason,
            )
            for e in found.entries
        ),
        exceptions=tuple(
            batchml.ExceptionRecord(
                x.id,
                x.kind,
                x.severity,
                x.message,
                x.raised_at,
                step=x.step,
                phase=x.phase,
                disposition=x.disposition,
                disposition_comment=x.disposition_comment,
                disposed_by=found.name(x.dispositioned_by) if x.dispositioned_by else None,
                disposed_at=x.dispositioned_at,
            )
            for x in found.exceptions
        ),
        deviations=tuple(
            batchml.Deviation(
                d.id,
                d.number,
                d.classification,
                d.description,
                d.status,
                d.opened_at,
                d.closed_at,
            )
            for d in found.deviations
        ),
        signatures=tuple(
            batchml.Signature(
                s.id,
                s.meaning,
                s.signer_name,
                s.signed_at,
                s.reason,
                s.record_type,
                s.record_id,
                s.record_hash,
            )
            for s in found.signatures
        ),
        custody=tuple(
            batchml.CustodyEvent(
                found.name(c.holder_id), c.location, c.received_at, found.custody_until(i)
            )
            for i, c in enumerate(found.custody)
        ),
        materials=(
            *(
                batchml.MaterialEvent(
                    u.row.id,
                    "Consume",
                    u.row.consumed_at,
                    u.row.step,
                    u.row.lot_id,
                    u.lot_number,
                    u.material,
                    u.row.quantity,
                    u.row.unit,
                    found.name(u.row.consumed_by),
                    u.container,
                )
                for u in found.used
            ),
            *(
                batchml.MaterialEvent(
                    m.lot.id,
                    "Produce",
                    m.lot.received_at,
                    m.lot.origin_step or "",
                    m.lot.id,
                    m.lot.lot_number,
                    m.material,
                    m.lot.quantity,
                    m.lot.unit,
                    found.name(m.lot.received_by),
                )
                for m in found.made
            ),
        ),
    )
