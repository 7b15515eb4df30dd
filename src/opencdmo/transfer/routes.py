"""Tech transfer through the JSON API: export a recipe's effective revision as a signed
package (``transfer:export``), list and download the packages sent, and the tenant's
signing key and trusted sender keys (``transfer:trust``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Response, Stream

from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.transfer import export, keys, receive
from opencdmo.transfer.queries import PackageRow, TrustedRow
from opencdmo.transfer.receive_queries import JobRow, ReceivedRow
from opencdmo.transfer.schemas import (
    ExportIn,
    FindingOut,
    JobOut,
    KeyOut,
    PackageOut,
    ReceivedOut,
    SendIn,
    SendOut,
    TrustedKeyOut,
    TrustIn,
    UntrustIn,
)
from opencdmo.web.guards import PACKAGE_UPLOADS, requires

PACKAGES = "/transfer/packages"
TRUSTED = "/transfer/trusted-keys"
INBOX = "/transfer/inbox"
JOBS = "/transfer/jobs"


def package_out(ctx: TenantContext, row: PackageRow) -> PackageOut:
    fields = {k: v for k, v in row.__dict__.items() if k != "storage_key"}
    return PackageOut(**fields, download=f"/api/v1/t/{ctx.slug}{PACKAGES}/{row.id}/archive")


def trusted_out(row: TrustedRow) -> TrustedKeyOut:
    return TrustedKeyOut(**{k: v for k, v in row.__dict__.items() if k != "public_key"})


def key_out(key: keys.PublicKey) -> KeyOut:
    return KeyOut(
        algorithm="Ed25519", fingerprint=key.fingerprint, public_key=key.base64, pem=key.pem
    )


def archive_response(ctx: TenantContext, row: PackageRow) -> Stream:
    """The package archive, streamed from storage."""
    name = f"{ctx.slug}-package-{str(row.id)[:8]}-r{row.revision}.zip"
    return Stream(
        export.package_chunks(ctx, row),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-SHA256": row.sha256,
        },
    )


@post(
    "/recipes/{recipe_id:uuid}/transfer-packages",
    opt=requires("transfer", "export"),
    tags=["transfer"],
    status_code=201,
)
async def api_export(
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    recipe_id: FromPath[UUID],
    data: JSONBody[ExportIn],
) -> PackageOut:
    """Export the recipe's effective revision as a tech-transfer package, signed "approved
    for transfer" with the password (a draft, in review or retired recipe: 409)."""
    made = await export.export_package(settings, ctx, recipe_id, data.password, data.reason)
    return package_out(ctx, made.package)


@get(PACKAGES, opt=requires("transfer", "export"), tags=["transfer"])
async def api_packages(ctx: NamedDependency[TenantContext]) -> list[PackageOut]:
    """The packages the tenant sent, newest first."""
    return [package_out(ctx, r) for r in await export.packages(ctx)]


@get(
    PACKAGES + "/{package_id:uuid}/archive",
    opt=requires("transfer", "export"),
    tags=["transfer"],
    media_type="application/zip",
)
async def api_package_archive(
    ctx: NamedDependency[TenantContext], package_id: FromPath[UUID]
) -> Stream:
    """The package archive, as it was signed (its SHA-256 in ``X-Content-SHA256``)."""
    return archive_response(ctx, await export.sent_package(ctx, package_id))


@get("/transfer/key", opt=requires("transfer", "trust"), tags=["transfer"])
async def api_key(ctx: NamedDependency[TenantContext]) -> KeyOut | None:
    """The tenant's package signing key (null until it is created)."""
    found = await keys.public_key(ctx)
    return None if found is None else key_out(found)


@post("/transfer/key", opt=requires("transfer", "trust"), tags=["transfer"], status_code=200)
async def api_create_key(
    ctx: NamedDependency[TenantContext], settings: NamedDependency[Settings]
) -> KeyOut:
    """The tenant's package signing key, created now if it has none."""
    return key_out(await keys.ensure_key(settings, ctx))


@get(TRUSTED, opt=requires("transfer", "trust"), tags=["transfer"])
async def api_trusted(ctx: NamedDependency[TenantContext]) -> list[TrustedKeyOut]:
    """The sender keys the tenant trusts, and those it trusted before."""
    return [trusted_out(r) for r in await keys.trusted_keys(ctx)]


@post(TRUSTED, opt=requires("transfer", "trust"), tags=["transfer"], status_code=201)
async def api_trust(ctx: NamedDependency[TenantContext], data: JSONBody[TrustIn]) -> TrustedKeyOut:
    """Trust another installation's sender key; the fingerprint must be the key's."""
    return trusted_out(await keys.trust(ctx, data.public_key, data.fingerprint, data.label))


@post(
    TRUSTED + "/{trusted_key_id:uuid}/remove",
    opt=requires("transfer", "trust"),
    tags=["transfer"],
    status_code=200,
)
async def api_untrust(
    ctx: NamedDependency[TenantContext],
    trusted_key_id: FromPath[UUID],
    data: JSONBody[UntrustIn],
) -> TrustedKeyOut:
    """Stop trusting a sender key, saying why (it stays in the list, marked removed)."""
    return trusted_out(await keys.untrust(ctx, trusted_key_id, data.reason))


def send_out(found: receive.SentTo) -> SendOut:
    s = found.send
    return SendOut(
        id=s.id,
        package_id=s.package_id,
        receiver_tenant_id=s.receiver_tenant_id,
        receiver_name=s.receiver_name,
        partner_link_id=s.partner_link_id,
        sent_by_name=s.sent_by_name,
        sent_at=s.sent_at,
        receiver_status=found.status,
        receiver_reason=found.reason,
    )


def received_out(row: ReceivedRow, import_refused: str | None = None) -> ReceivedOut:
    return ReceivedOut(
        id=row.id,
        status=row.status,
        sender_name=row.sender_name,
        sender_tenant_id=row.sender_tenant_id,
        sender_fingerprint=row.sender_fingerprint,
        recipe_name=row.recipe_name,
        revision=row.revision,
        content_hash=row.content_hash,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        partner_link_id=row.partner_link_id,
        findings=[FindingOut(**f) for f in row.finding_list],
        status_reason=row.status_reason,
        import_refused=import_refused,
        created_at=row.created_at,
        status_changed_at=row.status_changed_at,
    )


def job_out(row: JobRow) -> JobOut:
    percent = 0 if row.total_bytes <= 0 else min(100, row.done_bytes * 100 // row.total_bytes)
    if row.state == "done":
        percent = 100
    return JobOut(
        id=row.id,
        package_id=row.package_id,
        stage=row.stage,
        done_bytes=row.done_bytes,
        total_bytes=row.total_bytes,
        state=row.state,
        percent=percent,
        findings=[FindingOut(**f) for f in row.finding_list],
        error=row.error,
    )


@post(
    PACKAGES + "/{package_id:uuid}/sends",
    opt=requires("transfer", "export"),
    tags=["transfer"],
    status_code=201,
)
async def api_send(
    ctx: NamedDependency[TenantContext], package_id: FromPath[UUID], data: JSONBody[SendIn]
) -> SendOut:
    """Send a package the tenant exported to the partner of an active relationship: it
    arrives in the partner's inbox as received (a relationship not active: 409)."""
    return send_out(await receive.send_to_partner(ctx, package_id, data.partner_link_id))


@get(PACKAGES + "/{package_id:uuid}/sends", opt=requires("transfer", "export"), tags=["transfer"])
async def api_sends(
    ctx: NamedDependency[TenantContext], package_id: FromPath[UUID]
) -> list[SendOut]:
    """The partners a package was sent to, each with the receiver's status of it now."""
    return [send_out(s) for s in await receive.sent_to(ctx, package_id)]


@get(INBOX, opt=requires("transfer", "import"), tags=["transfer"])
async def api_inbox(ctx: NamedDependency[TenantContext]) -> list[ReceivedOut]:
    """The packages the tenant received (from partners and uploads), newest first."""
    return [received_out(r) for r in await receive.inbox(ctx)]


@post(
    INBOX,
    opt={**requires("transfer", "import"), PACKAGE_UPLOADS: True},
    tags=["transfer"],
    status_code=201,
    responses={
        202: ResponseSpec(
            JobOut, description="Still being verified after two minutes: follow the job."
        )
    },
)
async def api_upload(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    job: FromQuery[UUID | None] = None,
) -> Response[ReceivedOut | JobOut]:
    """Upload a package from another installation (the archive as the body,
    ``application/zip``): verified before anything is kept. The body is kept in quarantine
    (never served) and verified by the job worker; this waits for the outcome: 201 with the
    package, received and verified. A package that fails a check: 422 with every finding in
    ``details.findings``, nothing kept. The same package here already: 409. Past the size
    limit or empty: 422. Not verified within two minutes: 202 with the job, whose outcome
    ``GET /transfer/jobs/{job}`` gives (``state`` ``done`` with ``package_id``, ``refused``
    with ``findings``, or ``failed`` with ``error``). ``job``: an id for the verification's
    progress (one already used: 409)."""
    job_id = job or uuid4()
    declared = request.headers.get("content-length")
    size = int(declared) if declared and declared.isdigit() else None
    path = await receive.spool_upload(settings, ctx, request.stream(), job_id, size)
    await receive.quarantine_upload(ctx, path, job_id)
    row = await receive.upload_outcome(ctx, job_id)
    if row is None:
        return Response(job_out(await receive.job(ctx, job_id)), status_code=202)
    return Response(received_out(row), status_code=201)


@get(INBOX + "/{package_id:uuid}", opt=requires("transfer", "import"), tags=["transfer"])
async def api_received(
    ctx: NamedDependency[TenantContext], package_id: FromPath[UUID]
) -> ReceivedOut:
    """A received package, with the verification's findings and, when it may not be
    imported (its relationship revoked), why."""
    row = await receive.received(ctx, package_id)
    return received_out(row, await receive.sender_allowed(ctx, row))


@post(
    INBOX + "/{package_id:uuid}/verify",
    opt=requires("transfer", "import"),
    tags=["transfer"],
    status_code=200,
)
async def api_verify(
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    package_id: FromPath[UUID],
    job: FromQuery[UUID | None] = None,
) -> ReceivedOut:
    """Verify a package a partner sent: verified, or rejected with the findings as the
    reason. Verified already: the outcome. Being verified by someone else now: 409. The
    verification runs in the job worker; this waits for its outcome (at most two minutes:
    then the package as it is, still ``received``; ``GET /transfer/jobs/{job}`` follows
    it)."""
    row, started = await receive.start_verification(ctx, package_id, job)
    if started is not None:
        row = await receive.outcome(ctx, package_id, started)
    return received_out(row)


@get(JOBS + "/{job_id:uuid}", opt=requires("transfer", "import"), tags=["transfer"])
async def api_job(ctx: NamedDependency[TenantContext], job_id: FromPath[UUID]) -> JobOut:
    """A verification's, an upload's or an import's progress: stage, bytes done of the
    total, state; an upload refused, its ``findings``; one that stopped, its ``error``."""
    return job_out(await receive.job(ctx, job_id))


api = [
    api_send,
    api_sends,
    api_inbox,
    api_upload,
    api_received,
    api_verify,
    api_job,
    api_export,
    api_packages,
    api_package_archive,
    api_key,
    api_create_key,
    api_trusted,
    api_trust,
    api_untrust,
]
