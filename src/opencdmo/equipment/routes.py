"""The equipment registry through the JSON API: the units, one unit with its logbook,
registering and changing a unit, its status (with a reason) and signed logbook entries."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from litestar import get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from opencdmo.equipment import service
from opencdmo.equipment.queries import UnitRow
from opencdmo.equipment.schemas import (
    LogEntryOut,
    SampleOut,
    SamplesOut,
    StatusIn,
    UnitChangeIn,
    UnitDetail,
    UnitIn,
    UnitOut,
    WorkIn,
)
from opencdmo.equipment.service import Registration, SampleQuery, UnitView, Work
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy.service import list_sites
from opencdmo.web.guards import requires

BASE = "/equipment"
ONE = BASE + "/{code:str}"


def unit_out(row: UnitRow, site: str) -> UnitOut:
    return UnitOut(
        id=row.id,
        code=row.code,
        class_slug=row.class_slug,
        name=row.name,
        site=site,
        status=row.status,
        qualification_due=row.qualification_due,
        calibration_due=row.calibration_due,
        clean_until=row.clean_until,
        opcua=row.connection,
        updated_at=row.updated_at,
    )


def detail(view: UnitView) -> UnitDetail:
    return UnitDetail(
        unit=unit_out(view.unit, view.site_code),
        class_name=view.class_name,
        held_by_batch=view.holder.batch_id if view.holder else None,
        logbook=[
            LogEntryOut(**{k: v for k, v in asdict(e).items() if k != "equipment_id"})
            for e in view.logbook
        ],
    )


@get(BASE, opt=requires("equipment", "read"), tags=["equipment"])
async def api_units(ctx: NamedDependency[TenantContext]) -> list[UnitOut]:
    """Every equipment unit of the tenant, by code."""
    sites = {s.id: s.code for s in await list_sites(ctx)}
    return [unit_out(u, sites.get(u.site_id, "")) for u in await service.list_units(ctx)]


@get(ONE, opt=requires("equipment", "read"), tags=["equipment"])
async def api_unit(ctx: NamedDependency[TenantContext], code: FromPath[str]) -> UnitDetail:
    """The unit (by code, case aside, or id) with its logbook, newest first, and the batch
    holding it now."""
    return detail(await service.get_unit(ctx, code))


@post(BASE, opt=requires("equipment", "manage"), tags=["equipment"], status_code=201)
async def api_register(ctx: NamedDependency[TenantContext], data: JSONBody[UnitIn]) -> UnitDetail:
    """Register a unit of an equipment class at a site; its code is unique in the tenant."""
    row = await service.register(
        ctx,
        Registration(
            data.code,
            data.class_,
            data.site,
            data.name,
            data.qualification_due,
            data.calibration_due,
            data.opcua,
        ),
    )
    return detail(await service.get_unit(ctx, str(row.id)))


@put(ONE, opt=requires("equipment", "manage"), tags=["equipment"], status_code=200)
async def api_change(
    ctx: NamedDependency[TenantContext], code: FromPath[str], data: JSONBody[UnitChangeIn]
) -> UnitDetail:
    """Change the unit's class, site, name, due dates or connection (its code stays)."""
    row = await service.find(ctx, code)
    given = Registration(
        row.code,
        data.class_,
        data.site,
        data.name,
        data.qualification_due,
        data.calibration_due,
        data.opcua,
    )
    await service.change(ctx, row.id, given)
    return detail(await service.get_unit(ctx, str(row.id)))


@post(ONE + "/status", opt=requires("equipment", "manage"), tags=["equipment"], status_code=200)
async def api_status(
    ctx: NamedDependency[TenantContext], code: FromPath[str], data: JSONBody[StatusIn]
) -> UnitDetail:
    """Set the unit's status, saying why (in use is a batch step's to set)."""
    row = await service.find(ctx, code)
    await service.set_status(ctx, row.id, data.status, data.reason)
    return detail(await service.get_unit(ctx, str(row.id)))


@post(ONE + "/logbook", opt=requires("equipment", "log"), tags=["equipment"], status_code=201)
async def api_log(
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
    code: FromPath[str],
    data: JSONBody[WorkIn],
) -> UnitDetail:
    """Record work done on the unit, signed 'performed' by its performer: a cleaning sets
    its clean-until, a calibration its next due date."""
    row = await service.find(ctx, code)
    work = Work(data.kind, data.note, data.clean_until, data.calibration_due)
    await service.log_work(settings, ctx, row.id, work, data.password)
    return detail(await service.get_unit(ctx, str(row.id)))


# Optional here, checked by the service after the unit is found: an unknown unit is the same
# 404 whatever else the request says.
Signal = Annotated[str | None, QueryParameter(name="signal", required=False, max_length=200)]
Instant = Annotated[str | None, QueryParameter(required=False, max_length=200)]
MaxPoints = Annotated[int | None, QueryParameter(name="max_points", required=False)]


@get(ONE + "/samples", opt=requires("equipment", "read"), tags=["equipment"])
async def api_samples(
    ctx: NamedDependency[TenantContext],
    code: FromPath[str],
    signal: Signal = None,
    start: Instant = None,
    end: Instant = None,
    max_points: MaxPoints = None,
) -> SamplesOut:
    """The unit's samples of one signal from start to end (ISO 8601 times with their offset,
    both included, at most 31 days apart) in source time order, with their status codes;
    with max_points (3 to 10000), downsampled server-side (LTTB: the first, the last and the
    points that keep the curve's shape)."""
    given = SampleQuery(signal, start, end, max_points)
    found = await service.read_samples(ctx, code, given)
    return SamplesOut(
        equipment=found.unit.code,
        signal=found.signal,
        start=found.start,
        end=found.end,
        downsampled=max_points is not None,
        samples=[
            SampleOut(
                source_time=p.source_time,
                server_time=p.server_time,
                value=p.value,
                text_value=p.text_value,
                status_code=p.status_code,
            )
            for p in found.points
        ],
    )


api = [api_units, api_unit, api_register, api_change, api_status, api_log, api_samples]
