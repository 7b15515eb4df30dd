"""The job kinds of the project and what each does (registered with ``handler``).

Each is idempotent; how is said with each.
"""

from __future__ import annotations

import datetime as dt
import logging
from datetime import UTC, datetime, timedelta
from uuid import UUID

from opencdmo.db import jobs as queue
from opencdmo.db.jobs import Job
from opencdmo.db.tx import global_transaction, unit_of_work
from opencdmo.equipment import seals
from opencdmo.errors import AppError
from opencdmo.exports import service as exports
from opencdmo.identity.sso import queries as sso_queries
from opencdmo.inventory.expiry import expire_lots
from opencdmo.jobs.registry import context, handler, settings
from opencdmo.scope import SYSTEM, RequestMeta
from opencdmo.settings import SettingsError
from opencdmo.tenancy import invitations
from opencdmo.tenancy.service import internal_context
from opencdmo.tenancy.tables import Tenant
from opencdmo.transfer import importing, receive
from opencdmo.transfer import receive_queries as rq
from opencdmo.work import invitation_mail, mail, notify
from opencdmo.work.mail import MailFailed

log = logging.getLogger("opencdmo.jobs")

LOT_EXPIRY = "inventory.lot_expiry"
TRANSFER_VERIFY = receive.VERIFY_JOB
TRANSFER_IMPORT = importing.IMPORT_JOB
WORK_NOTIFY = notify.JOB
TRANSFER_VERIFY_UPLOAD = receive.UPLOAD_JOB
QUARANTINE_SWEEP = "transfer.quarantine_sweep"
PRUNE = "platform.prune"
EQUIPMENT_SEAL = seals.SEAL_JOB
EQUIPMENT_RESEAL = seals.RESEAL_JOB
EXPORT_BUILD = exports.JOB
INVITATION_MAIL = invitations.MAIL_JOB
SSO_REQUESTS_KEPT = timedelta(days=1)  # a request is valid for minutes, its code for minutes


async def _tenants(job: Job) -> list[UUID]:
    """The job's tenant, or every tenant (a periodic job names none)."""
    if job.for_tenant is not None:
        return [job.for_tenant]
    async with global_transaction():
        return [r["id"] for r in await Tenant.select(Tenant.id).order_by(Tenant.id)]


@handler(LOT_EXPIRY)
async def lot_expiry(job: Job) -> None:
    """Every tenant's lots (the periodic job names no tenant), or one tenant's. Idempotent:
    ``expire_lots`` takes only lots not expired yet."""
    meta = RequestMeta(request_id=f"job:{job.id}")
    for tenant_id in await _tenants(job):
        ctx = await internal_context(tenant_id, SYSTEM, meta)
        if ctx is not None:
            await expire_lots(ctx)


@handler(TRANSFER_VERIFY)
async def transfer_verify(job: Job) -> None:
    """The verification of a received package, as the person who asked; its progress in
    ``transfer_jobs``. Idempotent: ``run_verification`` leaves a package verified already
    (or a job done already) as it is. Its last attempt failing marks the progress failed,
    so that the page says so and offers Verify again."""
    ctx = await context(job)
    package_id, job_id = UUID(job.args["package_id"]), UUID(job.args["job_id"])
    try:
        await receive.run_verification(settings(), ctx, package_id, job_id)
    except Exception:
        if job.attempts >= job.max_attempts:
            async with unit_of_work(ctx):
                await rq.update_job(job_id, {"state": "failed"})
        raise


@handler(TRANSFER_VERIFY_UPLOAD)
async def transfer_verify_upload(job: Job) -> None:
    """The verification of an upload kept in quarantine, as the person who uploaded it;
    its progress and outcome in ``transfer_jobs``. Idempotent: ``run_upload`` writes the
    outcome once under the progress row's lock, and removes the quarantined object only
    after it. Its last attempt failing marks the progress failed and removes the object."""
    ctx = await context(job)
    job_id = UUID(job.args["job_id"])
    try:
        await receive.run_upload(settings(), ctx, job_id)
    except Exception as exc:
        if job.attempts >= job.max_attempts:
            said = exc.message if isinstance(exc, AppError) else receive.STOPPED
            await receive.upload_failed(ctx, job_id, said)
        raise


@handler(EXPORT_BUILD)
async def export_build(job: Job) -> None:
    """An export (the batch record's BatchML, the audit trail) built as the person who asked,
    their permission checked again. Idempotent: ``build`` leaves a done export as it is and a
    rebuild stores under the same content key. Its last attempt failing marks it failed."""
    ctx = await context(job)
    export_id = UUID(job.args["export_id"])
    try:
        await exports.build(ctx, export_id)
    except Exception as exc:
        if job.attempts >= job.max_attempts:
            said = exc.message if isinstance(exc, AppError) else exports.STOPPED
            await exports.failed(ctx, export_id, said)
        raise


@handler(QUARANTINE_SWEEP)
async def quarantine_sweep(job: Job) -> None:
    """The quarantined uploads left a day after their job ended or vanished, removed (the
    periodic job names no tenant). Idempotent: removing what is gone changes nothing."""
    await receive.sweep_quarantine()


@handler(TRANSFER_IMPORT)
async def transfer_import(job: Job) -> None:
    """The import of a received package as the person who asked; its progress in
    ``transfer_jobs``. Idempotent: ``run_import`` only marks the job done when the package
    was imported already (an earlier attempt committed); ``import_package`` itself refuses
    a second import of one package."""
    ctx = await context(job)
    package_id, job_id = UUID(job.args["package_id"]), UUID(job.args["job_id"])
    await importing.run_import(settings(), ctx, package_id, job_id)


@handler(WORK_NOTIFY)
async def work_notify(job: Job) -> None:
    """Mail every member (of every tenant, or of the job's) the items newly awaiting their
    action, as the system actor; nothing when mail is not configured. Idempotent: each item
    is recorded per person with the digest that mails it, and a recorded one is never
    mailed again (``opencdmo.work.notify``). A failed mail fails the job once every tenant
    was tried; its retry mails only what is left."""
    configured = settings()
    if mail.server(configured) is None:  # also refuses a malformed OPENCDMO_SMTP_URL at once
        return
    meta = RequestMeta(request_id=f"job:{job.id}")
    failed: Exception | None = None
    for tenant_id in await _tenants(job):
        ctx = await internal_context(tenant_id, SYSTEM, meta)
        if ctx is None:
            continue
        try:
            await notify.notify_tenant(configured, ctx)
        except MailFailed as exc:
            failed = exc
    if failed is not None:
        raise failed


@handler(INVITATION_MAIL)
async def invitation_email(job: Job) -> None:
    """E-mail an invitation to the person invited, as the system actor. Idempotent: an
    invitation mailed already, or no longer pending, is not mailed (``invitation_mail``)."""
    meta = RequestMeta(request_id=f"job:{job.id}")
    ctx = await internal_context(job.for_tenant, SYSTEM, meta) if job.for_tenant else None
    if ctx is None:
        return  # the tenant is gone: nothing to mail
    invitation_id = UUID(str(job.args["invitation_id"]))
    await invitation_mail.send(settings(), ctx, invitation_id, str(job.args["token"]))


@handler(PRUNE)
async def prune(job: Job) -> None:
    """Remove finished jobs past their retention and spent single sign-on requests (neither
    is a GMP record). Idempotent: what is gone stays gone."""
    removed = await queue.prune(settings().job_retention_days)
    async with global_transaction():
        requests = await sso_queries.prune_requests(datetime.now(UTC) - SSO_REQUESTS_KEPT)
    log.info("pruned %d finished jobs and %d sign-on requests", removed, requests)


def seal_timing() -> seals.Timing:
    """The sealing period and grace of the worker's settings."""
    configured = settings()
    if configured.seal_period_seconds <= 0 or configured.seal_grace_seconds < 0:
        raise SettingsError(
            "OPENCDMO_SEAL_PERIOD_SECONDS must be above 0 and OPENCDMO_SEAL_GRACE_SECONDS "
            "not below 0"
        )
    return seals.Timing(
        period=dt.timedelta(seconds=configured.seal_period_seconds),
        grace=dt.timedelta(seconds=configured.seal_grace_seconds),
    )


@handler(EQUIPMENT_SEAL)
async def equipment_seal(job: Job) -> None:
    """Seal the due periods of every unit's samples (of every tenant: the periodic job names
    none), each tenant as the system actor in its own trail. Idempotent: what is sealed is
    read from the database under each unit's seal lock, so a second run finds nothing due."""
    timing = seal_timing()
    meta = RequestMeta(request_id=f"job:{job.id}")
    failed: Exception | None = None
    for tenant_id in await _tenants(job):
        ctx = await internal_context(tenant_id, SYSTEM, meta)
        if ctx is None:
            continue
        try:
            written = await seals.seal_tenant(ctx, timing)
        except Exception as exc:  # the other tenants are sealed all the same
            log.exception("sealing the samples of tenant %s failed", tenant_id)
            failed = exc
            continue
        if written:
            log.info("sealed %d periods of samples of tenant %s", written, tenant_id)
    if failed is not None:
        raise failed


@handler(EQUIPMENT_RESEAL)
async def equipment_reseal(job: Job) -> None:
    """Seal again the periods of a unit that got samples after they were sealed (enqueued by
    the store of those samples, in its transaction), as the system actor. Idempotent: a
    period whose digest is its newest seal's is left as it is."""
    ctx = await context(job)
    late = [dt.datetime.fromisoformat(at) for at in job.args["periods"]]
    await seals.reseal(ctx, UUID(job.args["equipment_id"]), str(job.args["code"]), late)
