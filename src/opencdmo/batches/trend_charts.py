"""The trend charts of a batch's pages: for each unit a step holds or held, its signals over
a phase of the step, with the phase's limits of each signal and the excursions to shade.

- The run page: per step, each unit bound to it, over the step's current phase (the one
  running, else the last one started, else from when the unit was bound), live while both
  the phase and the binding go on.
- The review page: per unit and phase it was bound during, that phase's span, not live.

A signal's limits in a phase (``bands``): the ``limits`` of a data-capture field of the phase
whose ``equipment_signal`` names the signal; else the normal and proven acceptable ranges of
a phase parameter whose key is the signal's key. Excursions: the batch's excursions of the
unit's binding and the signal, to now while they go on (``spans_of``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from opencdmo.access.service import authorize, can
from opencdmo.batches import excursion_queries, queries, states
from opencdmo.batches import execution_queries as xq
from opencdmo.batches.excursion_queries import ExcursionRow
from opencdmo.batches.execution_queries import PhaseRow
from opencdmo.batches.plan import PlannedPhase
from opencdmo.db.tx import read_view
from opencdmo.equipment import queries as eq
from opencdmo.equipment.queries import BindingRow, UnitRow
from opencdmo.equipment.trend_config import Band, Chart, Group, Span, signals_of
from opencdmo.equipment.trend_stream import LIMITS
from opencdmo.hub.model import Phase
from opencdmo.scope import TenantContext


def bands_of(phase: Phase | None, signal: str) -> tuple[Band, ...]:
    """The phase's limits of the signal (see the module)."""
    if phase is None:
        return ()
    for capture in phase.data_capture:
        named = capture.equipment_signal
        if named is not None and named.signal == signal and capture.limits is not None:
            return (_band("limits", capture.limits.low, capture.limits.high),)
    for parameter in phase.parameters:
        if parameter.key != signal:
            continue
        found = []
        if parameter.proven_acceptable_range is not None:
            par = parameter.proven_acceptable_range
            found.append(_band("proven", par.low, par.high))
        if parameter.normal_range is not None:
            nor = parameter.normal_range
            found.append(_band("normal", nor.low, nor.high))
        return tuple(b for b in found if b.low is not None or b.high is not None)
    return ()


def _band(kind: str, low: Any, high: Any) -> Band:
    return Band(kind, None if low is None else float(low), None if high is None else float(high))


def spans_of(
    excursions: Iterable[ExcursionRow], binding: UUID, signal: str, now: datetime
) -> tuple[Span, ...]:
    """The excursions of a signal of a unit bound to a step (one binding): from their start to
    their end, or to ``now`` while they go on."""
    return tuple(
        Span(e.started_at, e.ended_at or now)
        for e in excursions
        if e.binding_id == binding and e.signal == signal
    )


@dataclass(frozen=True)
class Sources:
    """What the charts of a batch are made from, read in one view."""

    slug: str
    planned: list[PlannedPhase]
    phases: dict[tuple[str, str], PhaseRow]
    bindings: list[BindingRow]
    units: dict[UUID, UnitRow]
    excursions: list[ExcursionRow]
    now: datetime


async def _read(ctx: TenantContext, batch_id: UUID) -> Sources | None:
    """None: the reader may not read equipment (the charts' stream would refuse them)."""
    async with read_view(ctx):
        batch = await queries.batch(batch_id)
        await authorize(ctx, "batches", "read", site_id=batch.site_id)
        if not await can(ctx, "equipment", "read"):
            return None
        frozen = await queries.control_recipe(batch_id)
        bindings = await eq.bindings(batch_id)
        return Sources(
            ctx.slug,
            frozen.phases,
            {(p.step, p.phase): p for p in await xq.phases(batch_id)},
            bindings,
            await eq.units_by_id([b.equipment_id for b in bindings]),
            await excursion_queries.excursions(batch_id),
            await eq.now(),
        )


def _groups(
    src: Sources,
    binding: BindingRow,
    planned: PlannedPhase | None,
    start: datetime,
    end: datetime | None,
    key: str,
    title: str,
) -> list[Group]:
    unit = src.units[binding.equipment_id]
    content = planned.content if planned is not None else None
    charts = [
        Chart(
            signal,
            unit_code,
            bands_of(content, signal),
            tuple(
                s
                for s in spans_of(src.excursions, binding.id, signal, src.now)
                if s.end >= start and (end is None or s.start <= end)
            ),
        )
        for signal, unit_code in signals_of(unit).items()
    ]
    size = LIMITS.signals
    return [
        Group(
            f"trends-{key}-{i // size + 1}",
            title,
            src.slug,
            unit.code,
            tuple(charts[i : i + size]),
            start,
            end,
        )
        for i in range(0, len(charts), size)
    ]


def _current(src: Sources, step: str) -> tuple[PlannedPhase | None, PhaseRow | None]:
    """The step's phase to show: the one under way, else the last started, else its first."""
    mine = [p for p in src.planned if p.step == step]
    rows = [(p, src.phases.get((step, p.phase))) for p in mine]
    started = [(p, r) for p, r in rows if r is not None and r.started_at is not None]
    for p, r in started:
        if r is not None and r.status not in states.FINAL:
            return p, r
    if started:
        return started[-1]
    return (mine[0], None) if mine else (None, None)


async def at_the_bench(ctx: TenantContext, batch_id: UUID) -> dict[str, list[Group]]:
    """The run page's charts, by step (see the module)."""
    src = await _read(ctx, batch_id)
    if src is None:
        return {}
    found: dict[str, list[Group]] = {}
    for binding in src.bindings:
        planned, row = _current(src, binding.step)
        start = binding.bound_at
        if row is not None and row.started_at is not None:
            start = max(start, row.started_at)
        ends = [t for t in (binding.released_at, row.ended_at if row else None) if t]
        end = min(ends) if ends else None
        if end is not None and end < start:
            continue  # the phase ended before the unit came: nothing of it to show
        key = f"{binding.step}-{binding.id.hex[:8]}"
        code = src.units[binding.equipment_id].code
        title = f"{code} during {planned.phase_name}" if planned else code
        found.setdefault(binding.step, []).extend(
            _groups(src, binding, planned, start, end, key, title)
        )
    return found


async def for_review(ctx: TenantContext, batch_id: UUID) -> list[Group]:
    """The review page's charts: each unit over each phase of its step it was bound during,
    the phase's span (up to now for one still under way), not live."""
    src = await _read(ctx, batch_id)
    if src is None:
        return []
    found: list[Group] = []
    for binding in src.bindings:
        for planned in (p for p in src.planned if p.step == binding.step):
            row = src.phases.get((planned.step, planned.phase))
            if row is None or row.started_at is None:
                continue
            start = max(row.started_at, binding.bound_at)
            ends = [t for t in (row.ended_at, binding.released_at) if t is not None]
            end = min([*ends, src.now])
            if end <= start:
                continue
            key = f"{binding.step}-{planned.phase}-{binding.id.hex[:8]}"
            title = f"{src.units[binding.equipment_id].code} during {planned.label}"
            found += _groups(src, binding, planned, start, end.astimezone(UTC), key, title)
    return found
