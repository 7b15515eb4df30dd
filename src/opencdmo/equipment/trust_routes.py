"""The tenant's OPC UA trust list, for its administrators (``equipment:trust``): a page
under the tenant's settings to upload a server certificate (PEM or DER), see the list with
each certificate's thumbprint, subject and expiry, and remove one with a reason; the same
through the JSON API (the upload as multipart/form-data)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any
from uuid import UUID

from litestar import MediaType, Request, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody
from litestar.params import FromPath, JSONBody
from litestar.response import Response, Template

from opencdmo.equipment import trust
from opencdmo.equipment.schemas import TrustedOut, TrustRemoveIn
from opencdmo.equipment.trust_queries import TrustedRow
from opencdmo.errors import AppError, ValidationFailed
from opencdmo.scope import TenantContext
from opencdmo.tenancy import service as tenancy
from opencdmo.web.files import file_part, is_multipart
from opencdmo.web.flash import see_other
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data, page

TRUST = "/settings/opcua-trust"
ONE = TRUST + "/{certificate_id:uuid}"
PART = "certificate"


def trusted_out(row: TrustedRow) -> TrustedOut:
    return TrustedOut(**asdict(row))


async def _added(request: Request[Any, Any, Any], ctx: TenantContext) -> TrustedRow:
    form = await form_data(request) if is_multipart(request) else {}
    part = await file_part(form, PART)
    if part is None:
        raise ValidationFailed(
            "certificate: choose the server's certificate file (PEM or DER), sent as a "
            "multipart/form-data part named certificate.",
            details={"field": PART},
        )
    return await trust.add(ctx, part.data, part.filename)


class UploadOperation(Operation):
    """The certificate comes as multipart: one file part."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            content={
                "multipart/form-data": OpenAPIMediaType(
                    schema={  # type: ignore[arg-type]
                        "type": "object",
                        "required": [PART],
                        "properties": {
                            PART: {
                                "type": "string",
                                "format": "binary",
                                "description": "One X.509 certificate, PEM or DER",
                            }
                        },
                    }
                )
            },
        )


@get(TRUST, opt=requires("equipment", "trust"), tags=["equipment"])
async def api_trusted(ctx: NamedDependency[TenantContext]) -> list[TrustedOut]:
    """The OPC UA server certificates the tenant trusts, and those it trusted before (with
    who removed them, when and why): current ones first, newest first."""
    return [trusted_out(r) for r in await trust.listing(ctx)]


@post(
    TRUST,
    opt=requires("equipment", "trust", uploads=True),
    tags=["equipment"],
    status_code=201,
    operation_class=UploadOperation,
)
async def api_trust(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> TrustedOut:
    """Trust an OPC UA server's certificate (a ``certificate`` part: one X.509 certificate,
    PEM or DER, not expired; anything else is a 422). From then on the capture worker and
    the setpoint writer connect with Sign or SignAndEncrypt to the server presenting it."""
    return trusted_out(await _added(request, ctx))


@post(ONE + "/remove", opt=requires("equipment", "trust"), tags=["equipment"], status_code=200)
async def api_untrust(
    ctx: NamedDependency[TenantContext],
    certificate_id: FromPath[UUID],
    data: JSONBody[TrustRemoveIn],
) -> TrustedOut:
    """Stop trusting a certificate, saying why (it stays in the list, marked removed)."""
    return trusted_out(await trust.remove(ctx, certificate_id, data.reason))


api = [api_trusted, api_trust, api_untrust]


async def _page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    *,
    status: int = 200,
    error: str | None = None,
    form: str | None = None,
    kept: dict[str, Any] | None = None,
) -> Template:
    rows = await trust.listing(ctx)
    people = {r.added_by for r in rows} | {r.removed_by for r in rows if r.removed_by}
    return await page(
        request,
        "equipment/trust.html",
        status_code=status,
        certificates=rows,
        people=await tenancy.people_names(ctx, people),
        error=error,
        form=form,
        kept=kept or {},
    )


@get(TRUST, opt=requires("equipment", "trust"), include_in_schema=False)
async def trust_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    """The trust list with the upload form and a remove form for each current certificate."""
    return await _page(request, ctx)


@post(
    TRUST,
    opt=requires("equipment", "trust", uploads=True),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def trust_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template | Response[Any]:
    try:
        row = await _added(request, ctx)
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _page(request, ctx, status=exc.status_code, error=exc.message, form="add")
    said = f"Certificate {row.subject} trusted (SHA-256 {row.thumbprint[:23]}…)."
    return see_other(request, f"/t/{ctx.slug}{TRUST}", flash=said)


@post(
    ONE + "/remove",
    opt=requires("equipment", "trust"),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def untrust_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    certificate_id: FromPath[UUID],
) -> Template | Response[Any]:
    data = await form_data(request)
    reason = data.get("reason", "")
    try:
        row = await trust.remove(ctx, certificate_id, reason if isinstance(reason, str) else "")
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _page(
            request,
            ctx,
            status=exc.status_code,
            error=exc.message,
            form=str(certificate_id),
            kept={"reason": reason},
        )
    return see_other(request, f"/t/{ctx.slug}{TRUST}", flash=f"Certificate {row.subject} removed.")


pages = [trust_page, trust_form, untrust_form]
