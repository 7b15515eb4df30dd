"""A batch's setpoint writes: typed rows, read and written in the transaction open in the
context (row-level security keeps every query inside the tenant)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from opencdmo.db.clock import database_now
from opencdmo.db.rows import columns, typed
from opencdmo.equipment.tables import SetpointWrite


@dataclass(frozen=True)
class WriteRow:
    id: UUID
    batch_id: UUID
    step: str
    phase: str
    equipment_id: UUID
    idempotency_key: str
    requested: Any  # JSON: the setpoints confirmed
    results: Any  # JSON: each value's outcome, once finished
    outcome: str | None  # ok, failed, abandoned; None while the write is under way
    written_by: UUID
    started_at: datetime
    finished_at: datetime | None

    @property
    def confirmed(self) -> list[dict[str, Any]]:
        return _decoded(self.requested) or []

    @property
    def outcomes(self) -> list[dict[str, Any]]:
        return _decoded(self.results) or []


def _decoded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


_COLUMNS = columns(SetpointWrite, WriteRow)


@dataclass(frozen=True)
class NewWrite:
    batch_id: UUID
    step: str
    phase: str
    equipment_id: UUID
    idempotency_key: str
    requested: list[dict[str, Any]]


async def claim(tenant_id: UUID, new: NewWrite, by: UUID) -> UUID:
    rows = await SetpointWrite.insert(
        SetpointWrite(
            tenant_id=tenant_id,
            batch_id=new.batch_id,
            step=new.step,
            phase=new.phase,
            equipment_id=new.equipment_id,
            idempotency_key=new.idempotency_key,
            requested=json.dumps(new.requested),
            written_by=by,
        )
    ).returning(SetpointWrite.id)
    found: UUID = rows[0]["id"]
    return found


async def by_key(batch_id: UUID, key: str) -> WriteRow | None:
    raw = await (
        SetpointWrite.select(*_COLUMNS)
        .where((SetpointWrite.batch_id == batch_id) & (SetpointWrite.idempotency_key == key))
        .first()
    )
    return None if raw is None else typed(WriteRow, raw)


async def one(write_id: UUID, *, lock: bool = False) -> WriteRow:
    query = SetpointWrite.select(*_COLUMNS).where(SetpointWrite.id == write_id)
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    assert raw is not None, "a claimed write is never deleted"
    return typed(WriteRow, raw)


async def open_on(equipment_id: UUID, *, lock: bool = False) -> WriteRow | None:
    """The write under way on the unit, if any."""
    query = SetpointWrite.select(*_COLUMNS).where(
        (SetpointWrite.equipment_id == equipment_id) & SetpointWrite.finished_at.is_null()
    )
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    return None if raw is None else typed(WriteRow, raw)


async def of_batch(batch_id: UUID) -> list[WriteRow]:
    rows = await (
        SetpointWrite.select(*_COLUMNS)
        .where(SetpointWrite.batch_id == batch_id)
        .order_by(SetpointWrite.started_at)
    )
    return [typed(WriteRow, r) for r in rows]


async def finish(write_id: UUID, outcome: str, results: list[dict[str, Any]]) -> bool:
    """Record the outcome of a write still under way (False: it was finished already)."""
    rows = await (
        SetpointWrite.update(
            {
                SetpointWrite.outcome: outcome,
                SetpointWrite.results: json.dumps(results),
                SetpointWrite.finished_at: database_now(),
            }
        )
        .where((SetpointWrite.id == write_id) & SetpointWrite.finished_at.is_null())
        .returning(SetpointWrite.id)
    )
    return bool(rows)
