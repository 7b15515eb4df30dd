"""BatchML routes: a recipe revision as BatchML (page and API), the import of another
system's BatchML master recipe as a draft (upload page and API), and its gap report (page,
printable, CSV and API)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Response, Template

from opencdmo.errors import AppError, ValidationFailed
from opencdmo.recipes.batchml_queries import ImportRow
from opencdmo.recipes.batchml_recipe import service
from opencdmo.recipes.routes import Revision
from opencdmo.recipes.schemas import BatchmlImportOut, GapOut
from opencdmo.scope import TenantContext
from opencdmo.web.files import attachment, file_part, is_multipart
from opencdmo.web.flash import see_other
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data, page

ONE = "/recipes/{recipe_id:uuid}"
IMPORTS = "/recipes/imports"
IMPORT = IMPORTS + "/{import_id:uuid}"
XML = "application/xml"


def _xml(exported: service.Exported) -> Response[bytes]:
    return Response(
        exported.xml,
        media_type=XML,
        headers={
            "Content-Disposition": attachment(exported.file_name),
            "X-Content-Type-Options": "nosniff",
        },
    )


@get(ONE + "/batchml", opt=requires("recipes", "read"), include_in_schema=False, media_type=XML)
async def batchml_download(
    ctx: NamedDependency[TenantContext], recipe_id: FromPath[UUID], revision: Revision = None
) -> Response[bytes]:
    return _xml(await service.master_recipe_batchml(ctx, recipe_id, revision))


@get(ONE + "/batchml", opt=requires("recipes", "read"), tags=["recipes"], media_type=XML)
async def api_batchml(
    ctx: NamedDependency[TenantContext], recipe_id: FromPath[UUID], revision: Revision = None
) -> Response[bytes]:
    """The revision (default: the effective one; 409 when there is none) as ISA-88 BatchML:
    a ``BatchInformation`` with one ``MasterRecipe`` (B2MML V0700), valid against the MESA
    schema: header, procedure, formula with every parameter and its ranges, materials,
    equipment requirements, data-capture fields, content hash."""
    return _xml(await service.master_recipe_batchml(ctx, recipe_id, revision))


async def _document(request: Request[Any, Any, Any]) -> bytes:
    """The document: a multipart file part ``document``, or the request body itself."""
    if is_multipart(request):
        part = await file_part(await form_data(request), "document")
        if part is None:
            raise ValidationFailed(
                "document: choose the BatchML file to import.", details={"field": "document"}
            )
        return part.data
    return await request.body()


def _out(row: ImportRow) -> BatchmlImportOut:
    return BatchmlImportOut(
        row.id,
        row.recipe_id,
        row.recipe_name,
        row.document_sha256,
        row.document_id,
        row.document_version,
        row.document_name,
        row.size_bytes,
        row.imported_at,
        [GapOut(**gap) for gap in row.gaps],
    )


@post(
    "/recipes/batchml",
    opt=requires("recipes", "edit", uploads=True),
    tags=["recipes"],
    status_code=201,
)
async def api_import(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> BatchmlImportOut:
    """Import a BatchML master recipe (the XML as the body, ``application/xml``, or a
    multipart ``document`` file part) as a new draft master recipe, with its gap report:
    every element that has no counterpart here (kind, the document's id and name, why). A
    document that is not valid BatchML (a schema error, a DTD or entity, not XML, too large,
    another root) is refused with the reason, and nothing is written."""
    imported = await service.import_batchml(ctx, await _document(request))
    return _out(await service.get_import(ctx, imported.import_id))


@get(IMPORT, opt=requires("recipes", "read"), tags=["recipes"])
async def api_import_report(
    ctx: NamedDependency[TenantContext], import_id: FromPath[UUID]
) -> BatchmlImportOut:
    """An import's document and gap report."""
    return _out(await service.get_import(ctx, import_id))


async def _import_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    *,
    status: int = 200,
    error: AppError | None = None,
) -> Template:
    return await page(
        request,
        "recipes/import.html",
        status_code=status,
        imports=await service.recent_imports(ctx),
        error=error.message if error else None,
    )


@get("/recipes/import", opt=requires("recipes", "edit"), include_in_schema=False)
async def import_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    """Upload a BatchML master recipe; the imports made so far."""
    return await _import_page(request, ctx)


@post(
    "/recipes/import",
    opt=requires("recipes", "edit", uploads=True),
    include_in_schema=False,
    status_code=303,
)
async def import_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Response[Any] | Template:
    try:
        if not is_multipart(request):
            raise ValidationFailed(
                "document: choose the BatchML file to import.", details={"field": "document"}
            )
        imported = await service.import_batchml(ctx, await _document(request))
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _import_page(request, ctx, status=exc.status_code, error=exc)
    count = len(imported.gaps)
    message = "Imported as a draft master recipe: " + (
        "every element has its counterpart." if not count else f"{count} gap(s) to resolve."
    )
    return see_other(request, f"/t/{ctx.slug}{IMPORTS}/{imported.import_id}", flash=message)


@get(IMPORT, opt=requires("recipes", "read"), include_in_schema=False)
async def import_report_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], import_id: FromPath[UUID]
) -> Template:
    """The gap report of an import (printable)."""
    row = await service.get_import(ctx, import_id)
    return await page(request, "recipes/gaps.html", row=row)


@get(IMPORT + "/gaps.csv", opt=requires("recipes", "read"), include_in_schema=False)
async def import_report_csv(
    ctx: NamedDependency[TenantContext], import_id: FromPath[UUID]
) -> Response[str]:
    row = await service.get_import(ctx, import_id)
    return Response(
        service.gaps_csv(row),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": attachment(f"batchml-import-{row.id}-gaps.csv")},
    )


pages = [batchml_download, import_page, import_form, import_report_page, import_report_csv]
api = [api_batchml, api_import, api_import_report]
