"""Tech-transfer pages: the tenant's signing key and trusted sender keys under its settings
(``transfer:trust``), the export form on a recipe's page and the list of packages sent with
their downloads (``transfer:export``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from litestar import MediaType, Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Response, Stream, Template

from opencdmo.errors import AppError, ValidationFailed
from opencdmo.recipes.page_routes import render_recipe_page
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from opencdmo.transfer import export, keys, receive
from opencdmo.transfer.receive_queries import JobRow
from opencdmo.transfer.routes import archive_response, job_out
from opencdmo.web.files import file_part, is_multipart
from opencdmo.web.flash import see_other
from opencdmo.web.guards import PACKAGE_UPLOADS, requires
from opencdmo.web.pages import form_data, page

SETTINGS = "/settings/transfer"
PACKAGES = "/transfer/packages"
INBOX = "/transfer/inbox"
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
        return await render_recipe_page(
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
    """The packages the tenant sent, with their downloads, each send to a partner with the
    receiver's status, and a "Send to" button for each partner of an active relationship."""
    return await _packages_page(request, ctx)


async def _packages_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    *,
    status: int = 200,
    error: str | None = None,
    failed: UUID | None = None,
) -> Template:
    rows = await export.packages(ctx)
    sends: dict[UUID, list[receive.SentTo]] = {}
    for found in await receive.sent_to(ctx):
        sends.setdefault(found.send.package_id, []).append(found)
    return await page(
        request,
        "transfer/packages.html",
        status_code=status,
        packages=rows,
        sends=sends,
        targets=await receive.send_targets(ctx),
        people=await tenancy.people_names(ctx, {r.created_by for r in rows}),
        error=error,
        failed=failed,
    )


def _uuid(value: Any) -> UUID:
    """A form's id field; one that is not an id names no object (a 404 further on)."""
    try:
        return UUID(str(value))
    except ValueError:
        return UUID(int=0)


@post(
    PACKAGES + "/{package_id:uuid}/sends",
    opt=requires("transfer", "export"),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def send_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    package_id: FromPath[UUID],
) -> Template | Response[Any]:
    """Send the package to the partner of the chosen relationship."""
    data = await form_data(request)
    try:
        sent = await receive.send_to_partner(ctx, package_id, _uuid(data.get("link_id")))
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _packages_page(
            request, ctx, status=exc.status_code, error=exc.message, failed=package_id
        )
    said = f"Sent package {package_id} to {sent.send.receiver_name}: it is in their inbox."
    return see_other(request, f"/t/{ctx.slug}{PACKAGES}", flash=said)


async def _inbox_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    *,
    status: int = 200,
    error: str | None = None,
    findings: list[dict[str, Any]] | None = None,
    uploaded: JobRow | None = None,
) -> Template:
    return await page(
        request,
        "transfer/inbox.html",
        status_code=status,
        packages=await receive.inbox(ctx),
        job_id=uuid4(),
        error=error,
        findings=findings or [],
        uploaded=None if uploaded is None else job_out(uploaded),
    )


@get(INBOX, opt=requires("transfer", "import"), include_in_schema=False)
async def inbox_page(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    job: FromQuery[str] = "",
) -> Template | Response[Any]:
    """The packages received (from partners, uploaded), and the upload form. ``job``: an
    upload's verification, its progress while the worker runs it, then its findings or its
    error (one verified: its package's page)."""
    if not job:
        return await _inbox_page(request, ctx)
    row = await receive.job(ctx, _uuid(job))
    try:
        kept = await receive.upload_answer(ctx, row)
    except AppError as exc:
        found = exc.details.get("findings") if isinstance(exc.details, dict) else None
        return await _inbox_page(request, ctx, error=exc.message, findings=found, uploaded=row)
    if kept is not None:
        said = f"Package {kept.id} from {kept.sender_name} verified and kept."
        return see_other(request, f"/t/{ctx.slug}{PACKAGES}/{kept.id}", flash=said)
    return await _inbox_page(request, ctx, uploaded=row)


@post(
    INBOX,
    opt={**requires("transfer", "import"), PACKAGE_UPLOADS: True},
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def upload_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    job: FromQuery[str] = "",
) -> Template | Response[Any]:
    """Upload a package file: kept in quarantine and verified by the job worker, the inbox
    showing its progress, then the package's page or every finding of its refusal."""
    job_id = _uuid(job) if job else uuid4()
    job_id = uuid4() if job_id.int == 0 else job_id
    try:
        await receive.start_upload(ctx, job_id)
        data = await form_data(request)
        part = data.get("package")
        if not isinstance(part, UploadFile) or not part.filename:
            raise ValidationFailed(
                "package: choose the package file (.zip) to upload.", details={"field": "package"}
            )
        path = await receive.spool_upload(
            settings, ctx, receive.file_chunks(part.file), job_id, None, started=True
        )
        await receive.quarantine_upload(ctx, path, job_id)
    except AppError as exc:
        if exc.status_code == 404:
            raise
        found = exc.details.get("findings") if isinstance(exc.details, dict) else None
        return await _inbox_page(
            request, ctx, status=exc.status_code, error=exc.message, findings=found
        )
    said = "Verifying the package: its progress shows here, then the package or its findings."
    return see_other(request, f"/t/{ctx.slug}{INBOX}?job={job_id}", flash=said)


async def _package_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    package_id: UUID,
    *,
    status: int = 200,
    error: str | None = None,
) -> Template:
    row = await receive.received(ctx, package_id)
    last = await receive.last_verification(ctx, package_id)
    running = last.job if last is not None and last.job.state == "running" else None
    if error is None and last is not None and row.status == "received":
        error = last.error
    return await page(
        request,
        "transfer/package.html",
        status_code=status,
        package=row,
        manifest=row.manifest_dict,
        findings=row.finding_list,
        import_refused=await receive.sender_allowed(ctx, row),
        job_id=uuid4(),
        running=None if running is None else job_out(running),
        error=error,
    )


@get(PACKAGES + "/{package_id:uuid}", opt=requires("transfer", "import"), include_in_schema=False)
async def package_page(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    package_id: FromPath[UUID],
) -> Template:
    """A received package: its manifest (sender and key, recipe, files, the QA approval),
    the verification's findings, the Verify button, and what comes next."""
    return await _package_page(request, ctx, package_id)


@post(
    PACKAGES + "/{package_id:uuid}/verify",
    opt=requires("transfer", "import"),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def verify_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    package_id: FromPath[UUID],
) -> Template | Response[Any]:
    data = await form_data(request)
    job_id = _uuid(data.get("job"))
    try:
        row, started = await receive.start_verification(
            ctx, package_id, None if job_id.int == 0 else job_id
        )
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _package_page(
            request, ctx, package_id, status=exc.status_code, error=exc.message
        )
    if started is not None:
        said = "Verifying the package: its progress shows here, and the outcome when done."
    elif row.status == "verified":
        said = "The package verified."
    else:
        said = f"The package is {row.status.replace('_', ' ')}: {row.status_reason or ''}".strip()
    return see_other(request, f"/t/{ctx.slug}{PACKAGES}/{package_id}", flash=said)


@get(
    "/transfer/jobs/{job_id:uuid}/progress",
    opt=requires("transfer", "import"),
    include_in_schema=False,
)
async def progress_fragment(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    job_id: FromPath[UUID],
    upload: FromQuery[bool] = False,
) -> Template:
    """A verification's or an import's progress bar; it polls itself every second while
    running. One that has finished while the page polled reloads the page (its outcome);
    an upload's (``upload``) verified or refused opens the inbox with its outcome (one that
    failed while its body arrived is told by the upload's own answer)."""
    row = await receive.job(ctx, job_id)
    found = await page(request, "transfer/_progress.html", job=job_out(row), upload=upload)
    polled = request.headers.get("hx-request") == "true"
    if polled and upload and row.stage == "verify" and row.state != "running":
        found.headers["HX-Redirect"] = f"/t/{ctx.slug}{INBOX}?job={job_id}"
    elif polled and row.stage in ("verify", "import") and row.state != "running":
        found.headers["HX-Refresh"] = "true"
    return found


@get(
    PACKAGES + "/{package_id:uuid}/archive",
    opt=requires("transfer", "export"),
    include_in_schema=False,
)
async def package_download(
    ctx: NamedDependency[TenantContext], package_id: FromPath[UUID]
) -> Stream:
    return archive_response(ctx, await export.sent_package(ctx, package_id))


pages = [
    settings_page,
    key_pem,
    create_key_form,
    trust_form,
    untrust_form,
    export_form,
    packages_page,
    package_download,
    send_form,
    inbox_page,
    upload_form,
    package_page,
    verify_form,
    progress_fragment,
]
