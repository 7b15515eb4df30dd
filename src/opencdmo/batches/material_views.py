"""Reads of a batch's materials: its bill of materials with what each line used and holds,
its consumptions, reservations and outputs; and for the run page, the containers that fit
each step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.batches import queries
from opencdmo.batches.materials import (
    MADE_TYPES,
    BomLine,
    bill_of_materials,
    convertible,
)
from opencdmo.db.tx import read_view
from opencdmo.inventory import consumption_queries as cq
from opencdmo.inventory import queries as lots
from opencdmo.inventory import service as inventory
from opencdmo.inventory.consumption_queries import ConsumptionRow, ReservationRow
from opencdmo.inventory.queries import ContainerRow, LotRow, MaterialRow
from opencdmo.labels import label
from opencdmo.scope import TenantContext


@dataclass(frozen=True)
class LineUse:
    line: BomLine
    used: Decimal  # in the line's unit
    reserved: Decimal  # in the line's unit, for the material (over the batch)


@dataclass(frozen=True)
class BatchMaterials:
    lines: list[LineUse]
    consumptions: list[ConsumptionRow]
    reservations: list[ReservationRow]
    containers: dict[UUID, ContainerRow]
    lots: dict[UUID, LotRow]
    materials: dict[UUID, MaterialRow]
    outputs: list[LotRow]


async def batch_materials(ctx: TenantContext, batch_id: UUID) -> BatchMaterials:
    """The batch's bill of materials with what each line used and holds, its consumptions,
    reservations and outputs (one read view)."""
    async with read_view(ctx):
        batch = await queries.batch(batch_id)
        await authorize(ctx, "batches", "read", site_id=batch.site_id)
        frozen = await queries.control_recipe(batch_id)
        used = await cq.consumptions(batch_id)
        held = await cq.reservations(batch_id)
        boxes = await cq.containers_by_id(
            list({c.container_id for c in used} | {r.container_id for r in held})
        )
        made = await cq.outputs(batch_id)
        made_rows = await lots.lots_by_id(made)
        outputs = [made_rows[i] for i in made]
        lot_rows = await lots.lots_by_id(list({b.lot_id for b in boxes.values()}))
        lot_rows.update({o.id: o for o in outputs})
        material_rows = await lots.materials_by_id(
            list({lot.material_id for lot in lot_rows.values()})
        )
    lines = []
    for line in bill_of_materials(frozen):
        spent = sum(
            (
                convertible(c.quantity, c.unit, line.unit)
                for c in used
                if c.step == line.step and c.material == line.material
            ),
            Decimal(0),
        )
        kept = sum(
            (
                convertible(r.quantity, boxes[r.container_id].unit, line.unit)
                for r in held
                if r.material == line.material
            ),
            Decimal(0),
        )
        lines.append(LineUse(line, spent, kept))
    return BatchMaterials(lines, used, held, boxes, lot_rows, material_rows, outputs)


@dataclass(frozen=True)
class Pickable:
    """A container an operator may pick for a bill of materials line."""

    container: ContainerRow
    lot_number: str
    material: str  # the line's material
    free: Decimal  # remaining less other batches' reservations (container unit)
    expiry_date: date | None
    reserved_here: bool


@dataclass(frozen=True)
class StepMaterials:
    lines: list[LineUse]
    pickable: list[Pickable]


@dataclass(frozen=True)
class Bench:
    steps: dict[str, StepMaterials]  # by step key
    makeable: list[MaterialRow]  # what a step may record it made
    made: list[LotRow]  # the lots the batch made
    names: dict[str, str]  # a bill of materials line's material, as people read it

    def name(self, slug: str) -> str:
        return self.names.get(slug) or label(slug)


async def at_the_bench(ctx: TenantContext, batch_id: UUID) -> Bench:
    """For the run page: each step's lines and the containers that could be used for them
    (released, unexpired, not kept by another batch), first to expire first; the materials
    a step may make, and the lots the batch made."""
    view = await batch_materials(ctx, batch_id)
    async with read_view(ctx):
        master = await lots.materials()
        makeable = [m for m in master if m.material_type in MADE_TYPES]
        slugs = sorted({u.line.material for u in view.lines})
        allowed = await cq.material_ids_for(slugs)
        ids = sorted({i for found in allowed.values() for i in found})
        candidates = await cq.candidates(ids, inventory.today(ctx), lock=False)
        others = await cq.reserved_by_others([c.container.id for c in candidates], batch_id)
    by_id = {m.id: m.name for m in master}
    names = {
        slug: by_id[min(found)] for slug, found in allowed.items() if found and min(found) in by_id
    }
    mine = {r.container_id for r in view.reservations}
    found: dict[str, StepMaterials] = {}
    for use in view.lines:
        step = found.setdefault(use.line.step, StepMaterials([], []))
        step.lines.append(use)
        for c in candidates:
            if c.material_id not in allowed.get(use.line.material, ()):
                continue
            free = c.container.remaining - others.get(c.container.id, Decimal(0))
            if free > 0 and all(p.container.id != c.container.id for p in step.pickable):
                step.pickable.append(
                    Pickable(
                        c.container,
                        c.lot_number,
                        use.line.material,
                        free,
                        c.expiry_date,
                        c.container.id in mine,
                    )
                )
    for step in found.values():
        step.pickable.sort(key=lambda p: (not p.reserved_here,))
    return Bench(found, makeable, view.outputs, names)
