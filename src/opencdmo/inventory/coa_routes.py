"""A lot's certificate of analysis: attach or replace it (API and the lot page's form, both
multipart), and download it as stored, checked against its SHA-256."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template

from opencdmo.errors import AppError, ValidationFailed
from opencdmo.inventory import receipt, service
from opencdmo.inventory.edge import CoaOperation, coa_upload, uuid_field
from opencdmo.inventory.routes import LOT, detail
from opencdmo.inventory.schemas import LotDetail
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.storage.queries import StoredFileRow
from opencdmo.web.files import attachment, is_multipart
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data, page

COA = LOT + "/coa"


async def _attach(
    request: Request[Any, Any, Any], settings: Settings, ctx: TenantContext, lot_id: UUID
) -> service.LotView:
    """The attachment the request asks for: the lot first (another tenant's is not found,
    whatever was sent), then the file and the fields."""
    await service.get_lot(ctx, lot_id)
    form = await form_data(request) if is_multipart(request) else {}
    upload = await coa_upload(form, settings)
    if upload is None:
        raise ValidationFailed(
            "coa: choose the certificate of analysis to upload (a multipart/form-data file "
            "part named coa).",
            details={"field": "coa"},
        )
    reason = form.get("reason", "")
    if not isinstance(reason, str):
        raise ValidationFailed("reason: must be text.", details={"field": "reason"})
    return await receipt.attach_coa(ctx, lot_id, upload, reason, uuid_field(form, "replaces"))


def _download(stored: StoredFileRow, data: bytes) -> Response[bytes]:
    return Response(
        data,
        media_type=stored.content_type,
        headers={
            "Content-Disposition": attachment(stored.filename),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


@post(
    COA,
    opt=requires("materials", "manage", uploads=True),
    tags=["inventory"],
    status_code=200,
    operation_class=CoaOperation,
)
async def api_attach_coa(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
    lot_id: FromPath[UUID],
) -> LotDetail:
    """Attach the lot's certificate of analysis (multipart/form-data: the file in a ``coa``
    part, a PDF, PNG or JPEG by its content), while the lot is in quarantine or on hold. To
    replace the one it has: ``replaces`` (that file's id) and a ``reason``. A first attachment
    that finds one attached meanwhile is a 409, as is a replacement of a replaced one."""
    return detail(await _attach(request, settings, ctx, lot_id))


@get(COA, opt=requires("materials", "read"), tags=["inventory"], media_type="application/pdf")
async def api_coa(ctx: NamedDependency[TenantContext], lot_id: FromPath[UUID]) -> Response[bytes]:
    """The lot's certificate of analysis as stored (its own type: PDF, PNG or JPEG), refused
    if its bytes no longer match the SHA-256 it was stored with; 404 when it has none."""
    return _download(*await service.coa_file(ctx, lot_id))


api = [api_attach_coa, api_coa]


@get(COA, opt=requires("materials", "read"), include_in_schema=False)
async def coa_page(ctx: NamedDependency[TenantContext], lot_id: FromPath[UUID]) -> Response[bytes]:
    return _download(*await service.coa_file(ctx, lot_id))


@post(
    COA,
    opt=requires("materials", "manage", uploads=True),
    include_in_schema=False,
    status_code=200,
)
async def coa_form(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
    lot_id: FromPath[UUID],
) -> Template:
    """The lot page's form: the page again (its CoA card for htmx), with what went wrong."""
    try:
        view = await _attach(request, settings, ctx, lot_id)
    except AppError as exc:
        if exc.status_code not in (409, 422):
            raise
        details = exc.details if isinstance(exc.details, dict) else {}
        form = await form_data(request) if is_multipart(request) else {}
        reason = form.get("reason")
        return await page(
            request,
            "inventory/lot.html",
            block="coa",
            status_code=exc.status_code,
            view=await service.get_lot(ctx, lot_id),
            status_names=service.STATUS_NAMES,
            upload_max_bytes=settings.upload_max_bytes,
            coa_problem={"message": exc.message, "field": details.get("field")},
            coa_reason=reason if isinstance(reason, str) else "",
        )
    return await page(
        request,
        "inventory/lot.html",
        block="coa",
        view=view,
        status_names=service.STATUS_NAMES,
        upload_max_bytes=settings.upload_max_bytes,
        flash="Certificate of analysis attached.",
    )


pages = [coa_page, coa_form]
