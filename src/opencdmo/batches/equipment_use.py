"""Equipment in a batch: the operator scans or picks the unit for a step, which binds it to
the step (``batch_equipment``) and marks it in use until the step's last phase is done or the
batch ends (``equipment_release`` frees it and writes its logbook).

Binding a unit checks, on the locked batch and unit, at the database's time:

- a unit another batch step holds is always refused (a 409);
- its class is one the step allows (the class the recipe bound the step to, or one of its
  unit operation's ``equipment_classes``), it is at the batch's site, its status is
  available, its qualification and calibration are not overdue and its cleaning is still
  valid; any of these that fails is refused, or raises an ``equipment_not_ready`` exception
  when the tenant's manifest gives that kind a severity (``batch_exceptions.severities``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.batches import exceptions, queries, states
from opencdmo.batches import execution_queries as xq
from opencdmo.batches.equipment_release import step_name
from opencdmo.batches.execution import actor, running
from opencdmo.batches.execution_queries import NewException
from opencdmo.batches.queries import ControlRecipeRow
from opencdmo.db.tx import read_view, unit_of_work
from opencdmo.equipment import queries as eq
from opencdmo.equipment.queries import BindingRow, UnitRow
from opencdmo.equipment.service import lookup
from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.inventory.service import today
from opencdmo.scope import TenantContext
from opencdmo.tenancy.batch_rules import ExceptionRules, exception_rules

KIND = "equipment_not_ready"


def allowed_classes(frozen: ControlRecipeRow, step: str) -> tuple[str, ...]:
    """The classes a step may use: the one the recipe bound it to, or its unit operation's."""
    for procedure in frozen.document.get("unit_procedures", []):
        for op in procedure.get("operations", []):
            if op.get("key") == step and op.get("equipment_class"):
                return (str(op["equipment_class"]),)
    operation = frozen.operations.get(step)
    return tuple(operation.equipment_classes) if operation else ()


@dataclass(frozen=True)
class Bound:
    binding: BindingRow
    unit: UnitRow
    raised: list[str]  # the kinds of exception it raised


def readiness(
    unit: UnitRow, allowed: tuple[str, ...], site_id: UUID, now: datetime, on: date
) -> list[str]:
    """What keeps the unit from being used in the step now (nothing: it is ready)."""
    found = []
    if unit.class_slug not in allowed:
        found.append(
            f"{unit.code} is a {unit.class_slug}; the step takes {', '.join(allowed) or 'none'}."
        )
    if unit.site_id != site_id:
        found.append(f"{unit.code} is at another site than the batch.")
    if unit.status != "available":
        found.append(f"{unit.code} is {unit.status.replace('_', ' ')}, not available.")
    if unit.qualification_due is not None and unit.qualification_due < on:
        found.append(f"{unit.code}'s qualification was due on {unit.qualification_due}.")
    if unit.calibration_due is not None and unit.calibration_due < on:
        found.append(f"{unit.code}'s calibration was due on {unit.calibration_due}.")
    if unit.clean_until is None or unit.clean_until <= now:
        since = f"expired {unit.clean_until:%Y-%m-%d %H:%M} UTC" if unit.clean_until else "none"
        found.append(f"{unit.code} is not clean (its cleaning: {since}).")
    return found


async def bind(ctx: TenantContext, batch_id: UUID, step: str, equipment: str) -> Bound:
    """Take a unit (its code or id) for a step of a running batch (see the module)."""
    if not equipment.strip():
        raise ValidationFailed("Scan or pick the equipment.", details={"field": "equipment"})
    async with unit_of_work(ctx):
        batch = await queries.batch(batch_id, lock=True)
        await authorize(ctx, "batches", "execute", site_id=batch.site_id)
        running(batch, "taking equipment")
        frozen = await queries.control_recipe(batch_id)
        if step not in frozen.operations:
            raise ValidationFailed(
                f"This batch has no step '{step[:64]}'.", details={"field": "step"}
            )
        name = step_name(batch, frozen, step)
        phases = [p for p in await xq.phases(batch_id) if p.step == step]
        if phases and all(p.status in states.FINAL for p in phases):
            raise Conflict(
                f"Step {name} is done: it takes no equipment.", details={"field": "step"}
            )
        unit = await lookup(equipment, lock=True)
        await _not_held(unit, batch_id, step)
        rules = await exception_rules(ctx)
        found = readiness(
            unit, allowed_classes(frozen, step), batch.site_id, await eq.now(), today(ctx)
        )
        raised = _refuse_or_raise(rules, found, step)
        by = actor(ctx)
        try:
            binding_id = await eq.insert_binding(ctx.tenant_id, batch_id, step, unit.id, by)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"{unit.code} was taken a moment ago by another batch.") from None
        await eq.set_status(unit.id, "in_use")
        await audit.record(
            ctx,
            "batch.equipment_bound",
            "batch",
            batch_id,
            new={
                "number": batch.number,
                "step": step,
                "step_name": name,
                "binding_id": str(binding_id),
                "equipment_id": str(unit.id),
                "code": unit.code,
                "class": unit.class_slug,
                "not_ready": found,
            },
        )
        await exceptions.raise_all(ctx, batch_id, batch.number, raised)
        binding = next(b for b in await eq.bindings(batch_id) if b.id == binding_id)
        return Bound(binding, await eq.unit(unit.id), [e.kind for e in raised])


async def _not_held(unit: UnitRow, batch_id: UUID, step: str) -> None:
    held = await eq.holder(unit.id)
    if held is None:
        return
    if held.batch_id == batch_id and held.step == step:
        raise Conflict(f"{unit.code} is in this step already.", details={"field": "equipment"})
    raise Conflict(
        f"{unit.code} is in use by another batch step: it is free when that step ends.",
        details={"field": "equipment", "status": "in_use"},
    )


def _refuse_or_raise(rules: ExceptionRules, found: list[str], step: str) -> list[NewException]:
    if not found:
        return []
    message = " ".join(found)
    if rules.refuses(KIND):
        raise Conflict(message, details={"field": "equipment", "kind": KIND})
    return [NewException(KIND, rules.severity(KIND), message, step)]


# --- reads ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepEquipment:
    classes: tuple[str, ...]
    held: list[tuple[BindingRow, UnitRow]]  # bound to the step (released ones too)
    pickable: list[UnitRow]  # available units of an allowed class at the batch's site


async def at_the_bench(ctx: TenantContext, batch_id: UUID) -> dict[str, StepEquipment]:
    """For the run page: per step, its classes, the units it holds or held, and the units
    that could be taken for it."""
    async with read_view(ctx):
        batch = await queries.batch(batch_id)
        await authorize(ctx, "batches", "read", site_id=batch.site_id)
        frozen = await queries.control_recipe(batch_id)
        bindings = await eq.bindings(batch_id)
        units = await eq.units()
    by_id = {u.id: u for u in units}
    found: dict[str, StepEquipment] = {}
    for step in frozen.operations:
        classes = allowed_classes(frozen, step)
        found[step] = StepEquipment(
            classes,
            [(b, by_id[b.equipment_id]) for b in bindings if b.step == step],
            [
                u
                for u in units
                if u.class_slug in classes
                and u.status == "available"
                and u.site_id == batch.site_id
            ],
        )
    return found


def shown(bound: Bound) -> dict[str, Any]:
    return {"step": bound.binding.step, "code": bound.unit.code, "raised": bound.raised}
