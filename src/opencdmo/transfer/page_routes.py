"""Tech-transfer pages: the tenant's signing key and trusted sender keys under its settings
(``transfer:trust``), the export form on a recipe's page and the list of packages sent with
their downloads (``transfer:export``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import MediaType, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Response, Template

from opencdmo.errors import AppError
from opencdmo.recipes.page_routes import _recipe_page
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from opencdmo.transfer import export, keys
from opencdmo.transfer.routes import archive_response
from opencdmo.web.files import file_part, is_multipart
from opencdmo.web.flash import see_other
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data, page

SETTINGS = "/settings/transfer"
PACKAGES = "/transfer/packages"
EXPORT_ACTION = "transfer_export"


async def _settings_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    *,
    status: int = 200,
    error: str | None = None,
    form: str | None = None,
    kept: dict[str, Any] | None = None,
) -> Template:
    rows = await keys.trusted_keys(ctx)
    people = {r.added_by for r in rows} | {r.removed_by for r in rows if r.removed_by}
    return await page(
        request,
        "transfer/settings.html",
        status_code=status,
        key=await keys.public_key(ctx),
        trusted=rows,
        people=await tenancy.people_names(ctx, people),
        error=error,
        form=form,
        kept=kept or {},
    )


@get(SETTINGS, opt=requires("transfer", "trust"), include_in_schema=False)
async def settings_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    """The signing key (fingerprint, PEM download) and the trusted sender keys."""
    return await _settings_page(request, ctx)


@get(SETTINGS + "/key.pem", opt=requires("transfer", "trust"), include_in_schema=False)
async def key_pem(ctx: NamedDependency[TenantContext]) -> Response[Any]:
    """The signing key's public half as a PEM file (a 404 until it is created)."""
    from opencdmo.errors import NotFound

    found = await keys.public_key(ctx)
    if found is None:
        raise NotFound("This organisation has no signing key yet.")
    return Response(
        found.pem,
        media_type="application/x-pem-file",
        headers={"Content-Disposition": f'attachment; filename="{ctx.slug}-transfer-key.pem"'},
    )


@post(
    SETTINGS + "/key",
    opt=requires("transfer", "trust"),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def create_key_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
) -> Template | Response[Any]:
    try:
        key = await keys.ensure_key(settings, ctx)
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _settings_page(request, ctx, status=exc.status_code, error=exc.message)
    said = f"The signing key is ready: fingerprint {key.fingerprint}."
    return see_other(request, f"/t/{ctx.slug}{SETTINGS}", flash=said)


async def _key_text(data: dict[str, Any]) -> str:
    part = await file_part(data, "key_file")
    if part is not None:
        return part.data.decode("ascii", errors="replace")
    value = data.get("public_key", "")
    return value if isinstance(value, str) else ""


@post(
    SETTINGS + "/trusted",
    opt=requires("transfer", "trust", uploads=True),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def trust_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template | Response[Any]:
    """Trust a sender key (pasted or uploaded), its fingerprint confirmed."""
    data = await form_data(request)
    kept = {k: str(data.get(k, "")) for k in ("public_key", "fingerprint", "label")}
    try:
        text = await _key_text(data) if is_multipart(request) else kept["public_key"]
        row = await keys.trust(ctx, text, kept["fingerprint"], kept["label"])
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _settings_page(
            request, ctx, status=exc.status_code, error=exc.message, form="add", kept=kept
        )
    said = f"The key of {row.label} is trusted (fingerprint {row.fingerprint})."
    return see_other(request, f"/t/{ctx.slug}{SETTINGS}", flash=said)


@post(
    SETTINGS + "/trusted/{trusted_key_id:uuid}/remove",
    opt=requires("transfer", "trust"),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def untrust_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    trusted_key_id: FromPath[UUID],
) -> Template | Response[Any]:
    data = await form_data(request)
    reason = data.get("reason", "")
    try:
        row = await keys.untrust(ctx, trusted_key_id, reason if isinstance(reason, str) else "")
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _settings_page(
            request,
            ctx,
            status=exc.status_code,
            error=exc.message,
            form=str(trusted_key_id),
            kept={"reason": reason},
        )
    return see_other(
        request, f"/t/{ctx.slug}{SETTINGS}", flash=f"The key of {row.label} is no longer trusted."
    )


@post(
    "/recipes/{recipe_id:uuid}/transfer-packages",
    opt=requires("transfer", "export"),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def export_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    recipe_id: FromPath[UUID],
) -> Template | Response[Any]:
    """Export the effective revision for tech transfer, signed "approved for transfer"."""
    data = await form_data(request)
    reason = str(data.get("reason", ""))
    try:
        made = await export.export_package(
            settings, ctx, recipe_id, str(data.get("password", "")), reason
        )
    except AppError as exc:
        if exc.status_code == 404:
            raise
        kept = {"action": EXPORT_ACTION, "reason": reason}
        return await _recipe_page(
            request, ctx, recipe_id, status=exc.status_code, error=exc.message, form=kept
        )
    said = (
        f"Signed and exported revision {made.package.revision}: package "
        f"{made.package.id} (SHA-256 {made.package.sha256})."
    )
    return see_other(request, f"/t/{ctx.slug}{PACKAGES}", flash=said)


@get(PACKAGES, opt=requires("transfer", "export"), include_in_schema=False)
async def packages_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    """The packages the tenant sent, with their downloads."""
    rows = await export.packages(ctx)
    return await page(
        request,
        "transfer/packages.html",
        packages=rows,
        people=await tenancy.people_names(ctx, {r.created_by for r in rows}),
    )


@get(
    PACKAGES + "/{package_id:uuid}/archive",
    opt=requires("transfer", "export"),
    include_in_schema=False,
)
async def package_download(
    ctx: NamedDependency[TenantContext], package_id: FromPath[UUID]
) -> Response[Any]:
    row, data = await export.package_of(ctx, package_id)
    return archive_response(ctx, row, data)


pages = [
    settings_page,
    key_pem,
    create_key_form,
    trust_form,
    untrust_form,
    export_form,
    packages_page,
    package_download,
]
