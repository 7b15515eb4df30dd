"""Containers reserved for a batch's bill of materials: first to expire first, at the batch's
creation or later, what cannot be found reported rather than refused; not available to other
batches while held; released when the batch ends."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from opencdmo import quantities
from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.batches import queries, states
from opencdmo.batches.execution import actor
from opencdmo.batches.materials import (
    bill_of_materials,
    convertible,
)
from opencdmo.batches.queries import BatchRow, ControlRecipeRow
from opencdmo.db.tx import unit_of_work
from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.inventory import consumption_queries as cq
from opencdmo.inventory import service as inventory
from opencdmo.inventory.consumption_queries import ReservationRow
from opencdmo.scope import TenantContext


@dataclass(frozen=True)
class Shortage:
    material: str
    wanted: Decimal
    reserved: Decimal
    unit: str


@dataclass(frozen=True)
class Reserved:
    reservations: list[ReservationRow]
    shortages: list[Shortage]


def _needs(frozen: ControlRecipeRow) -> dict[str, tuple[Decimal, str]]:
    """The whole batch's need of each material, in the unit of its first line."""
    found: dict[str, tuple[Decimal, str]] = {}
    for line in bill_of_materials(frozen):
        total, unit = found.get(line.material, (Decimal(0), line.unit))
        try:
            found[line.material] = (
                total + quantities.convert(line.quantity, line.unit, unit),
                unit,
            )
        except ValidationFailed:
            continue  # a line in a unit of another kind is not reserved for
    return found


async def reserve(ctx: TenantContext, batch_id: UUID) -> Reserved:
    """Reserve released, unexpired containers for what the batch's bill of materials still
    needs, first to expire first; what cannot be found is reported, not refused."""
    async with unit_of_work(ctx):
        batch = await queries.batch(batch_id, lock=True)
        await authorize(ctx, "batches", "reserve", site_id=batch.site_id)
        if batch.status in states.FINAL:
            raise Conflict(
                f"Batch {batch.number} is {batch.status}: it reserves nothing.",
                details={"status": batch.status},
            )
        reserved = await reserve_in(ctx, batch)
        return reserved


async def reserve_in(ctx: TenantContext, batch: BatchRow) -> Reserved:
    """``reserve`` in the open unit of work (a batch being created reserves this way)."""
    frozen = await queries.control_recipe(batch.id)
    needs = _needs(frozen)
    held = await cq.reservations(batch.id)
    used = await cq.consumptions(batch.id)
    materials = await cq.material_ids_for(sorted(needs))
    shortages: list[Shortage] = []
    made: list[dict[str, str]] = []
    on = inventory.today(ctx)
    by = actor(ctx)
    for slug, (wanted, unit) in needs.items():
        ids = sorted(materials.get(slug, ()))
        candidates = await cq.candidates(ids, on, lock=True)
        unit_of = {c.container.id: c.container.unit for c in candidates}
        have = Decimal(0)
        for r in held:
            if r.material == slug and r.container_id in unit_of:
                have += convertible(r.quantity, unit_of[r.container_id], unit)
        for c in used:
            if c.material == slug:
                have += convertible(c.quantity, c.unit, unit)
        others = await cq.reserved_by_others([c.container.id for c in candidates], batch.id)
        mine = {r.container_id for r in held}
        for candidate in candidates:
            if have >= wanted:
                break
            box = candidate.container
            if box.id in mine:
                continue
            free = box.remaining - others.get(box.id, Decimal(0))
            if free <= 0 or not quantities.compatible(box.unit, unit):
                continue
            take = min(free, quantities.convert(wanted - have, unit, box.unit))
            await cq.insert_reservation(ctx.tenant_id, batch.id, slug, box.id, take, by)
            have += quantities.convert(take, box.unit, unit)
            made.append(
                {
                    "material": slug,
                    "lot": candidate.lot_number,
                    "container": str(box.number),
                    "quantity": str(take),
                    "unit": box.unit,
                }
            )
        if have < wanted:
            shortages.append(Shortage(slug, wanted, have, unit))
    if made:
        await audit.record(
            ctx,
            "batch.materials_reserved",
            "batch",
            batch.id,
            new={
                "number": batch.number,
                "reserved": made,
                "short": [s.material for s in shortages],
            },
        )
    return Reserved(await cq.reservations(batch.id), shortages)


async def release_reservations_in(ctx: TenantContext, batch: BatchRow, why: str) -> None:
    """Release what the batch still holds (it ended), in the open unit of work; audited."""
    count = await cq.release_reservations(batch.id)
    if count:
        await audit.record(
            ctx,
            "batch.reservations_released",
            "batch",
            batch.id,
            new={"number": batch.number, "released": count},
            reason=why,
        )
