"""Batch record entries: every read and write of ``batch_entries``, as typed rows.

Each function runs in the transaction open in its context; row-level security keeps every
query inside the tenant. The table is append-only: entries are inserted and read, never
changed (a correction is a new entry that supersedes an earlier one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from opencdmo.batches.tables import BatchEntry
from opencdmo.db import sql


@dataclass(frozen=True)
class NewEntry:
    """What an entry is made of (who and when are the command's actor and the database's
    clock)."""

    batch_id: UUID
    step: str
    phase: str
    field: str
    value: Any
    unit: str | None
    source: str
    entered_by: UUID
    device_time: datetime | None
    idempotency_key: str
    supersedes: UUID | None
    reason: str | None
    check_result: str
    message: str
    equipment_source: dict[str, Any] | None = None  # the samples an equipment value is from


@dataclass(frozen=True)
class EntryRow:
    """One entry as stored."""

    id: UUID
    batch_id: UUID
    step: str
    phase: str
    field: str
    value: Any
    unit: str | None
    source: str
    entered_by: UUID
    entered_at: datetime
    device_time: datetime | None
    idempotency_key: str
    supersedes: UUID | None
    reason: str | None
    check_result: str
    message: str
    equipment_source: dict[str, Any] | None = None


_NAMES = tuple(f.name for f in fields(EntryRow))
_ROW = tuple(getattr(BatchEntry, name) for name in _NAMES)


def _row(raw: dict[str, Any]) -> EntryRow:
    values = {name: raw[name] for name in _NAMES}  # a batch record reads thousands
    values["value"] = json.loads(values["value"])
    if values["equipment_source"] is not None:
        values["equipment_source"] = json.loads(values["equipment_source"])
    return EntryRow(**values)


# Raw SQL: the entries' hot path. Measured: Piccolo builds this insert in 104-150 us a call
# (2,000 builds, no round trip) to send the same SQL as this fixed string; the database gives
# the id and the time (``entered_at``: clock_timestamp()), as the migration declares.
_NEW = tuple(f.name for f in fields(NewEntry))
_JSON = ("value", "equipment_source")
_PLACES = (f"${n}::jsonb" if name in _JSON else f"${n}" for n, name in enumerate(_NEW, 2))
_INSERT = f"""
INSERT INTO batch_entries (tenant_id, {", ".join(_NEW)})
VALUES ($1, {", ".join(_PLACES)})
ON CONFLICT (tenant_id, batch_id, idempotency_key) DO NOTHING
RETURNING {", ".join(_NAMES)}
"""


def _json(name: str, value: Any) -> Any:
    if name == "value" or (name in _JSON and value is not None):
        return json.dumps(value)
    return value


async def insert(tenant_id: UUID, new: NewEntry) -> EntryRow | None:
    """Insert the entry unless one with its idempotency key exists (a concurrent retry that
    got there first): the entry this call inserted, or None."""
    values = [_json(n, getattr(new, n)) for n in _NEW]
    raw = await sql.connection().fetchrow(_INSERT, tenant_id, *values)
    return _row(raw) if raw is not None else None


async def by_key(batch_id: UUID, idempotency_key: str) -> EntryRow | None:
    raw = await (
        BatchEntry.select(*_ROW)
        .where(BatchEntry.batch_id == batch_id)
        .where(BatchEntry.idempotency_key == idempotency_key)
        .first()
    )
    return _row(raw) if raw is not None else None


@dataclass(frozen=True)
class EntryReads:
    """What an entry reads once its batch is locked: its phase's state (None: no such phase),
    the entry made with its key already (None: none), and its field's entries, oldest first."""

    phase_status: str | None
    first: EntryRow | None
    history: list[EntryRow]


# Raw SQL: the phase's state and the entries in one round trip (a scalar subquery and a
# LATERAL join, which Piccolo cannot say), on the entries' hot path. Measured: Piccolo built
# the two selects in 56-76 and 142-250 us a call (2,000 builds, no round trip). One row with
# NULL entry columns when the key and the field have no entries. Two selects, each on its
# own index (the key's and the field's), not one with OR, so that the plan never scans the
# batch's entries; an entry of this key and field comes from both and is kept once.
_FOR_ENTRY = f"""
SELECT ph.status AS phase_status, {", ".join(f"e.{name}" for name in _NAMES)}
FROM (
    SELECT (SELECT status FROM batch_phases WHERE batch_id = $1 AND step = $2 AND phase = $3)
        AS status
) ph
LEFT JOIN LATERAL (
    SELECT * FROM batch_entries WHERE batch_id = $1 AND idempotency_key = $4
    UNION ALL
    SELECT * FROM batch_entries WHERE batch_id = $1 AND step = $2 AND phase = $3 AND field = $5
) e ON true
ORDER BY e.entered_at, e.id
"""


async def for_entry(
    batch_id: UUID, idempotency_key: str, step: str, phase: str, field: str
) -> EntryReads:
    """In one query: the phase's state, the entry made with this key and the field's entries."""
    rows = await sql.connection().fetch(_FOR_ENTRY, batch_id, step, phase, idempotency_key, field)
    found = list({r["id"]: _row(r) for r in rows if r["id"] is not None}.values())
    first = next((e for e in found if e.idempotency_key == idempotency_key), None)
    of_field = [e for e in found if (e.step, e.phase, e.field) == (step, phase, field)]
    status = rows[0]["phase_status"]
    return EntryReads(None if status is None else str(status), first, of_field)


async def of_batch(batch_id: UUID) -> list[EntryRow]:
    """Every entry of the batch, oldest first."""
    rows = await (
        BatchEntry.select(*_ROW)
        .where(BatchEntry.batch_id == batch_id)
        .order_by(BatchEntry.entered_at)
        .order_by(BatchEntry.id)
    )
    return [_row(r) for r in rows]


def current(entries: list[EntryRow]) -> EntryRow | None:
    """The newest entry no other entry supersedes (the field's current value)."""
    superseded = {e.supersedes for e in entries if e.supersedes is not None}
    live = [e for e in entries if e.id not in superseded]
    return live[-1] if live else None


async def of_phase(batch_id: UUID, step: str, phase: str) -> list[EntryRow]:
    """The phase's entries, oldest first."""
    rows = await (
        BatchEntry.select(*_ROW)
        .where(BatchEntry.batch_id == batch_id)
        .where(BatchEntry.step == step)
        .where(BatchEntry.phase == phase)
        .order_by(BatchEntry.entered_at)
        .order_by(BatchEntry.id)
    )
    return [_row(r) for r in rows]


def current_values(entries: list[EntryRow]) -> dict[str, EntryRow]:
    """Each field's current entry, by field key (entries of one phase)."""
    by_field: dict[str, list[EntryRow]] = {}
    for entry in entries:
        by_field.setdefault(entry.field, []).append(entry)
    found = {key: current(rows) for key, rows in by_field.items()}
    return {key: row for key, row in found.items() if row is not None}


async def last_enterers(batch_ids: list[UUID]) -> dict[tuple[UUID, str, str], UUID]:
    """Who made the newest entry of each phase of these batches, by (batch, step, phase)."""
    if not batch_ids:
        return {}
    rows = (
        await BatchEntry.select(
            BatchEntry.batch_id, BatchEntry.step, BatchEntry.phase, BatchEntry.entered_by
        )
        .where(BatchEntry.batch_id.is_in(batch_ids))
        .order_by(BatchEntry.entered_at)
    )
    return {(r["batch_id"], r["step"], r["phase"]): r["entered_by"] for r in rows}
