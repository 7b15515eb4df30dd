"""The sponsor's "Batches made for us" page and API, and the shared record's download."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from opencdmo.batches import sponsor_view
from opencdmo.batches.schemas import SponsoredBatchOut
from opencdmo.batches.sponsor_view import MadeForUs
from opencdmo.scope import TenantContext
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


api = [api_made_for_us]


@get(BATCHES, opt=requires("partners", "read"), include_in_schema=False)
async def made_for_us_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    found = await sponsor_view.made_for_us(ctx)
    return await page(request, "batches/made_for_us.html", batches=found)


pages = [made_for_us_page]
