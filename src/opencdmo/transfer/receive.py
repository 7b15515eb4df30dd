"""Receiving tech-transfer packages: sent to a partner's inbox on this installation, uploaded
from another installation, verified on receipt.

Sending (``transfer:export``): the package's blob is copied into the receiver's store first
(streamed, content-addressed: harmless if the command then fails); then one unit of work locks
both sides of the relationship (the sponsor's first, as every relationship command does),
checks it is active on both, writes the send in the sender's tenant and the ``received`` row in
the receiver's (under the receiver's own policy, ``partners.crossing``), with one audit event
in each tenant's chain.

Uploading (``transfer:import``): the request streams the file to a temporary file (never
whole in memory, at most ``transfer_upload_max_bytes``) and keeps it in the blob store under
the tenant's quarantine key of its job (never served, named by no stored file); one unit of
work moves the progress row to ``verify`` and enqueues a ``transfer.verify_upload`` job. The
worker, on any host, reads the quarantined object (in place on a local store, streamed to a
temporary file from S3) and verifies it. A refused package keeps nothing but a security event
``transfer.package_refused`` with every finding in the tenant's chain, written with the
progress row's ``refused`` (the findings kept there for the page and the API) in one unit of
work. An accepted one is stored under its content key and gets its row, received and
verified, in one unit of work with both events. Either way the quarantined object is then
removed; the hourly sweep removes those a request or a worker left behind.

Verifying an inbox package (``transfer:import``): the package row is locked to claim the
verification (a job row, one running per package) and a ``transfer.verify`` background job
is enqueued in the same unit of work; a second person at the same moment is told it is
under way, and afterwards sees the outcome. The worker (``opencdmo worker``) runs the
verification outside any transaction, its progress written to the job row in short
transactions of its own every ``PROGRESS_STEP`` bytes; then one unit of work records
``verified`` or ``rejected`` (the findings as the reason) with its event.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, cast
from uuid import UUID, uuid4

import asyncpg
import msgspec

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db import jobs, sql
from opencdmo.db.tx import read_view, tenant_transaction, unit_of_work
from opencdmo.errors import Conflict, NotFound, ValidationFailed
from opencdmo.partners import queries as partner_queries
from opencdmo.partners.crossing import partner_side
from opencdmo.recipes import queries as recipes
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext
from opencdmo.settings import Settings
from opencdmo.storage.blobs import Blob, blobs
from opencdmo.tenancy import service as tenancy
from opencdmo.transfer import inbound
from opencdmo.transfer import queries as q
from opencdmo.transfer import receive_queries as rq
from opencdmo.transfer.format import Manifest
from opencdmo.transfer.receive_queries import JobRow, ReceivedRow, SendRow
from opencdmo.transfer.verify import Finding, Progress, Verification

ENTITY = "transfer_package"
MiB = 1024 * 1024
PROGRESS_STEP = 8 * MiB  # the job row is updated each time this many more bytes are done
# A running verification that has not reported for this long is taken as abandoned (a job
# reports at least every PROGRESS_STEP bytes): another may start.
ABANDONED = timedelta(minutes=10)
CHUNK = MiB
MESSAGE_FINDINGS = 20  # findings named in a refusal's message (all of them in its details)


@dataclass(frozen=True)
class SentTo:
    """A send of one of the tenant's packages, with the receiver's status of it."""

    send: SendRow
    status: str | None  # None: the receiver's row is not visible (should not happen)
    reason: str | None


def finding_dicts(findings: list[Finding]) -> list[dict[str, Any]]:
    return [asdict(f) for f in findings]


def _by(ctx: TenantContext) -> str:
    return f"{ctx.actor.full_name} ({ctx.name})"


# --- sending -------------------------------------------------------------------------------


async def send_to_partner(ctx: TenantContext, package_id: UUID, link_id: UUID) -> SentTo:
    """Send one of the tenant's packages to the partner of an active relationship."""
    async with read_view(ctx):
        await authorize(ctx, "transfer", "export")
        row = await q.package(package_id)
        if row.direction != "sent":
            raise NotFound("No such transfer package.")
        link = await partner_queries.link(link_id)
        recipe_name = ""
        if row.recipe_id is not None:
            recipe_name = (await recipes.recipe(row.recipe_id)).name
    partner = (await tenancy.tenants_by_id([link.partner_tenant_id]))[link.partner_tenant_id]
    if link.status != "active":
        raise _not_active(partner.name, link.status)
    receiver = replace(ctx, tenant_id=partner.id, slug=partner.slug, name=partner.name)
    stream = await blobs().open(ctx, row.storage_key)
    try:
        copied = await blobs().put_file(receiver, cast(BinaryIO, stream))
    finally:
        await asyncio.to_thread(stream.close)
    async with unit_of_work(ctx):
        await authorize(ctx, "transfer", "export")
        if ctx.kind == "sponsor":
            mine = await partner_queries.link(link_id, lock=True)
            async with partner_side(ctx, partner.id):
                theirs = await partner_queries.link(link_id, lock=True)
        else:
            async with partner_side(ctx, partner.id):
                theirs = await partner_queries.link(link_id, lock=True)
            mine = await partner_queries.link(link_id, lock=True)
        for side in (mine, theirs):
            if side.status != "active":
                raise _not_active(partner.name, side.status)
        if any(s.receiver_tenant_id == partner.id for s in await rq.sends(package_id)):
            raise Conflict(f"This package was already sent to {partner.name}.")
        send = SendRow(
            uuid4(),
            package_id,
            partner.id,
            partner.name,
            link_id,
            _user(ctx),
            _by(ctx),
            row.created_at,  # not written: the database's time is
        )
        try:
            await rq.insert_send(ctx.tenant_id, send)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"This package was already sent to {partner.name}.") from None
        # as written (the database's time)
        send = next(s for s in await rq.sends(package_id) if s.receiver_tenant_id == partner.id)
        event = {
            "receiver": partner.slug,
            "partner_link_id": str(link_id),
            "sha256": row.sha256,
            "revision": row.revision,
            "content_hash": row.content_hash,
        }
        await audit.record(ctx, "transfer.package_sent", ENTITY, package_id, new=event)
        async with partner_side(ctx, partner.id):
            if await rq.exists(package_id):
                raise Conflict(f"{partner.name} already has this package.")
            try:
                await rq.insert_received(
                    partner.id,
                    {
                        "id": package_id,
                        "status": "received",
                        "revision": row.revision,
                        "content_hash": row.content_hash,
                        "sha256": copied.sha256,
                        "size_bytes": copied.size,
                        "storage_key": copied.key,
                        "sender_fingerprint": row.sender_fingerprint,
                        "created_by": _user(ctx),
                        "sender_tenant_id": ctx.tenant_id,
                        "sender_name": ctx.name,
                        "recipe_name": recipe_name,
                        "partner_link_id": link_id,
                    },
                )
            except asyncpg.UniqueViolationError:
                raise Conflict(f"{partner.name} already has this package.") from None
            await audit.record_across(
                ctx,
                partner.id,
                "transfer.package_received",
                ENTITY,
                package_id,
                new={**event, "sender": ctx.slug, "receiver": partner.slug, "recipe": recipe_name},
            )
    return SentTo(send, "received", None)


def _not_active(name: str, status: str) -> Conflict:
    return Conflict(
        f"The relationship with {name} is {status}, not active: a package is sent only within "
        "an active relationship.",
        details={"status": status},
    )


def _user(ctx: TenantContext) -> UUID:
    if ctx.user_id is None:
        raise ValidationFailed("A person sends and receives packages, not the system.")
    return ctx.user_id


@dataclass(frozen=True)
class Target:
    """A partner a package may be sent to: the relationship and the partner's name."""

    link_id: UUID
    name: str


async def send_targets(ctx: TenantContext) -> list[Target]:
    """The partners of the tenant's active relationships (the packages page offers them)."""
    async with read_view(ctx):
        await authorize(ctx, "transfer", "export")
        links = [r for r in await partner_queries.links() if r.status == "active"]
    names = await tenancy.tenants_by_id(r.partner_tenant_id for r in links)
    found = [
        Target(r.id, names[r.partner_tenant_id].name) for r in links if r.partner_tenant_id in names
    ]
    return sorted(found, key=lambda t: t.name.lower())


async def sent_to(ctx: TenantContext, package_id: UUID | None = None) -> list[SentTo]:
    """The sends of the tenant's packages, each with the receiver's status of it now."""
    async with read_view(ctx):
        await authorize(ctx, "transfer", "export")
        if package_id is not None:
            await q.package(package_id)
        sends = await rq.sends(package_id)
        statuses = await rq.receiver_statuses()
    found = []
    for s in sends:
        status = statuses.get((s.package_id, s.receiver_tenant_id))
        found.append(
            SentTo(s, status.status if status else None, status.status_reason if status else None)
        )
    return found


async def sender_allowed(ctx: TenantContext, row: ReceivedRow) -> str | None:
    """Why a received package may not be imported now (None: it may): a package sent through
    a relationship that is no longer active stays, but is not imported."""
    if row.partner_link_id is None:
        return None
    async with tenant_transaction(ctx):
        link = await partner_queries.link(row.partner_link_id)
    if link.status != "active":
        return (
            f"The relationship with {row.sender_name} is {link.status}: the package it sent "
            "is kept but cannot be imported."
        )
    return None


# --- receiving -----------------------------------------------------------------------------


async def inbox(ctx: TenantContext) -> list[ReceivedRow]:
    async with read_view(ctx):
        await authorize(ctx, "transfer", "import")
        return await rq.inbox()


async def received(ctx: TenantContext, package_id: UUID) -> ReceivedRow:
    async with read_view(ctx):
        await authorize(ctx, "transfer", "import")
        return await rq.received(package_id)


async def job(ctx: TenantContext, job_id: UUID) -> JobRow:
    async with read_view(ctx):
        await authorize(ctx, "transfer", "import")
        return await rq.job(job_id)


def temporary(settings: Settings) -> Path:
    folder = settings.data_dir / "transfer-tmp"
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="received-", suffix=".zip", dir=folder)
    os.close(handle)
    return Path(name)


async def _job_values(ctx: TenantContext, job_id: UUID, values: dict[str, Any]) -> None:
    async with unit_of_work(ctx):
        await rq.update_job(job_id, values)


async def start_upload(ctx: TenantContext, job_id: UUID, total: int = 0) -> None:
    """The job row of an upload, in its ``upload`` stage (before the body is read)."""
    await authorize(ctx, "transfer", "import")
    if await _job_exists(ctx, job_id):
        raise _job_taken()
    try:
        async with unit_of_work(ctx):
            await rq.insert_job(ctx.tenant_id, job_id, "upload", total, _user(ctx))
    except asyncpg.UniqueViolationError:
        raise _job_taken() from None


def _job_taken() -> Conflict:
    return Conflict("This upload was sent already: reload the page and choose the file again.")


async def _job_exists(ctx: TenantContext, job_id: UUID) -> bool:
    async with read_view(ctx):
        try:
            await rq.job(job_id)
        except NotFound:
            return False
        return True


async def file_chunks(handle: Any) -> AsyncIterator[bytes]:
    """The chunks of an open file (an uploaded form part spooled to disk), read in a thread."""
    while chunk := await asyncio.to_thread(handle.read, CHUNK):
        yield chunk


async def spool_upload(
    settings: Settings,
    ctx: TenantContext,
    chunks: AsyncIterator[bytes],
    job_id: UUID,
    declared: int | None,
    *,
    started: bool = False,
) -> Path:
    """The uploaded bytes in a temporary file (refused past the size limit), the job's
    ``upload`` stage updated as they arrive."""
    await authorize(ctx, "transfer", "import")
    limit = settings.transfer_upload_max_bytes
    if declared is not None and declared > limit:
        raise ValidationFailed(_too_large(limit), details={"field": "file"})
    if not started:
        await start_upload(ctx, job_id, declared or 0)
    path = await asyncio.to_thread(temporary, settings)
    done = reported = 0
    try:
        handle = await asyncio.to_thread(path.open, "wb")
        try:
            async for chunk in chunks:
                done += len(chunk)
                if done > limit:
                    raise ValidationFailed(_too_large(limit), details={"field": "file"})
                await asyncio.to_thread(handle.write, chunk)
                if done - reported >= PROGRESS_STEP:
                    reported = done
                    await _job_values(ctx, job_id, {"done_bytes": done})
        finally:
            await asyncio.to_thread(handle.close)
        if done == 0:
            raise ValidationFailed("The upload is empty: choose a package file.")
    except BaseException:
        await asyncio.to_thread(path.unlink, True)
        await _job_values(ctx, job_id, {"done_bytes": done, "state": "failed"})
        raise
    return path


def _too_large(limit: int) -> str:
    return f"The package is larger than this installation accepts ({limit // MiB} MiB at most)."


async def _verified(
    ctx: TenantContext, path: Path, job_id: UUID, total: int, told: Progress | None = None
) -> Verification:
    """``inbound.verify_for`` with the job's ``verify`` stage kept up to date."""
    await _job_values(ctx, job_id, {"stage": "verify", "done_bytes": 0, "total_bytes": total})
    seen = [0, total]

    def progress(done: int, declared: int) -> None:
        seen[0], seen[1] = done, declared or total
        if told is not None:
            told(done, declared or total)

    task = asyncio.ensure_future(inbound.verify_for(ctx, path, None, progress))
    reported = 0
    while not task.done():
        await asyncio.wait({task}, timeout=0.25)
        if seen[0] - reported >= PROGRESS_STEP:
            reported = seen[0]
            await _job_values(ctx, job_id, {"done_bytes": seen[0], "total_bytes": seen[1]})
    return task.result()


UPLOAD_JOB = "transfer.verify_upload"
# A quarantined upload this old whose job has ended or vanished is removed by the sweep.
QUARANTINE_KEPT = timedelta(days=1)
HERE_ALREADY = "This package is here already (the same package id): open it from the inbox."
STOPPED = "The verification of the upload stopped before the end: upload the package again."


async def quarantine_upload(
    ctx: TenantContext, path: Path, job_id: UUID, *, enqueue: bool = True
) -> None:
    """The spooled upload at ``path`` (removed here) kept in the blob store under the
    tenant's quarantine key of the job, then in one unit of work its progress row moved to
    the ``verify`` stage and, with ``enqueue``, the ``transfer.verify_upload`` job asked for.
    Nothing of it is served or named by a stored file until the job has verified it."""
    try:
        size = (await asyncio.to_thread(path.stat)).st_size
        await blobs().quarantine(ctx, job_id, path)
    except BaseException:
        await asyncio.to_thread(path.unlink, True)
        await _job_values(ctx, job_id, {"state": "failed"})
        raise
    try:
        async with unit_of_work(ctx):
            await authorize(ctx, "transfer", "import")
            row = await rq.job(job_id, lock=True)
            if row.stage != "upload" or row.state != "running":
                raise _job_taken()
            values = {"stage": "verify", "done_bytes": 0, "total_bytes": size}
            await rq.update_job(job_id, values)
            if enqueue:
                args = {"job_id": str(job_id)}
                await jobs.enqueue_for(ctx, UPLOAD_JOB, args, dedupe_key=f"{UPLOAD_JOB}:{job_id}")
    except BaseException:
        await blobs().discard(ctx, job_id)
        await _job_values(ctx, job_id, {"state": "failed"})
        raise


@asynccontextmanager
async def _quarantined_file(
    settings: Settings, ctx: TenantContext, job_id: UUID
) -> AsyncIterator[Path | None]:
    """The quarantined upload as a local file while the block runs: read where it is when
    the store is on this machine's disk, else streamed to a temporary file. None: gone."""
    local = blobs().local_quarantined(ctx, job_id)
    if local is not None:
        yield local
        return
    stream = await blobs().open_quarantined(ctx, job_id)
    if stream is None:
        yield None
        return
    path = await asyncio.to_thread(temporary, settings)
    try:
        try:
            await asyncio.to_thread(_copy, stream, path)
        finally:
            await asyncio.to_thread(stream.close)
        yield path
    finally:
        await asyncio.to_thread(path.unlink, True)


async def run_upload(
    settings: Settings, ctx: TenantContext, job_id: UUID, progress: Progress | None = None
) -> JobRow:
    """The verification of a quarantined upload (the ``transfer.verify_upload`` job; the
    CLI runs it in process), exactly as an upload is verified: refused, the progress row
    ``refused`` with every finding and the ``transfer.package_refused`` security event in
    one unit of work; verified, the file stored under its content key and the package
    inserted, received and verified, with both events and the progress row ``done``. Then
    the quarantined object is removed. Idempotent: the outcome is written under the progress
    row's lock once (a second attempt finds it written, and only removes the object); the
    object is removed only after the outcome committed."""
    async with read_view(ctx):
        await authorize(ctx, "transfer", "import")
        row = await rq.job(job_id)
    if row.state != "running":  # an earlier attempt wrote the outcome
        await blobs().discard(ctx, job_id)
        return row
    async with _quarantined_file(settings, ctx, job_id) as path:
        if path is None:
            return await _upload_ended(ctx, job_id, {"state": "failed", "error": STOPPED})
        size = (await asyncio.to_thread(path.stat)).st_size
        result = await _verified(ctx, path, job_id, size, progress)
        manifest = result.manifest
        blob = None
        if result.valid and manifest is not None:
            blob = await blobs().put_file(ctx, path)  # a copy: the object stays till the end
    if manifest is None or blob is None:
        await _refuse(ctx, job_id, size, result)
    else:
        try:
            await _keep(ctx, job_id, manifest, blob)
        except asyncpg.UniqueViolationError:  # the same package kept by another upload now
            await _upload_ended(ctx, job_id, {"state": "failed", "error": HERE_ALREADY})
    await blobs().discard(ctx, job_id)
    return await job(ctx, job_id)


async def _upload_ended(ctx: TenantContext, job_id: UUID, values: dict[str, Any]) -> JobRow:
    """The progress row's outcome, when no attempt has written one (under its lock)."""
    async with unit_of_work(ctx):
        row = await rq.job(job_id, lock=True)
        if row.state == "running":
            await rq.update_job(job_id, values)
        return await rq.job(job_id)


async def upload_failed(ctx: TenantContext, job_id: UUID, error: str) -> None:
    """The upload's last attempt failed: its progress row ``failed`` with the error (when no
    attempt wrote an outcome), and the quarantined object removed."""
    await _upload_ended(ctx, job_id, {"state": "failed", "error": error[:4000] or STOPPED})
    await blobs().discard(ctx, job_id)


async def _refuse(ctx: TenantContext, job_id: UUID, size: int, result: Verification) -> None:
    findings = finding_dicts(result.findings)
    manifest = result.manifest
    async with unit_of_work(ctx):
        await authorize(ctx, "transfer", "import")
        row = await rq.job(job_id, lock=True)
        if row.state != "running":
            return
        await rq.update_job(job_id, {"state": "refused", "done_bytes": size, "findings": findings})
        detail = {
            "package_id": manifest.package_id if manifest else None,
            "size": size,
            "findings": findings,
        }
        await audit.record_security_in(ctx, "transfer.package_refused", detail)


async def _keep(ctx: TenantContext, job_id: UUID, manifest: Manifest, blob: Blob) -> None:
    package_id = UUID(manifest.package_id)
    async with unit_of_work(ctx):
        await authorize(ctx, "transfer", "import")
        row = await rq.job(job_id, lock=True)
        if row.state != "running":
            return
        if await rq.exists(package_id):
            await rq.update_job(job_id, {"state": "failed", "error": HERE_ALREADY})
            return
        recipe = manifest.recipe
        sender_id = _tenant_id(manifest.sender.tenant_id)
        values = {
            "id": package_id,
            "status": "received",
            "revision": recipe.revision,
            "content_hash": recipe.content_hash,
            "sha256": blob.sha256,
            "size_bytes": blob.size,
            "storage_key": blob.key,
            "sender_fingerprint": manifest.sender.key.fingerprint,
            "created_by": _user(ctx),
            "sender_tenant_id": None,
            "sender_name": manifest.sender.name[:400],
            "recipe_name": recipe.name[:400],
        }
        event = {
            "sender": manifest.sender.name,
            "sender_tenant_id": str(sender_id) if sender_id else None,
            "fingerprint": manifest.sender.key.fingerprint,
            "recipe": recipe.name,
            "revision": recipe.revision,
            "content_hash": recipe.content_hash,
            "sha256": blob.sha256,
            "size": blob.size,
            "channel": "upload",
        }
        await rq.insert_received(ctx.tenant_id, values)
        await audit.record(ctx, "transfer.package_received", ENTITY, package_id, new=event)
        await rq.set_status(package_id, "verified", [], None, _user(ctx), _builtins(manifest))
        await audit.record(
            ctx,
            "transfer.package_verified",
            ENTITY,
            package_id,
            old={"status": "received"},
            new={"status": "verified", "sha256": blob.sha256, "findings": []},
        )
        await rq.update_job(
            job_id, {"state": "done", "package_id": package_id, "done_bytes": blob.size}
        )


async def upload_outcome(ctx: TenantContext, job_id: UUID) -> ReceivedRow | None:
    """The uploaded package once the worker has verified it (or ``VERIFY_WAIT`` has passed:
    then None, the job under way); a refusal raises a 422 with every finding, a package
    here already or a verification that failed a 409."""
    waited = 0.0
    row = await job(ctx, job_id)
    while row.state == "running" and waited < VERIFY_WAIT.total_seconds():
        await asyncio.sleep(0.2)
        waited += 0.2
        row = await job(ctx, job_id)
    return await upload_answer(ctx, row)


async def upload_answer(ctx: TenantContext, row: JobRow) -> ReceivedRow | None:
    """An upload's outcome from its progress row (see ``upload_outcome``)."""
    if row.state == "done" and row.package_id is not None:
        return await received(ctx, row.package_id)
    if row.state == "refused":
        raise _refused(row.finding_list)
    if row.state == "failed":
        raise Conflict(row.error or STOPPED)
    return None


async def upload(
    settings: Settings,
    ctx: TenantContext,
    path: Path,
    job_id: UUID,
    progress: Progress | None = None,
) -> ReceivedRow:
    """Verify the spooled upload at ``path`` (removed here) in this process and keep it when
    it verifies (the CLI, service code): the worker's own steps (quarantined, then
    ``run_upload``), waited for. A refusal is a 422 listing every finding, with nothing kept
    but the security event. A caller that has no progress row for ``job_id`` yet gets one."""
    if not await _job_exists(ctx, job_id):
        try:
            await start_upload(ctx, job_id, (await asyncio.to_thread(path.stat)).st_size)
        except BaseException:
            await asyncio.to_thread(path.unlink, True)
            raise
    await quarantine_upload(ctx, path, job_id, enqueue=False)
    try:
        row = await run_upload(settings, ctx, job_id, progress)
    except BaseException:
        await upload_failed(ctx, job_id, STOPPED)
        raise
    found = await upload_answer(ctx, row)
    assert found is not None, "an upload verified in process has its outcome"
    return found


async def sweep_quarantine(kept: timedelta = QUARANTINE_KEPT) -> int:
    """Remove the quarantined uploads older than ``kept`` whose job has ended or vanished
    (a request or a worker that stopped half way), their progress row marked failed when
    it still says running; returns how many were removed. One still queued is left."""
    cutoff = time.time() - kept.total_seconds()
    removed = 0
    meta = RequestMeta(request_id="job:transfer.quarantine_sweep")
    for found in await blobs().quarantined():
        if found.changed_at > cutoff:
            continue
        ctx = await tenancy.internal_context(found.tenant_id, SYSTEM, meta)
        if ctx is None:  # the tenant is gone: its object goes too
            await blobs().discard_key(found.key)
            removed += 1
            continue
        async with unit_of_work(ctx) as conn:
            try:
                row: JobRow | None = await rq.job(found.job_id, lock=True)
            except NotFound:
                row = None
            if row is not None and row.state == "running":
                queued = await jobs.by_key(ctx.tenant_id, f"{UPLOAD_JOB}:{found.job_id}", conn)
                if queued is not None and queued.state in ("queued", "running"):
                    continue  # a worker will still verify it
                await rq.update_job(found.job_id, {"state": "failed", "error": STOPPED})
        await blobs().discard(ctx, found.job_id)
        removed += 1
    return removed


def _builtins(manifest: Manifest) -> dict[str, Any]:
    found: dict[str, Any] = msgspec.to_builtins(manifest)
    return found


def _tenant_id(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


def _refused(findings: list[dict[str, Any]]) -> ValidationFailed:
    lines = "; ".join(str(f["message"]) for f in findings[:MESSAGE_FINDINGS])
    if len(findings) > MESSAGE_FINDINGS:
        lines += f"; and {len(findings) - MESSAGE_FINDINGS} more (listed in the details)"
    return ValidationFailed(
        f"The package was refused and nothing was kept: {lines}",
        details={"findings": findings},
    )


VERIFY_JOB = "transfer.verify"
# How long the API's verify waits for the worker's outcome before it answers "under way".
VERIFY_WAIT = timedelta(minutes=2)


async def verify_received(
    settings: Settings, ctx: TenantContext, package_id: UUID, job_id: UUID | None = None
) -> ReceivedRow:
    """Verify a package in the tenant's inbox here and now (a caller that waits: the CLI,
    service code): ``verified``, or ``rejected`` with the findings as the reason."""
    row, started = await start_verification(ctx, package_id, job_id, enqueue=False)
    if started is None:
        return row
    return await run_verification(settings, ctx, package_id, started)


async def start_verification(
    ctx: TenantContext, package_id: UUID, job_id: UUID | None = None, *, enqueue: bool = True
) -> tuple[ReceivedRow, UUID | None]:
    """Claim the verification of an inbox package (see the module for two people at once)
    and, with ``enqueue``, ask a worker for it (the ``transfer.verify`` job, in the same
    unit of work as the claim). The job id is None when the package is verified already."""
    job_id = job_id or uuid4()
    async with unit_of_work(ctx):
        await authorize(ctx, "transfer", "import")
        row = await rq.received(package_id, lock=True)
        if row.status != "received":
            return row, None  # verified already: the outcome is the answer
        running = await rq.running_job(package_id)
        if running is not None and await sql.clock() - running.updated_at > ABANDONED:
            # a verification that stopped reporting (its process ended): it gave no outcome
            await rq.update_job(running.id, {"state": "failed"})
            running = None
        if running is not None:
            raise Conflict(
                "This package is being verified already; its outcome shows here when done.",
                details={"job_id": str(running.id)},
            )
        if await rq.job_exists(job_id):
            raise Conflict("This verification was started already: reload the page.")
        await rq.insert_job(ctx.tenant_id, job_id, "verify", row.size_bytes, _user(ctx))
        await rq.update_job(job_id, {"package_id": package_id})
        if enqueue:
            args = {"package_id": str(package_id), "job_id": str(job_id)}
            await jobs.enqueue_for(ctx, VERIFY_JOB, args, dedupe_key=f"{VERIFY_JOB}:{job_id}")
    return row, job_id


async def run_verification(
    settings: Settings, ctx: TenantContext, package_id: UUID, job_id: UUID
) -> ReceivedRow:
    """The verification claimed by ``start_verification`` (the worker's ``transfer.verify``
    job). Idempotent: a package verified already, or a job done already, is left as it is."""
    async with unit_of_work(ctx):
        await authorize(ctx, "transfer", "import")
        row = await rq.received(package_id, lock=True)
        job = await rq.job(job_id)
        if row.status != "received" or job.state == "done":
            if job.state != "done":
                await rq.update_job(job_id, {"state": "done"})
            return row
        await rq.update_job(job_id, {"state": "running"})  # a retry after a failure
    path = await asyncio.to_thread(temporary, settings)
    try:
        try:
            stream = await blobs().open(ctx, row.storage_key)
            try:
                await asyncio.to_thread(_copy, stream, path)
            finally:
                await asyncio.to_thread(stream.close)
            result = await _verified(ctx, path, job_id, row.size_bytes)
        except BaseException:
            await _job_values(ctx, job_id, {"state": "failed"})
            raise
    finally:
        await asyncio.to_thread(path.unlink, True)
    findings = finding_dicts(result.findings)
    manifest = result.manifest
    mismatch = manifest is not None and (
        manifest.package_id != str(package_id)
        or manifest.sender.key.fingerprint != row.sender_fingerprint
    )
    if mismatch:
        findings.append(
            {
                "code": "not_the_package_sent",
                "message": "The archive is not the package that was sent (its id or key differs).",
                "member": None,
            }
        )
    status = "verified" if result.valid and not mismatch else "rejected"
    reason = None if status == "verified" else "; ".join(f["message"] for f in findings)[:4000]
    async with unit_of_work(ctx):
        await authorize(ctx, "transfer", "import")
        row = await rq.received(package_id, lock=True)
        await rq.update_job(
            job_id, {"state": "done", "done_bytes": row.size_bytes, "total_bytes": row.size_bytes}
        )
        if row.status != "received":
            return row
        kept = _builtins(manifest) if manifest is not None else None
        await rq.set_status(package_id, status, findings, reason, _user(ctx), kept)
        await audit.record(
            ctx,
            f"transfer.package_{status}",
            ENTITY,
            package_id,
            old={"status": "received"},
            new={"status": status, "sha256": row.sha256, "findings": findings},
            reason=reason,
        )
        return await rq.received(package_id)


@dataclass(frozen=True)
class LastVerification:
    """The package's latest verification: its progress, and the error in words when its
    job failed (the person may press Verify again)."""

    job: JobRow
    error: str | None


async def last_verification(ctx: TenantContext, package_id: UUID) -> LastVerification | None:
    async with read_view(ctx) as conn:
        await authorize(ctx, "transfer", "import")
        found = await rq.latest_job(package_id)
        if found is None:
            return None
        error = None
        if found.state == "failed":
            queued = await jobs.by_key(ctx.tenant_id, f"{VERIFY_JOB}:{found.id}", conn)
            error = queued.error if queued is not None and queued.error else None
            error = error or "The verification stopped before the end."
        return LastVerification(found, error)


async def outcome(ctx: TenantContext, package_id: UUID, job_id: UUID) -> ReceivedRow:
    """The package once the worker has finished its verification job (or ``VERIFY_WAIT``
    has passed: then as it is, still ``received``, its job under way)."""
    waited = 0.0
    while waited < VERIFY_WAIT.total_seconds():
        if (await job(ctx, job_id)).state != "running":
            break
        await asyncio.sleep(0.2)
        waited += 0.2
    return await received(ctx, package_id)


def _copy(stream: Any, path: Path) -> None:
    with path.open("wb") as out:
        shutil.copyfileobj(stream, out, CHUNK)
