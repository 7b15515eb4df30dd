"""Exports: one's own exports (page and API), an export's page (its state, polling while it
is built, then the download), its file, and asking for one through the API. The pages that
ask for an export (the batch record, the audit trail) post to their own routes, which
redirect here."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import FromPath, JSONBody
from litestar.response import Response, Stream, Template

from opencdmo.errors import Conflict
from opencdmo.exports import service
from opencdmo.exports.schemas import ExportIn, ExportLinks, ExportOut
from opencdmo.exports.service import ExportRow
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.storage.streams import read_chunks
from opencdmo.web.files import attachment
from opencdmo.web.flash import see_other
from opencdmo.web.guards import requires
from opencdmo.web.pages import page

EXPORTS = "/exports"
ONE = EXPORTS + "/{export_id:uuid}"
OWN = requires("tenant", "read")
# The download records itself (``export.downloaded``): a reading route that writes.
DOWNLOAD = requires("tenant", "read", writes=True)


def export_out(ctx: TenantContext, row: ExportRow) -> ExportOut:
    api = f"/api/v1/t/{ctx.slug}/exports/{row.id}"
    return ExportOut(
        id=row.id,
        kind=row.kind,
        subject=row.subject_dict,
        state=row.state,
        error=row.error,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        finished_at=row.finished_at,
        file_name=row.file_name,
        media_type=row.media_type,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        links=ExportLinks(
            self=api,
            page=f"/t/{ctx.slug}/exports/{row.id}",
            file=api + "/file" if row.state == "done" else None,
        ),
    )


async def file_response(ctx: TenantContext, export_id: UUID) -> Stream:
    """The export's stored file, streamed, as an attachment with its name and SHA-256."""
    row, reader = await service.open_file(ctx, export_id)
    return Stream(
        read_chunks(reader),
        media_type=row.media_type or "application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{row.file_name}"'
            if row.file_name and row.file_name.isascii() and '"' not in row.file_name
            else attachment(row.file_name or "export"),
            "Content-Length": str(row.size_bytes),
            "X-Content-SHA256": row.sha256 or "",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


async def requested(
    ctx: TenantContext, settings: Settings, kind: str, subject: dict[str, Any]
) -> Stream | Response[ExportOut]:
    """The API's answer to a request for an export: the file once the job worker built it
    (within ``OPENCDMO_EXPORT_WAIT_SECONDS``), else 202 with the export to poll; one that
    failed is a 409 with its error."""
    row = await service.request(ctx, kind, subject)
    row = await service.wait(ctx, row.id, settings.export_wait_seconds)
    if row.state == "done":
        return await file_response(ctx, row.id)
    if row.state == "failed":
        raise Conflict(f"The export failed: {row.error}", details={"export_id": str(row.id)})
    # JSON, whatever the route's file type (its handler declares the file's)
    return Response(export_out(ctx, row), status_code=202, media_type=MediaType.JSON)


def redirect_to(
    request: Request[Any, Any, Any], ctx: TenantContext, row: ExportRow
) -> Response[Any]:
    return see_other(request, f"/t/{ctx.slug}/exports/{row.id}", flash="Export requested.")


@get(EXPORTS, opt=OWN, include_in_schema=False)
async def exports_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    """One's own exports, newest first."""
    return await page(request, "exports/list.html", exports=await service.mine(ctx))


@get(ONE, opt=OWN, include_in_schema=False)
async def export_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], export_id: FromPath[UUID]
) -> Template:
    """An export's state: polling every second while queued or running, then its download
    (size and SHA-256), or its error and Export again."""
    row = await service.get(ctx, export_id)
    return await page(request, "exports/export.html", block="state", export=row)


@post(ONE + "/again", opt=OWN, include_in_schema=False, status_code=303, media_type="text/html")
async def export_again_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], export_id: FromPath[UUID]
) -> Response[Any]:
    """Ask again for a failed (or any) export of one's own: a new export of the same subject."""
    row = await service.get(ctx, export_id)
    again = await service.request_again(ctx, row)
    return redirect_to(request, ctx, again)


@get(ONE + "/file", opt=DOWNLOAD, include_in_schema=False)
async def export_file_page(
    ctx: NamedDependency[TenantContext], export_id: FromPath[UUID]
) -> Stream:
    return await file_response(ctx, export_id)


@get(EXPORTS, opt=OWN, tags=["exports"])
async def api_exports(ctx: NamedDependency[TenantContext]) -> list[ExportOut]:
    """One's own exports, newest first (another person's are not listed)."""
    return [export_out(ctx, row) for row in await service.mine(ctx)]


@get(ONE, opt=OWN, tags=["exports"])
async def api_export(ctx: NamedDependency[TenantContext], export_id: FromPath[UUID]) -> ExportOut:
    """One of one's own exports: its state and, once done, its file's size and SHA-256."""
    return export_out(ctx, await service.get(ctx, export_id))


@get(ONE + "/file", opt=DOWNLOAD, tags=["exports"], media_type="application/octet-stream")
async def api_export_file(ctx: NamedDependency[TenantContext], export_id: FromPath[UUID]) -> Stream:
    """The built export's file (attachment; its SHA-256 in ``X-Content-SHA256``)."""
    return await file_response(ctx, export_id)


@post(EXPORTS, opt=OWN, tags=["exports"], status_code=202)
async def api_request_export(
    ctx: NamedDependency[TenantContext], data: JSONBody[ExportIn]
) -> ExportOut:
    """Ask for an export (``batch_record_xml`` of a batch, or ``audit_trail`` in a format
    with a filter): authorized as its page is; the job worker builds it (poll its link)."""
    subject = {k: v for k, v in _subject(data).items() if v is not None}
    return export_out(ctx, await service.request(ctx, data.kind, subject))


def _subject(data: ExportIn) -> dict[str, Any]:
    s = data.subject
    return {
        "batch_id": str(s.batch_id) if s.batch_id else None,
        "shared": True if s.shared else None,
        "format": s.format,
        "actor": s.actor,
        "entity": s.entity,
        "action": s.action,
        "since": s.since,
        "until": s.until,
    }


pages = [exports_page, export_page, export_again_form, export_file_page]
api = [api_exports, api_export, api_export_file, api_request_export]
