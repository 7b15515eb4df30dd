"""Batch exceptions: raised by the system when something in a batch is not as its control
recipe says, never typed in by hand. Each kind's severity is the tenant's
(``opencdmo.tenancy.batch_rules``), fixed when it is raised.

``raise_all`` writes them in the command's open unit of work with one audit event each, so an
exception commits with the entry or state change that raised it, or not at all.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

from opencdmo.audit import service as audit
from opencdmo.batches import entries
from opencdmo.batches.execution_queries import ExceptionRow, NewException, insert_exception
from opencdmo.scope import TenantContext
from opencdmo.tenancy.batch_rules import ExceptionRules

#: The kinds an entry's check raises.
FROM_CHECK = {
    entries.INVALID: "outside_limits",
    entries.OUTSIDE_NORMAL: "outside_normal",
    entries.OUTSIDE_PAR: "outside_par",
}
#: Kinds that keep the phase from completing until QA has dispositioned them.
NEEDS_QA_TO_COMPLETE = frozenset({"outside_par", "identity_mismatch"})


def may_raise(
    checked: entries.Check,
    corrected: bool,
    source: str,
    device_time: datetime | None,
    target: entries.Target,
) -> bool:
    """Whether an entry can raise anything (if not, the tenant's rules need not be read)."""
    capture = target.capture
    manual = source == "manual" and capture is not None and capture.equipment_signal is not None
    return checked.result in FROM_CHECK or corrected or manual or device_time is not None


def of_entry(
    target: entries.Target,
    checked: entries.Check,
    *,
    corrected: bool,
    source: str,
    device_time: datetime | None,
    now: datetime,
    rules: ExceptionRules | None,
) -> list[NewException]:
    """What an entry raises: its check outside limits or ranges, a correction, a manual value
    where the content asks for equipment data, and an entry made later than the tenant's
    tolerance after the moment it records (its device time, when entered offline)."""
    if rules is None:  # read only when ``may_raise``
        return []

    def new(kind: str, message: str) -> NewException:
        severity = rules.severity(kind)
        return NewException(kind, severity, message, target.step, target.phase, target.key)

    found: list[NewException] = []
    kind = FROM_CHECK.get(checked.result)
    if kind is not None:
        found.append(new(kind, checked.message))
    if corrected:
        found.append(new("correction", f"{target.name} corrected."))
    capture = target.capture
    if source == "manual" and capture is not None and capture.equipment_signal is not None:
        signal = capture.equipment_signal
        found.append(
            new(
                "manual_entry",
                f"{target.name} entered by hand; the recipe asks for it from the "
                f"{signal.equipment_class} ({signal.signal}).",
            )
        )
    if device_time is not None:
        late = now - device_time
        if late > timedelta(minutes=rules.late_entry_minutes):
            minutes = int(late.total_seconds() // 60)
            found.append(
                new(
                    "late_entry",
                    f"{target.name} reached the record {minutes} minutes after it was made "
                    f"(the tolerance is {rules.late_entry_minutes} minutes).",
                )
            )
    return found


async def raise_all(
    ctx: TenantContext,
    batch_id: UUID,
    number: str,
    found: list[NewException],
    entry_id: UUID | None = None,
) -> list[ExceptionRow]:
    """Write the exceptions, each with its audit event, in the open unit of work."""
    raised = []
    for new in found:
        if entry_id is not None and new.entry_id is None:
            new = replace(new, entry_id=entry_id)
        row = await insert_exception(ctx.tenant_id, batch_id, new, ctx.user_id)
        await audit.record(
            ctx,
            "batch.exception_raised",
            "batch",
            batch_id,
            new={
                "number": number,
                "exception_id": str(row.id),
                "kind": row.kind,
                "severity": row.severity,
                "step": row.step,
                "phase": row.phase,
                "field": row.field,
                "entry_id": str(row.entry_id) if row.entry_id else None,
                "message": row.message,
            },
        )
        raised.append(row)
    return raised
