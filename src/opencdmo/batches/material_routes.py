"""Materials in a batch through the JSON API: its bill of materials with what each line used
and holds, consuming a container in a step, reserving containers, and the lots a step made."""

from __future__ import annotations

from dataclasses import asdict
from uuid import UUID

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from opencdmo.batches import material_views, materials, outputs, reservations
from opencdmo.batches.material_schemas import (
    BatchMaterialsOut,
    Consumed,
    ConsumptionIn,
    ConsumptionOut,
    LineOut,
    OutputIn,
    ReservationOut,
    ReservedOut,
    ShortageOut,
)
from opencdmo.batches.routes import ONE
from opencdmo.inventory.consumption_queries import ConsumptionRow
from opencdmo.inventory.receipt import ContainerIn
from opencdmo.inventory.routes import detail
from opencdmo.inventory.schemas import LotDetail
from opencdmo.inventory.service import get_lot
from opencdmo.scope import TenantContext
from opencdmo.web.guards import requires


def _consumption(row: ConsumptionRow) -> ConsumptionOut:
    return ConsumptionOut(**asdict(row))


def _reservations(view: material_views.BatchMaterials) -> list[ReservationOut]:
    found = []
    for row in view.reservations:
        box = view.containers[row.container_id]
        found.append(
            ReservationOut(
                id=row.id,
                material=row.material,
                container_id=row.container_id,
                lot_id=box.lot_id,
                quantity=row.quantity,
                unit=box.unit,
                reserved_by=row.reserved_by,
                reserved_at=row.reserved_at,
            )
        )
    return found


@get(ONE + "/materials", opt=requires("batches", "read", site_scoped=True), tags=["batches"])
async def api_batch_materials(
    ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> BatchMaterialsOut:
    """The batch's bill of materials, step by step, with what each line used (in its unit)
    and what is reserved for its material; the consumptions, active reservations and the
    lots the batch made."""
    view = await material_views.batch_materials(ctx, batch_id)
    return BatchMaterialsOut(
        lines=[
            LineOut(
                step=u.line.step,
                step_name=u.line.step_name,
                material=u.line.material,
                quantity=u.line.quantity,
                unit=u.line.unit,
                used=u.used,
                reserved=u.reserved,
            )
            for u in view.lines
        ],
        consumptions=[_consumption(c) for c in view.consumptions],
        reservations=_reservations(view),
        outputs=[o.id for o in view.outputs],
    )


@post(
    ONE + "/consumptions",
    opt=requires("batches", "execute", site_scoped=True),
    tags=["batches"],
    status_code=201,
)
async def api_consume(
    ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID], data: JSONBody[ConsumptionIn]
) -> Consumed:
    """Use a container in a step: the lot must be released and unexpired at the time of use,
    its material on the step's bill of materials, the quantity on hand and not reserved for
    another batch; a wrong material or more than the bill of materials is refused or raises
    an exception as the tenant's manifest says."""
    done = await materials.consume(
        ctx, batch_id, data.step, data.container_id, data.quantity, data.unit, data.idempotency_key
    )
    return Consumed(consumption=_consumption(done.consumption), exceptions=done.raised)


@post(
    ONE + "/reservations",
    opt=requires("batches", "reserve", site_scoped=True),
    tags=["batches"],
    status_code=200,
)
async def api_reserve(ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]) -> ReservedOut:
    """Reserve released, unexpired containers (first to expire first) for what the bill of
    materials still needs; what is short is listed. Reserved quantity is not available to
    other batches until this one uses it or ends."""
    reserved = await reservations.reserve(ctx, batch_id)
    view = await material_views.batch_materials(ctx, batch_id)
    return ReservedOut(
        reservations=_reservations(view),
        shortages=[ShortageOut(**asdict(s)) for s in reserved.shortages],
    )


@post(
    ONE + "/outputs",
    opt=requires("batches", "execute", site_scoped=True),
    tags=["batches"],
    status_code=201,
)
async def api_output(
    ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID], data: JSONBody[OutputIn]
) -> LotDetail:
    """What a step made: a lot in quarantine with this batch as its origin (and a patient's
    chain of identity), so that genealogy goes on downstream."""
    containers: int | list[ContainerIn] | None
    if isinstance(data.containers, list):
        containers = [ContainerIn(c.quantity, c.unit) for c in data.containers]
    else:
        containers = data.containers
    row = await outputs.produce(
        ctx,
        batch_id,
        outputs.Output(
            data.step,
            data.material_id,
            data.quantity,
            data.unit,
            data.lot_number,
            containers,
            data.expiry_date,
        ),
    )
    return detail(await get_lot(ctx, row.id))


api = [api_batch_materials, api_consume, api_reserve, api_output]
