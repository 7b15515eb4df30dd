"""Equipment in a batch through the JSON API: the units bound to its steps, and taking a
unit for a step (scanned by code or picked by id)."""

from __future__ import annotations

from uuid import UUID

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from opencdmo.batches import equipment_use
from opencdmo.batches.routes import ONE
from opencdmo.equipment.queries import BindingRow, UnitRow
from opencdmo.equipment.schemas import BindIn, BindingOut, Bound
from opencdmo.scope import TenantContext
from opencdmo.web.guards import requires


def binding_out(row: BindingRow, unit: UnitRow) -> BindingOut:
    return BindingOut(
        id=row.id,
        step=row.step,
        equipment_id=row.equipment_id,
        code=unit.code,
        bound_by=row.bound_by,
        bound_at=row.bound_at,
        released_at=row.released_at,
    )


@get(ONE + "/equipment", opt=requires("batches", "read", site_scoped=True), tags=["batches"])
async def api_batch_equipment(
    ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> list[BindingOut]:
    """The units the batch's steps hold or held, in the order they were taken."""
    bench = await equipment_use.at_the_bench(ctx, batch_id)
    found = [binding_out(b, u) for step in bench.values() for b, u in step.held]
    return sorted(found, key=lambda b: b.bound_at)


@post(
    ONE + "/equipment",
    opt=requires("batches", "execute", site_scoped=True),
    tags=["batches"],
    status_code=201,
)
async def api_bind(
    ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID], data: JSONBody[BindIn]
) -> Bound:
    """Take a unit for a step: its class one the step allows, at the batch's site, available,
    qualified, calibrated and clean now; otherwise refused, or an equipment_not_ready
    exception as the tenant's manifest says. A unit another batch step holds is a 409."""
    done = await equipment_use.bind(ctx, batch_id, data.step, data.equipment)
    return Bound(binding=binding_out(done.binding, done.unit), exceptions=done.raised)


api = [api_batch_equipment, api_bind]
