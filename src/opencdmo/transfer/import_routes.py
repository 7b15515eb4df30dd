"""Receiving a package, after verification: its gap report (API JSON, a printable page, CSV),
the mapping of each gap, and the import as a draft recipe (``transfer:import``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import MediaType, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.response import Response, Template

from opencdmo.errors import AppError, ValidationFailed
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.transfer import gaps, importing, mapping
from opencdmo.transfer.gaps import GapReport
from opencdmo.transfer.mapping import Given
from opencdmo.transfer.routes import job_out
from opencdmo.transfer.schemas import GapOut, GapReportOut, ImportOut, MappingIn
from opencdmo.web.flash import see_other
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data, page

PACKAGE = "/transfer/packages/{package_id:uuid}"


def report_out(report: GapReport) -> GapReportOut:
    resolved = {g.ref: g.resolved for g in report.gaps()}
    revision = report.contents.revision
    return GapReportOut(
        package_id=report.package.id,
        status=report.package.status,
        sender=report.sender,
        recipe=revision["name"],
        revision=revision["revision"],
        content_hash=revision["content_hash"],
        resolved=report.resolved,
        gaps=[GapOut(**r, resolved=resolved[r["ref"]]) for r in report.rows()],
        previous_import=None if report.previous is None else report.previous.id,
        changes_since_previous=report.changes,
        imported_recipe_id=None if report.imported is None else report.imported.recipe_id,
    )


@get(PACKAGE + "/gaps", opt=requires("transfer", "import"), tags=["transfer"])
async def api_gaps(
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    package_id: FromPath[UUID],
) -> GapReportOut:
    """The gap report of a verified received package against this organisation's library,
    equipment and materials."""
    return report_out(await gaps.analyse(settings, ctx, package_id))


@post(PACKAGE + "/mappings", opt=requires("transfer", "import"), tags=["transfer"], status_code=200)
async def api_map(
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    package_id: FromPath[UUID],
    data: JSONBody[MappingIn],
) -> GapReportOut:
    """Save the choice for one gap (a new choice for the same gap replaces the last)."""
    given = Given(data.gap_kind, data.ref, data.resolution, data.target_id, data.target)
    return report_out(await mapping.choose(settings, ctx, package_id, given))


async def _imported(
    settings: Settings, ctx: TenantContext, package_id: UUID
) -> tuple[importing.Imported, str]:
    made = await importing.import_package(settings, ctx, package_id)
    return made, f"/t/{ctx.slug}/recipes/{made.recipe_id}"


@post(PACKAGE + "/import", opt=requires("transfer", "import"), tags=["transfer"], status_code=201)
async def api_import(
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    package_id: FromPath[UUID],
) -> ImportOut:
    """Import the package as a draft master recipe (a new revision of the recipe a package of
    the same sender recipe became); 409 while a gap is not resolved."""
    made, href = await _imported(settings, ctx, package_id)
    return ImportOut(
        recipe_id=made.recipe_id, revision=made.revision, new_recipe=made.new_recipe, recipe=href
    )


async def _gaps_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    settings: Settings,
    package_id: UUID,
    *,
    status: int = 200,
    error: str | None = None,
) -> Template:
    report = await gaps.analyse(settings, ctx, package_id)
    latest = await importing.last_import(ctx, package_id)
    return await page(
        request,
        "transfer/gaps.html",
        status_code=status,
        report=report,
        choices=await gaps.choices(ctx),
        error=error or (latest[1] if latest else None),
        importing=job_out(latest[0]) if latest and latest[0].state == "running" else None,
    )


@get(PACKAGE + "/gaps", opt=requires("transfer", "import"), include_in_schema=False)
async def gaps_page(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    package_id: FromPath[UUID],
) -> Template:
    """The printable gap report, with a choice per gap and the import."""
    return await _gaps_page(request, ctx, settings, package_id)


@get(PACKAGE + "/gaps.csv", opt=requires("transfer", "import"), include_in_schema=False)
async def gaps_csv(
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    package_id: FromPath[UUID],
) -> Response[Any]:
    report = await gaps.analyse(settings, ctx, package_id)
    return Response(
        gaps.csv_of(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="package-{package_id}-gaps.csv"'},
    )


def _given(data: dict[str, Any]) -> Given:
    target_id = str(data.get("target_id", "")).strip()
    try:
        parsed = UUID(target_id) if target_id else None
    except ValueError:
        raise ValidationFailed("target_id: not an id.", details={"field": "target_id"}) from None
    return Given(
        str(data.get("gap_kind", "")),
        str(data.get("ref", "")),
        str(data.get("resolution", "")),
        parsed,
        str(data.get("target", "")),
    )


@post(
    PACKAGE + "/mappings",
    opt=requires("transfer", "import"),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def map_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    package_id: FromPath[UUID],
) -> Template | Response[Any]:
    """Save the choice for one gap, back to the report."""
    try:
        given = _given(await form_data(request))
        await mapping.choose(settings, ctx, package_id, given)
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _gaps_page(
            request, ctx, settings, package_id, status=exc.status_code, error=exc.message
        )
    back = f"/t/{ctx.slug}/transfer/packages/{package_id}/gaps"
    return see_other(request, back, flash=f"Saved: {given.ref} - {given.resolution}.")


@post(
    PACKAGE + "/import",
    opt=requires("transfer", "import"),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def import_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    package_id: FromPath[UUID],
) -> Template | Response[Any]:
    """Ask the job worker to import the package; back to the report, where the import's
    progress shows and, once done, the draft it became."""
    try:
        await importing.start_import(settings, ctx, package_id)
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _gaps_page(
            request, ctx, settings, package_id, status=exc.status_code, error=exc.message
        )
    back = f"/t/{ctx.slug}/transfer/packages/{package_id}/gaps"
    said = "Importing the package: its progress shows here, and the draft when done."
    return see_other(request, back, flash=said)


api = [api_gaps, api_map, api_import]
pages = [gaps_page, gaps_csv, map_form, import_form]
