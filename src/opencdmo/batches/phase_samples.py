"""The equipment samples that belong to a phase of a batch: those of the units bound to the
phase's step, of each signal, with a source time from the later of the phase's start and the
unit's binding to the earlier of the phase's end (or now) and the unit's release. Samples
carry no batch: they belong to a phase by time alone.

Only good samples count (a number, and an OPC UA status that is not Bad). Each function
runs in the transaction open in its context; row-level security keeps it in the tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from piccolo.query.functions.aggregate import Avg, Count, Max, Min

from opencdmo.batches import execution_queries as xq
from opencdmo.batches.execution_queries import PhaseRow
from opencdmo.equipment import queries as eq
from opencdmo.equipment.queries import BindingRow, UnitRow
from opencdmo.equipment.tables import EquipmentSample

BAD = 0x80000000  # an OPC UA status code with this bit set is Bad


@dataclass(frozen=True)
class Sample:
    source_time: datetime
    value: float


@dataclass(frozen=True)
class Window:
    """Where one unit's samples belong to one phase: ``start`` to ``end`` (None: now)."""

    binding: BindingRow
    unit: UnitRow
    phase: PhaseRow
    start: datetime
    end: datetime | None

    def signal_unit(self, signal: str) -> str | None:
        """The unit of measure of the signal in the unit's OPC UA description (None: not
        described, or without a unit)."""
        spec = ((self.unit.connection or {}).get("signals") or {}).get(signal)
        return str(spec["unit"]) if isinstance(spec, dict) and spec.get("unit") else None

    def has_signal(self, signal: str) -> bool:
        return signal in ((self.unit.connection or {}).get("signals") or {})


def window(binding: BindingRow, unit: UnitRow, phase: PhaseRow) -> Window | None:
    """The part of the phase the unit was bound for (None: the phase has not started, or the
    unit was not bound while it ran)."""
    if phase.started_at is None:
        return None
    start = max(phase.started_at, binding.bound_at)
    ends = [t for t in (phase.ended_at, binding.released_at) if t is not None]
    end = min(ends) if ends else None
    if end is not None and end < start:
        return None
    return Window(binding, unit, phase, start, end)


async def windows(batch_id: UUID, step: str, phase: str) -> list[Window]:
    """The windows of every unit bound to the step during the phase, latest bound first."""
    found = await xq.phase(batch_id, step, phase)
    bound = [b for b in await eq.bindings(batch_id) if b.step == step]
    units = await eq.units_by_id([b.equipment_id for b in bound])
    made = [window(b, units[b.equipment_id], found) for b in bound]
    return sorted((w for w in made if w), key=lambda w: w.binding.bound_at, reverse=True)


def _in(win: Window, signal: str, after: datetime | None = None) -> Any:
    """The condition of the good samples of one signal of the window (after ``after``)."""
    where = (
        (EquipmentSample.equipment_id == win.unit.id)
        & (EquipmentSample.signal == signal)
        & (EquipmentSample.source_time >= win.start)
        & (EquipmentSample.status_code < BAD)
        & EquipmentSample.value.is_not_null()
    )
    if after is not None:
        where &= EquipmentSample.source_time > after
    if win.end is not None:
        where &= EquipmentSample.source_time <= win.end
    return where


async def samples(
    win: Window, signal: str, after: datetime | None = None, limit: int | None = None
) -> list[Sample]:
    """The window's good samples of the signal in source time order (after ``after``)."""
    query = (
        EquipmentSample.select(EquipmentSample.source_time, EquipmentSample.value)
        .where(_in(win, signal, after))
        .order_by(EquipmentSample.source_time)
    )
    if limit is not None:
        query = query.limit(limit)
    return [Sample(r["source_time"], r["value"]) for r in await query]


async def latest(win: Window, signal: str) -> Sample | None:
    """The window's newest good sample of the signal."""
    raw = await (
        EquipmentSample.select(EquipmentSample.source_time, EquipmentSample.value)
        .where(_in(win, signal))
        .order_by(EquipmentSample.source_time, ascending=False)
        .first()
    )
    return None if raw is None else Sample(raw["source_time"], raw["value"])


@dataclass(frozen=True)
class Summary:
    """The mean, minimum and maximum of the window's good samples of a signal."""

    count: int
    first: datetime | None
    last: datetime | None
    mean: float | None
    low: float | None
    high: float | None


async def summary(win: Window, signal: str) -> Summary:
    rows = await EquipmentSample.select(
        Count(EquipmentSample.value, alias="n"),
        Min(EquipmentSample.source_time, alias="first"),
        Max(EquipmentSample.source_time, alias="last"),
        Avg(EquipmentSample.value, alias="mean"),
        Min(EquipmentSample.value, alias="low"),
        Max(EquipmentSample.value, alias="high"),
    ).where(_in(win, signal))
    r = rows[0]
    mean = None if r["mean"] is None else float(r["mean"])
    return Summary(int(r["n"]), r["first"], r["last"], mean, r["low"], r["high"])
