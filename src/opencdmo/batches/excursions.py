"""Excursions: a signal of a unit bound to a batch step outside the limits of the phase
running for longer than the tenant's debounce (``batch_exceptions.
excursion_debounce_seconds``) raises ONE ``equipment_excursion`` exception.

The limits of a signal in a phase: those of a data-capture field of the phase whose
``equipment_signal`` names the unit's class and the signal; else the proven acceptable range
of a parameter of the phase whose key is the signal's. They are given in the field's unit and
compared in the signal's (converted when they differ).

Detection reads STORED samples (so samples stored late, from a replay or a backfill, count
when their source time is past the cursor), incrementally: each (binding, signal) has a
cursor (``excursion_cursors``) with the source time evaluated to and the excursion open there.
``evaluate`` advances every cursor of the tenant, each in its own unit of work that locks the
cursor row first (``SELECT ... FOR UPDATE``): two evaluators at once never raise the same
excursion twice. The capture worker runs it every few seconds, and a phase command that ends
a phase runs it for the batch after its commit (an excursion open at the phase's end ends
there).

An excursion is raised as soon as it has lasted longer than the debounce, while it goes on
(its end empty: the operator sees it at the bench while it can still be acted on); when it
ends (a sample back inside the limits, or the phase's end) its end and extreme value are set
once, in an audited update. An excursion that ends within the debounce raises nothing.
Everything runs as the system actor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from opencdmo import quantities, units
from opencdmo.audit import service as audit
from opencdmo.batches import exceptions, queries
from opencdmo.batches import excursion_queries as exq
from opencdmo.batches import execution_queries as xq
from opencdmo.batches import phase_samples as ps
from opencdmo.batches.excursion_queries import CursorRow, NewExcursion
from opencdmo.batches.execution_queries import NewException, PhaseRow
from opencdmo.db.tx import read_view, unit_of_work
from opencdmo.equipment import queries as eq
from opencdmo.equipment.queries import BindingRow, UnitRow
from opencdmo.errors import ValidationFailed
from opencdmo.hub.model import UnitOperation
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext
from opencdmo.tenancy import service as tenancy
from opencdmo.tenancy.batch_rules import exception_rules

logger = logging.getLogger(__name__)

KIND = "equipment_excursion"
CHUNK = 5000  # samples read at a time; a longer backlog is taken over several evaluations


@dataclass(frozen=True)
class Limits:
    """The limits of a signal in a phase, in the signal's unit, and the field they are of."""

    low: float | None
    high: float | None
    unit: str | None
    field: str

    def beyond(self, value: float) -> float:
        """How far outside the limits the value is (0: inside)."""
        if self.low is not None and value < self.low:
            return self.low - value
        if self.high is not None and value > self.high:
            return value - self.high
        return 0.0

    def shown(self) -> str:
        return units.limits(self.low, self.high, self.unit)


def _convert(value: object, given: str | None, wanted: str | None) -> float | None:
    if value is None:
        return None
    if given is None or wanted is None or given == wanted:
        return float(str(value))
    return float(quantities.convert(Decimal(str(value)), given, wanted))


def limits_of(
    operation: UnitOperation, phase: str, unit: UnitRow, signal: str, signal_unit: str | None
) -> Limits | None:
    """The signal's limits in the phase (see the module); None: none apply."""
    found = next((p for p in operation.phases if p.key == phase), None)
    if found is None:
        return None
    for capture in found.data_capture:
        named = capture.equipment_signal
        ours = named and named.signal == signal and named.equipment_class == unit.class_slug
        if ours and capture.limits is not None:
            return _limits(
                capture.limits.low, capture.limits.high, capture.unit, signal_unit, capture.key
            )
    for parameter in found.parameters:
        par = parameter.proven_acceptable_range
        if parameter.key == signal and par is not None:
            return _limits(par.low, par.high, parameter.unit, signal_unit, parameter.key)
    return None


def _limits(
    low: object, high: object, unit: str | None, signal_unit: str | None, field: str
) -> Limits | None:
    if low is None and high is None:
        return None
    try:
        return Limits(
            _convert(low, unit, signal_unit),
            _convert(high, unit, signal_unit),
            signal_unit or unit,
            field,
        )
    except ValidationFailed:  # a signal in a unit the limits cannot be given in: not checked
        logger.warning("limits of %s in %s cannot be given in %s", field, unit, signal_unit)
        return None


# --- evaluation -------------------------------------------------------------------------------


async def evaluate(tenant_id: UUID, batch_id: UUID | None = None) -> int:
    """Advance the cursor of every signal of every unit bound to a batch step of the tenant
    (of one batch: ``batch_id``) over the samples stored since; how many exceptions it
    raised or ended."""
    meta = RequestMeta(request_id="excursions")
    ctx = await tenancy.internal_context(tenant_id, SYSTEM, meta)
    if ctx is None:
        return 0
    async with read_view(ctx):
        found = await exq.bindings_to_evaluate(batch_id)
    changed = 0
    for binding_id in found:
        changed += await _evaluate_binding(ctx, binding_id)
    return changed


async def evaluate_quietly(tenant_id: UUID, batch_id: UUID | None = None) -> None:
    """``evaluate``, its failure logged (a worker's round, or after a phase command's commit:
    the next evaluation takes it up again)."""
    try:
        await evaluate(tenant_id, batch_id)
    except Exception:
        logger.exception("evaluating excursions failed")


async def _evaluate_binding(ctx: TenantContext, binding_id: UUID) -> int:
    async with read_view(ctx):
        _, unit = await _binding(binding_id)
    signals = sorted(((unit.connection or {}).get("signals") or {}).keys())
    changed = 0
    for signal in signals:
        changed += await _advance(ctx, binding_id, signal)
    return changed


async def _binding(binding_id: UUID) -> tuple[BindingRow, UnitRow]:
    found = await eq.binding(binding_id)
    return found, await eq.unit(found.equipment_id)


@dataclass
class _Track:
    """One evaluation of one signal of one binding, in its unit of work."""

    ctx: TenantContext
    binding: BindingRow
    unit: UnitRow
    signal: str
    number: str
    debounce: timedelta
    severity: str
    now: datetime
    changed: int = 0


async def _advance(ctx: TenantContext, binding_id: UUID, signal: str) -> int:
    """One signal of one binding evaluated from its cursor, in one unit of work that locks
    the cursor first; how many exceptions it raised or ended."""
    async with unit_of_work(ctx):
        state = await exq.lock_cursor(ctx.tenant_id, binding_id, signal)
        binding, unit = await _binding(binding_id)
        frozen = await queries.control_recipe(binding.batch_id)
        rules = await exception_rules(ctx)
        track = _Track(
            ctx,
            binding,
            unit,
            signal,
            (await queries.batch(binding.batch_id)).number,
            timedelta(seconds=rules.excursion_debounce_seconds),
            rules.severity(KIND),
            await eq.now(),
        )
        phases = [p for p in await xq.phases(binding.batch_id) if p.step == binding.step]
        state = await _walk(track, state, frozen.operations.get(binding.step), phases)
        await exq.save_cursor(state)
        return track.changed


async def _walk(
    track: _Track, state: CursorRow, operation: UnitOperation | None, phases: list[PhaseRow]
) -> CursorRow:
    """The step's phases in the order they started, each over the part the unit was bound
    for; a released binding evaluated to its end has its cursor at its release."""
    phases = sorted(phases, key=lambda p: (p.started_at is None, p.started_at or track.now))
    complete = True
    for phase in phases:
        win = ps.window(track.binding, track.unit, phase)
        if win is None:
            continue
        limits = _phase_limits(operation, win, track.signal)
        if limits is None:  # nothing to evaluate against: done once the window ends
            complete = complete and win.end is not None and win.end <= track.now
            continue
        if state.cursor_at is not None and win.end is not None and win.end <= state.cursor_at:
            continue
        state, done = await _window(track, state, win, limits)
        complete = complete and done
        if not done:  # later phases overlap this one: its limits apply until it ends
            break
    released = track.binding.released_at
    if complete and released is not None:
        state = replace(state, cursor_at=max(state.cursor_at or released, released))
    return state


def _phase_limits(operation: UnitOperation | None, win: ps.Window, signal: str) -> Limits | None:
    if operation is None:
        return None
    return limits_of(operation, win.phase.phase, win.unit, signal, win.signal_unit(signal))


async def _window(
    track: _Track, state: CursorRow, win: ps.Window, limits: Limits
) -> tuple[CursorRow, bool]:
    """Take the window's samples past the cursor; (the cursor then, whether the window is
    done: it has ended and every sample of it is taken)."""
    found = await ps.samples(win, track.signal, after=state.cursor_at, limit=CHUNK)
    for sample in found:
        state = await _sample(track, state, win, limits, sample)
    if len(found) == CHUNK:
        return state, False
    if win.end is not None and win.end <= track.now:
        if state.open_started_at is not None:
            state = await _close(track, state, win, limits, win.end)
        return replace(state, cursor_at=max(state.cursor_at or win.end, win.end)), True
    if state.open_started_at is not None:
        state = await _ongoing(track, state, win, limits)
    return state, False


async def _sample(
    track: _Track, state: CursorRow, win: ps.Window, limits: Limits, sample: ps.Sample
) -> CursorRow:
    state = replace(state, cursor_at=sample.source_time)
    outside = limits.beyond(sample.value) > 0
    if outside and state.open_started_at is None:
        return replace(
            state,
            open_phase=win.phase.phase,
            open_started_at=sample.source_time,
            open_extreme=sample.value,
        )
    if outside:
        assert state.open_extreme is not None
        if limits.beyond(sample.value) > limits.beyond(state.open_extreme):
            state = replace(state, open_extreme=sample.value)
        return state
    if state.open_started_at is not None:
        return await _close(track, state, win, limits, sample.source_time)
    return state


def _closed(state: CursorRow) -> CursorRow:
    return replace(
        state, open_phase=None, open_started_at=None, open_extreme=None, open_exception_id=None
    )


async def _close(
    track: _Track, state: CursorRow, win: ps.Window, limits: Limits, end: datetime
) -> CursorRow:
    """The open excursion ends at ``end``: raised now if it lasted longer than the debounce
    (ended), or its raised exception given its end and extreme."""
    assert state.open_started_at is not None
    assert state.open_extreme is not None
    if state.open_exception_id is not None:
        row = await exq.end_excursion(state.open_exception_id, end, state.open_extreme)
        await audit.record(
            track.ctx,
            "batch.excursion_ended",
            "batch",
            track.binding.batch_id,
            old={"ended_at": None},
            new={
                "number": track.number,
                "exception_id": str(row.exception_id),
                "code": track.unit.code,
                "signal": track.signal,
                "step": row.step,
                "phase": row.phase,
                "started_at": row.started_at.isoformat(),
                "ended_at": end.isoformat(),
                "extreme": row.extreme,
                "unit": row.unit,
                "seconds": row.seconds,
            },
        )
        track.changed += 1
    elif end - state.open_started_at > track.debounce:
        await _raise(track, state, win, limits, end)
    return _closed(state)


async def _ongoing(track: _Track, state: CursorRow, win: ps.Window, limits: Limits) -> CursorRow:
    """The open excursion goes on: raised once it has lasted longer than the debounce."""
    assert state.open_started_at is not None
    if state.open_exception_id is None and track.now - state.open_started_at > track.debounce:
        exception_id = await _raise(track, state, win, limits, None)
        return replace(state, open_exception_id=exception_id)
    return state


def _message(track: _Track, state: CursorRow, limits: Limits, end: datetime | None) -> str:
    assert state.open_started_at is not None
    start = f"{state.open_started_at:%Y-%m-%d %H:%M:%S} UTC"
    said = f"{track.unit.code} {track.signal} outside {limits.shown()} from {start}"
    if end is None:
        seconds = int(track.debounce.total_seconds())
        return f"{said}, ongoing (longer than {seconds} s)."
    lasted = int((end - state.open_started_at).total_seconds())
    extreme = units.quantity(state.open_extreme, limits.unit)
    return f"{said} to {end:%H:%M:%S} UTC ({lasted} s); extreme {extreme}."


async def _raise(
    track: _Track, state: CursorRow, win: ps.Window, limits: Limits, end: datetime | None
) -> UUID:
    assert state.open_started_at is not None
    assert state.open_extreme is not None
    new = NewException(
        KIND,
        track.severity,
        _message(track, state, limits, end),
        track.binding.step,
        win.phase.phase,
        limits.field,
    )
    ctx = track.ctx
    (raised,) = await exceptions.raise_all(ctx, track.binding.batch_id, track.number, [new])
    row = await exq.insert_excursion(
        ctx.tenant_id,
        NewExcursion(
            raised.id,
            track.binding.batch_id,
            track.binding.id,
            track.unit.id,
            track.binding.step,
            win.phase.phase,
            track.signal,
            limits.unit,
            limits.low,
            limits.high,
            state.open_started_at,
            end,
            state.open_extreme,
        ),
    )
    await audit.record(
        ctx,
        "batch.excursion_raised",
        "batch",
        track.binding.batch_id,
        new={
            "number": track.number,
            "exception_id": str(raised.id),
            "excursion_id": str(row.id),
            "code": track.unit.code,
            "signal": track.signal,
            "step": row.step,
            "phase": row.phase,
            "low": row.low,
            "high": row.high,
            "unit": row.unit,
            "started_at": row.started_at.isoformat(),
            "ended_at": end.isoformat() if end else None,
            "extreme": row.extreme,
        },
    )
    track.changed += 1
    return raised.id
