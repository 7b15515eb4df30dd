"""Freeing the equipment a batch's step holds, in the open unit of work of the command that
ends the step (its last phase done) or the batch (a final state): each binding released, the
unit available again, and its logbook's "used by batch N, step S, from..to" written."""

from __future__ import annotations

from uuid import UUID

from opencdmo.audit import service as audit
from opencdmo.batches import queries
from opencdmo.batches.queries import BatchRow
from opencdmo.equipment import queries as eq
from opencdmo.equipment.queries import NewEntry
from opencdmo.scope import TenantContext


def step_name(batch: BatchRow, frozen: queries.ControlRecipeRow, step: str) -> str:
    operation = frozen.operations.get(step)
    return operation.name if operation else step


async def release_in(ctx: TenantContext, batch: BatchRow, step: str | None, why: str) -> int:
    """Free what the step (every step: None) of the batch holds; how many units."""
    held = [
        b for b in await eq.bindings(batch.id, active=True, lock=True) if step in (None, b.step)
    ]
    if not held:
        return 0
    frozen = await queries.control_recipe(batch.id)
    for binding in held:
        unit = await eq.unit(binding.equipment_id, lock=True)
        released = await eq.release(binding.id)
        if unit.status == "in_use":
            await eq.set_status(unit.id, "available")
        name = step_name(batch, frozen, binding.step)
        note = f"used by batch {batch.number}, step {name}"
        entry = await eq.insert_entry(
            ctx.tenant_id,
            unit.id,
            NewEntry(
                "use",
                note,
                batch_id=batch.id,
                step=binding.step,
                used_from=binding.bound_at,
                used_to=released,
            ),
            ctx.user_id or binding.bound_by,
        )
        values = {
            "number": batch.number,
            "step": binding.step,
            "step_name": name,
            "binding_id": str(binding.id),
            "equipment_id": str(unit.id),
            "code": unit.code,
            "from": binding.bound_at.isoformat(),
            "to": released.isoformat(),
        }
        await audit.record(
            ctx,
            "batch.equipment_released",
            "batch",
            batch.id,
            old={"status": "in_use"},
            new=values,
            reason=why,
        )
        await audit.record(
            ctx,
            "equipment.used",
            "equipment",
            unit.id,
            new={**values, "batch_id": str(batch.id), "entry_id": str(entry), "note": note},
        )
    return len(held)


async def held_by(batch_id: UUID) -> list[eq.BindingRow]:
    return await eq.bindings(batch_id, active=True)
