"""Batches through the JSON API and their pages: the list with its filters, a batch with its
state and control recipe hash, creating a batch and giving it commands."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID
from zoneinfo import ZoneInfo

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Response, Template

from opencdmo.access.service import can
from opencdmo.batches import service, states
from opencdmo.batches.entry_queries import EntryRow
from opencdmo.batches.queries import BatchFilter, BatchRow
from opencdmo.batches.schemas import (
    BatchCommand,
    BatchCreate,
    BatchCreated,
    BatchCreateForm,
    BatchDetail,
    BatchList,
    BatchOut,
    EntryIn,
    EntryList,
    EntryOut,
    EntryWithHistory,
    EquipmentEntryIn,
)
from opencdmo.batches.service import BatchSummary, ChainOfIdentity
from opencdmo.errors import AppError, ValidationFailed
from opencdmo.partners import service as partners
from opencdmo.scope import TenantContext
from opencdmo.web.flash import see_other
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data, form_struct, page

BASE = "/batches"
ONE = BASE + "/{batch_id:uuid}"
PAGE_SIZE = 50
NO_FILTER = dict.fromkeys(("status", "recipe", "site", "sponsor", "planned_from", "planned_to"), "")
Limit = Annotated[int, QueryParameter(ge=1, le=200, required=False)]
Offset = Annotated[int, QueryParameter(ge=0, le=10**9, required=False)]
Filter = Annotated[str | None, QueryParameter(max_length=200, required=False)]
When = Annotated[datetime | None, QueryParameter(required=False)]
RecipeId = Annotated[UUID | None, QueryParameter(required=False)]


def batch_out(summary: BatchSummary) -> dict[str, Any]:
    row: BatchRow = summary.batch
    values = {f.name: getattr(row, f.name) for f in fields(row) if f.name != "site_id"}
    return {**values, "recipe_name": summary.recipe_name, "site": summary.site_code}


async def _filter(
    ctx: TenantContext,
    status: str | None,
    recipe: UUID | None,
    site: str | None,
    sponsor: str | None,
    planned_from: datetime | None,
    planned_to: datetime | None,
    limit: int,
    offset: int,
) -> BatchFilter:
    return BatchFilter(
        status or None,
        recipe,
        await service.site_id(ctx, site) if site else None,
        sponsor or None,
        _zoned(ctx, planned_from),
        _zoned(ctx, planned_to),
        limit,
        offset,
    )


def _zoned(ctx: TenantContext, when: datetime | None) -> datetime | None:
    """A time without an offset (a form's datetime-local) is in the tenant's display zone."""
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=ZoneInfo(ctx.time_zone))


@get(BASE, opt=requires("batches", "read", site_scoped=True), tags=["batches"])
async def api_batches(
    ctx: NamedDependency[TenantContext],
    status: Filter = None,
    recipe: RecipeId = None,
    site: Filter = None,
    sponsor: Filter = None,
    planned_from: When = None,
    planned_to: When = None,
    limit: Limit = PAGE_SIZE,
    offset: Offset = 0,
) -> BatchList:
    """The tenant's batches, latest planned start first, filtered by status, recipe (id),
    site (code), sponsor (part of the name) and planned start (from, to); paged."""
    flt = await _filter(ctx, status, recipe, site, sponsor, planned_from, planned_to, limit, offset)
    found = await service.list_batches(ctx, flt)
    return BatchList([BatchOut(**batch_out(r)) for r in found.rows], found.total, limit, offset)


@post(BASE, opt=requires("batches", "create", site_scoped=True), tags=["batches"], status_code=201)
async def api_create(
    ctx: NamedDependency[TenantContext], data: JSONBody[BatchCreate]
) -> BatchCreated:
    """A batch of the recipe's effective revision with one of its formulas, at a site (its
    code): the number from the tenant's pattern, the control recipe frozen and hashed. The
    chain of identity (donor id, COI label, apheresis id) is required for autologous
    recipes. With ``reserve_materials``, containers are reserved for its bill of materials
    (``short``: the materials that could not be reserved in full)."""
    chain = data.chain_of_identity
    created = await service.create_batch(
        ctx,
        data.recipe_id,
        data.formula,
        data.site,
        data.planned_start,
        data.sponsor,
        ChainOfIdentity(chain.donor_id, chain.coi_label, chain.apheresis_id) if chain else None,
        reserve=data.reserve_materials,
    )
    return BatchCreated(
        created.id,
        created.number,
        created.control_recipe_hash,
        [s.material for s in created.shortages],
    )


@get(ONE, opt=requires("batches", "read", site_scoped=True), tags=["batches"])
async def api_batch(ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]) -> BatchDetail:
    """The batch, its state and the commands that state allows, and its control recipe (the
    frozen document and its canonical hash)."""
    view = await service.get_batch(ctx, batch_id)
    return BatchDetail(
        **batch_out(view),
        control_recipe_hash=view.control_recipe.content_hash,
        control_recipe=view.control_recipe.document,
        commands=view.commands,
    )


@post(
    ONE + "/commands/{command:str}",
    opt=requires("batches", "command", site_scoped=True),
    tags=["batches"],
    status_code=200,
)
async def api_command(
    ctx: NamedDependency[TenantContext],
    batch_id: FromPath[UUID],
    command: FromPath[str],
    data: JSONBody[BatchCommand],
) -> BatchOut:
    """Give the batch an ISA-88 command (start, hold, restart, pause, resume, stop, abort,
    complete); hold, pause, stop and abort need a reason. A command its state does not allow
    is a 409 naming the state and the states it needs."""
    await service.command_batch(ctx, batch_id, command, data.reason)
    return BatchOut(**batch_out(await service.get_batch(ctx, batch_id)))


@get(BASE, opt=requires("batches", "read", site_scoped=True), include_in_schema=False)
async def batches_page(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    status: Filter = None,
    recipe: RecipeId = None,
    site: Filter = None,
    sponsor: Filter = None,
    planned_from: When = None,
    planned_to: When = None,
    limit: Limit = PAGE_SIZE,
    offset: Offset = 0,
) -> Template:
    flt = await _filter(ctx, status, recipe, site, sponsor, planned_from, planned_to, limit, offset)
    chosen = {
        "status": status or "",
        "recipe": str(recipe or ""),
        "site": site or "",
        "sponsor": sponsor or "",
        "planned_from": planned_from.isoformat() if planned_from else "",
        "planned_to": planned_to.isoformat() if planned_to else "",
    }
    return await _list_page(request, ctx, flt, chosen)


async def _list_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    flt: BatchFilter,
    chosen: dict[str, str],
    *,
    status: int = 200,
    error: str | None = None,
    kept: dict[str, Any] | None = None,
) -> Template:
    found = await service.list_batches(ctx, flt)
    create_sites = await service.sites_to_create_at(ctx)
    return await page(
        request,
        "batches/list.html",
        block="results",
        batches=found.rows,
        total=found.total,
        limit=flt.limit,
        offset=flt.offset,
        states=states.STATES,
        state_names=states.STATE_NAMES,
        recipes=await service.recipe_choices(ctx),
        sites=await service.site_codes(ctx),
        chosen=chosen,
        query=urlencode({k: v for k, v in chosen.items() if v}),
        creatable=await service.creatable(ctx) if create_sites else [],
        partner_sponsors=await partners.active_sponsors(ctx) if create_sites else [],
        create_sites=create_sites,
        error=error,
        kept=kept or {},
        status_code=status,
    )


@post(
    BASE,
    opt=requires("batches", "create", site_scoped=True),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def create_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template | Response[Any]:
    """Create a batch from the list page's form; a refusal shows the list again with the
    message in the form and the values kept."""
    data = await form_data(request)
    try:
        form, _ = await form_struct(request, BatchCreateForm)
        recipe_text, _, formula = form.recipe_formula.partition("|")
        try:
            recipe_id = UUID(recipe_text)
        except ValueError:
            raise ValidationFailed(
                "Choose a recipe and formula.", details={"field": "recipe_formula"}
            ) from None
        try:
            planned = datetime.fromisoformat(form.planned_start)
        except ValueError:
            raise ValidationFailed(
                "Planned start: give a date and time.", details={"field": "planned_start"}
            ) from None
        created = await service.create_batch(
            ctx,
            recipe_id,
            formula,
            form.site,
            _zoned(ctx, planned) or planned,
            form.sponsor,
            ChainOfIdentity(form.donor_id, form.coi_label, form.apheresis_id),
        )
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _list_page(
            request,
            ctx,
            BatchFilter(),
            NO_FILTER,
            status=exc.status_code,
            error=exc.message,
            kept=data,
        )
    return see_other(
        request, f"/t/{ctx.slug}/batches/{created.id}", flash=f"Batch {created.number} created."
    )


@get(ONE, opt=requires("batches", "read", site_scoped=True), include_in_schema=False)
async def batch_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> Template:
    return await _batch_page(request, ctx, batch_id)


async def _batch_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    batch_id: UUID,
    *,
    status: int = 200,
    error: str | None = None,
) -> Template:
    view = await service.get_batch(ctx, batch_id)
    givable = [c for c in view.commands if await can(ctx, "batches", c, site_id=view.batch.site_id)]
    return await page(
        request,
        "batches/detail.html",
        status_code=status,
        view=view,
        state_names=states.STATE_NAMES,
        givable=givable,
        error=error,
    )


@post(
    ONE + "/commands/{command:str}",
    opt=requires("batches", "command", site_scoped=True),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def command_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    batch_id: FromPath[UUID],
    command: FromPath[str],
) -> Template | Response[Any]:
    """Give the batch a command from its page; a refusal shows the page with the message."""
    try:
        data, _ = await form_struct(request, BatchCommand)
        row = await service.command_batch(ctx, batch_id, command, data.reason)
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _batch_page(request, ctx, batch_id, status=exc.status_code, error=exc.message)
    message = f"Batch {row.number}: {states.STATE_NAMES[row.status]}."
    return see_other(request, f"/t/{ctx.slug}/batches/{batch_id}", flash=message)


def _entry(row: EntryRow) -> dict[str, Any]:
    values = {f.name: getattr(row, f.name) for f in fields(row) if f.name != "check_result"}
    return {**values, "check": row.check_result}


@post(
    ONE + "/entries",
    opt=requires("batches", "command", site_scoped=True),
    tags=["batches"],
    status_code=201,
)
async def api_record_entry(
    ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID], data: JSONBody[EntryIn]
) -> Response[EntryOut]:
    """Record a value for a field (a data-capture field or a parameter) of a phase of a step
    of a running batch: checked at once against the field's limits and the parameter's normal
    and proven acceptable ranges (check: in_limits, outside_normal, outside_par, invalid).
    201 with the entry; the same idempotency key again is a 200 with the first entry
    unchanged. A field recorded already is a 409 showing its value: correct it with
    ``supersedes`` (that entry's id) and a reason; both entries stay."""
    recorded = await service.record_entry(
        ctx,
        batch_id,
        data.step,
        data.phase,
        data.field,
        data.value,
        data.unit,
        data.idempotency_key,
        device_time=data.device_time,
        supersedes=data.supersedes,
        reason=data.reason,
        source=data.source,
    )
    return Response(
        EntryOut(**_entry(recorded.entry)), status_code=201 if recorded.created else 200
    )


@post(
    ONE + "/entries/from-equipment",
    opt=requires("batches", "command", site_scoped=True),
    tags=["batches"],
    status_code=201,
)
async def api_entry_from_equipment(
    ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID], data: JSONBody[EquipmentEntryIn]
) -> Response[EntryOut]:
    """Record a data-capture field's value from the equipment: the unit of the field's
    equipment class bound to the step gives the signal's latest value in the phase (or its
    mean, minimum or maximum over the phase, as the content says), in the field's unit; the
    entry's source is equipment and its equipment_source names the unit, signal, sample
    times and aggregate. 201 with the entry (200 with the first for the same key again); 409
    when no unit is bound or no sample was stored since the phase started."""
    recorded = await service.record_entry(
        ctx,
        batch_id,
        data.step,
        data.phase,
        data.field,
        None,
        None,
        data.idempotency_key,
        supersedes=data.supersedes,
        reason=data.reason,
        from_equipment=True,
    )
    return Response(
        EntryOut(**_entry(recorded.entry)), status_code=201 if recorded.created else 200
    )


@get(ONE + "/entries", opt=requires("batches", "read", site_scoped=True), tags=["batches"])
async def api_entries(ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]) -> EntryList:
    """Every entry of the batch, oldest first, with its history: each entry names the entry
    that supersedes it (superseded_by; none for a field's current value)."""
    found = await service.list_entries(ctx, batch_id)
    return EntryList(
        [EntryWithHistory(**_entry(h.entry), superseded_by=h.superseded_by) for h in found]
    )


api = [
    api_batches,
    api_create,
    api_batch,
    api_command,
    api_record_entry,
    api_entry_from_equipment,
    api_entries,
]
pages = [batches_page, create_form, batch_page, command_form]
