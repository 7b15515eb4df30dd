"""What a batch's steps made: lots in quarantine with the batch as their origin (and a
patient's chain of identity), so that genealogy goes on downstream."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.batches import queries
from opencdmo.batches.execution import actor, running
from opencdmo.batches.materials import (
    MADE_TYPES,
    quantity_given,
    step_lines,
)
from opencdmo.db.tx import unit_of_work
from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.fields import check_name
from opencdmo.inventory import consumption_queries as cq
from opencdmo.inventory import queries as lots
from opencdmo.inventory import receipt
from opencdmo.inventory.queries import Identity, LotRow, NewLot
from opencdmo.scope import TenantContext


@dataclass(frozen=True)
class Output:
    step: str
    material_id: UUID
    quantity: Decimal
    unit: str
    lot_number: str | None = None
    containers: int | list[receipt.ContainerIn] | None = None
    expiry_date: date | None = None


async def produce(ctx: TenantContext, batch_id: UUID, output: Output) -> LotRow:
    """A step's product (an intermediate, the final product, a sample): a lot in quarantine
    with the batch as its origin, so that genealogy goes on downstream. A patient's batch
    passes its chain of identity on to the lot."""
    amount, unit = quantity_given(output.quantity, output.unit)
    number = (
        check_name(output.lot_number, "lot_number", "The lot number").strip()
        if output.lot_number
        else None
    )
    split = receipt.split_into(amount, unit, output.containers)
    async with unit_of_work(ctx):
        batch = await queries.batch(batch_id, lock=True)
        await authorize(ctx, "batches", "execute", site_id=batch.site_id)
        running(batch, "recording what a step made")
        frozen = await queries.control_recipe(batch_id)
        step_lines(frozen, output.step)
        material = await lots.material(output.material_id)
        if material.material_type not in MADE_TYPES:
            raise ValidationFailed(
                f"{material.code} is a {material.material_type.replace('_', ' ')}: a batch "
                "makes intermediates, products and starting material, not what is bought in.",
                details={"field": "material_id"},
            )
        receipt.measures_same(amount, unit, material)
        lot_number = number or await _free_number(material.id, f"{batch.number}-{output.step}")
        if await lots.lot_exists(material.id, lot_number):
            raise Conflict(f"{material.code} has a lot {lot_number} already.")
        new = NewLot(
            material.id,
            lot_number,
            ctx.name,
            batch.number,
            amount,
            unit,
            output.expiry_date,
            None,
            Identity(batch.donor_id, batch.coi_label, batch.apheresis_id),
            batch.id,
            output.step,
        )
        by = actor(ctx)
        lot_id = await receipt.insert_lot(ctx, new, material)
        await lots.insert_containers(ctx.tenant_id, lot_id, split)
        reason = f"made in batch {batch.number}"
        await lots.insert_change(ctx.tenant_id, lot_id, None, "quarantine", reason, by, None)
        await cq.insert_link(ctx.tenant_id, batch.id, "batch", lot_id, "lot", amount, unit)
        await audit.record(
            ctx,
            "batch.lot_produced",
            "batch",
            batch.id,
            new={
                "number": batch.number,
                "step": output.step,
                "lot_id": str(lot_id),
                "lot_number": lot_number,
                "material": material.code,
                "quantity": str(amount),
                "unit": unit,
                "containers": len(split),
                "status": "quarantine",
            },
        )
        return await lots.lot(lot_id)


async def _free_number(material_id: UUID, base: str) -> str:
    """``base``, or ``base-2``, ``base-3``... the first the material has no lot of."""
    number, n = base, 1
    while await lots.lot_exists(material_id, number):
        n += 1
        number = f"{base}-{n}"
    return number
