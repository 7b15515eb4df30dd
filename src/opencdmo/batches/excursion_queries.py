"""Excursion data access: the evaluation cursor of each signal of a unit bound to a batch
step (``excursion_cursors``), the excursions raised (``batch_excursions``), and the bindings
still to evaluate. Each function runs in the transaction open in its context."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from opencdmo.batches.tables import BatchExcursion, ExcursionCursor
from opencdmo.db import sql
from opencdmo.db.clock import database_now
from opencdmo.db.rows import columns, typed


@dataclass(frozen=True)
class CursorRow:
    """How far one signal of a binding is evaluated (``cursor_at``: the source time of the
    last sample taken into account), and the excursion open there, if any."""

    binding_id: UUID
    signal: str
    cursor_at: datetime | None
    open_phase: str | None
    open_started_at: datetime | None
    open_extreme: float | None
    open_exception_id: UUID | None


_CURSOR = columns(ExcursionCursor, CursorRow)


async def lock_cursor(tenant_id: UUID, binding_id: UUID, signal: str) -> CursorRow:
    """The cursor of the signal of the binding (made at its start if new), row-locked until
    the transaction ends: one evaluator at a time advances it."""
    await ExcursionCursor.insert(
        ExcursionCursor(tenant_id=tenant_id, binding_id=binding_id, signal=signal)
    ).on_conflict(action="DO NOTHING")
    raw = await (
        ExcursionCursor.select(*_CURSOR)
        .where((ExcursionCursor.binding_id == binding_id) & (ExcursionCursor.signal == signal))
        .lock_rows("UPDATE")
        .first()
    )
    assert raw is not None
    return typed(CursorRow, raw)


async def save_cursor(row: CursorRow) -> None:
    values: dict[Any, Any] = {
        getattr(ExcursionCursor, f.name): getattr(row, f.name)
        for f in fields(CursorRow)
        if f.name not in ("binding_id", "signal")
    }
    values[ExcursionCursor.updated_at] = database_now()
    await ExcursionCursor.update(values).where(
        (ExcursionCursor.binding_id == row.binding_id) & (ExcursionCursor.signal == row.signal)
    )


# Raw SQL: the bindings still to evaluate - open, or released with a signal not evaluated to
# its release (EXISTS and NOT EXISTS over the cursors, which Piccolo cannot say) - of units
# with an OPC UA description, optionally of one batch.
_TO_EVALUATE = """
SELECT b.id FROM batch_equipment b JOIN equipment e ON e.id = b.equipment_id
WHERE e.opcua ? 'signals'
  AND ($1::uuid IS NULL OR b.batch_id = $1)
  AND (b.released_at IS NULL
       OR NOT EXISTS (SELECT 1 FROM excursion_cursors c WHERE c.binding_id = b.id)
       OR EXISTS (SELECT 1 FROM excursion_cursors c WHERE c.binding_id = b.id
                  AND (c.cursor_at IS NULL OR c.cursor_at < b.released_at)))
ORDER BY b.bound_at, b.id
"""


async def bindings_to_evaluate(batch_id: UUID | None = None) -> list[UUID]:
    rows = await sql.connection().fetch(_TO_EVALUATE, batch_id)
    return [r["id"] for r in rows]


@dataclass(frozen=True)
class ExcursionRow:
    id: UUID
    exception_id: UUID
    batch_id: UUID
    binding_id: UUID
    equipment_id: UUID
    step: str
    phase: str
    signal: str
    unit: str | None
    low: float | None
    high: float | None
    started_at: datetime
    ended_at: datetime | None
    extreme: float
    raised_at: datetime

    @property
    def seconds(self) -> float | None:
        """How long it lasted (None: it is ongoing)."""
        return None if self.ended_at is None else (self.ended_at - self.started_at).total_seconds()

    @property
    def lasted(self) -> str:
        """How long it lasted as people say it (``2 min 10 s``; empty: it is ongoing)."""
        if self.seconds is None:
            return ""
        minutes, seconds = divmod(round(self.seconds), 60)
        hours, minutes = divmod(minutes, 60)
        parts = [(hours, "h"), (minutes, "min"), (seconds, "s")]
        return " ".join(f"{n} {name}" for n, name in parts if n) or "0 s"


_EXCURSION = columns(BatchExcursion, ExcursionRow)


@dataclass(frozen=True)
class NewExcursion:
    exception_id: UUID
    batch_id: UUID
    binding_id: UUID
    equipment_id: UUID
    step: str
    phase: str
    signal: str
    unit: str | None
    low: float | None
    high: float | None
    started_at: datetime
    ended_at: datetime | None
    extreme: float


async def insert_excursion(tenant_id: UUID, new: NewExcursion) -> ExcursionRow:
    rows = await BatchExcursion.insert(
        BatchExcursion(
            tenant_id=tenant_id,
            raised_at=database_now(),
            **{f.name: getattr(new, f.name) for f in fields(NewExcursion)},
        )
    ).returning(*_EXCURSION)
    return typed(ExcursionRow, rows[0])


async def end_excursion(exception_id: UUID, ended_at: datetime, extreme: float) -> ExcursionRow:
    rows = await (
        BatchExcursion.update({BatchExcursion.ended_at: ended_at, BatchExcursion.extreme: extreme})
        .where(BatchExcursion.exception_id == exception_id)
        .returning(*_EXCURSION)
    )
    return typed(ExcursionRow, rows[0])


async def excursions(batch_id: UUID) -> list[ExcursionRow]:
    rows = (
        await BatchExcursion.select(*_EXCURSION)
        .where(BatchExcursion.batch_id == batch_id)
        .order_by(BatchExcursion.started_at)
    )
    return [typed(ExcursionRow, r) for r in rows]
