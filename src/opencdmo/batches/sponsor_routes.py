"""The sponsor's "Batches made for us" page and API, and the shared record's download."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath
from litestar.response import Response, Stream, Template

from opencdmo.batches import sponsor_view
from opencdmo.batches.schemas import SponsoredBatchOut
from opencdmo.batches.sponsor_view import MadeForUs
from opencdmo.exports import routes as export_routes
from opencdmo.exports import service as exports
from opencdmo.exports.schemas import ExportOut
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.web.guards import requires
from opencdmo.web.pages import page

BATCHES = "/partners/batches"
RECORD = BATCHES + "/{batch_id:uuid}/record.xml"
XML = "application/xml"
# Asking for the record is a command (an export the job worker builds, read there in two
# read-only transactions, ours then the CDMO's): it opens its own unit of work.
RECORD_OPT = requires("partners", "read", writes=True)


def batch_out(found: MadeForUs) -> SponsoredBatchOut:
    b = found.batch
    return SponsoredBatchOut(
        found.cdmo_slug,
        b.cdmo_name,
        b.batch_id,
        b.number,
        b.recipe,
        b.status,
        b.current_step,
        b.open_exceptions,
        b.open_deviations,
        b.decision,
        b.decided_at,
        b.planned_start,
        b.record_available,
    )


@get(BATCHES, opt=requires("partners", "read"), tags=["partners"])
async def api_made_for_us(ctx: NamedDependency[TenantContext]) -> list[SponsoredBatchOut]:
    """The batches the tenant's CDMO partners make for it, per active relationship: number,
    recipe, status, current step, open exceptions and deviations, release decision, and
    whether the released record can be read (read-only; empty for a CDMO)."""
    return [batch_out(m) for m in await sponsor_view.made_for_us(ctx)]


@get(
    RECORD,
    opt=RECORD_OPT,
    tags=["partners"],
    media_type=XML,
    responses={202: ResponseSpec(ExportOut, description="Not built yet: the export to poll")},
)
async def api_shared_record(
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    batch_id: FromPath[UUID],
) -> Stream | Response[ExportOut]:
    """A released batch's record as BatchML, when its CDMO shares records with us. Built by
    the job worker: answered once built (within ``OPENCDMO_EXPORT_WAIT_SECONDS``), else 202
    with the export to poll (``GET .../exports/{id}``)."""
    subject = {"batch_id": str(batch_id), "shared": True}
    return await export_routes.requested(ctx, settings, exports.BATCH_RECORD, subject)


api = [api_made_for_us, api_shared_record]


@get(BATCHES, opt=requires("partners", "read"), include_in_schema=False)
async def made_for_us_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    found = await sponsor_view.made_for_us(ctx)
    return await page(request, "batches/made_for_us.html", batches=found)


@post(
    RECORD,
    opt=requires("partners", "read"),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def shared_record_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> Response[Any]:
    """Ask for the shared record's BatchML: the job worker builds it; its page follows."""
    subject = {"batch_id": str(batch_id), "shared": True}
    row = await exports.request(ctx, exports.BATCH_RECORD, subject)
    return export_routes.redirect_to(request, ctx, row)


pages = [made_for_us_page, shared_record_form]
