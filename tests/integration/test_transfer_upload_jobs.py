"""An uploaded package verified in the job worker, against the real database, blob store
(local and S3 on moto) and worker (URS-RCV-02): the request keeps the body in quarantine and
enqueues ``transfer.verify_upload``; the worker keeps it (API and page) or refuses it with
nothing left (no quarantined object, no package row, the security event); the job run twice
writes once; its last attempt failing marks the progress failed; another tenant's job is a
404; two uploads with one job id at once; the API's 202 when the outcome takes too long; the
sweep of quarantined objects left behind."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from opencdmo.db import jobs
from opencdmo.db.jobs import Job
from opencdmo.errors import AppError, ValidationFailed
from opencdmo.jobs import registry, tasks
from opencdmo.jobs.worker import Worker
from opencdmo.settings import Settings
from opencdmo.storage import blobs as blob_store
from opencdmo.storage.blobs import blobs, quarantine_key
from opencdmo.storage.local import LocalBackend
from opencdmo.transfer import keys, receive
from opencdmo.transfer.receive import UPLOAD_JOB
from tests.conftest import World
from tests.integration.job_worker import job_worker
from tests.integration.test_storage import s3_settings
from tests.integration.test_transfer_receive import (
    Receiver,
    Sender,
    _archive,
    _count,
    _events,
    _package,
    _receiver,
    _refusals,
    _upload,
    receiver,
    sender,
)

__all__ = ["job_worker", "receiver", "s3_settings", "sender"]


async def _trusted(sender: Sender, receiver: Receiver) -> None:
    """The sender's key (made with its first package) trusted by the receiver."""
    public = await keys.public_key(sender.lab["approver"])
    assert public is not None
    await keys.trust(receiver.org.admin, public.base64, public.fingerprint, sender.ctx.name)


async def _quarantined(tenant_id: UUID) -> list[UUID]:
    """The jobs of the tenant's uploads in quarantine now."""
    return [q.job_id for q in await blobs().quarantined() if q.tenant_id == tenant_id]


async def _spooled(settings: Settings, receiver: Receiver, data: bytes, job_id: UUID) -> Path:
    async def chunks() -> Any:
        yield data

    return await receive.spool_upload(
        settings, receiver.engineer, chunks(), job_id, len(data), started=True
    )


def _job(receiver: Receiver, job_id: UUID, attempts: int = 1, actor: UUID | None = None) -> Job:
    """The ``transfer.verify_upload`` job as the worker hands it to the handler."""
    return Job(
        uuid.uuid4(),
        UPLOAD_JOB,
        receiver.ctx.tenant_id,
        actor or receiver.engineer.user_id,
        {"job_id": str(job_id)},
        attempts,
        5,
    )


@pytest.mark.usefixtures("job_worker")
async def test_an_upload_verified_in_the_worker_through_the_api_and_the_page(
    settings: Settings, sender: Sender, receiver: Receiver, browser: Any, owner: asyncpg.Connection
) -> None:
    """URS-RCV-02: the API waits for the worker's outcome (201 with the package); the page
    answers at once with the inbox showing the progress, which opens the package's page."""
    engineer = await browser("author")
    first = await _package(settings, sender)
    await _trusted(sender, receiver)
    job = uuid.uuid4()
    kept = await _upload(engineer, receiver, await _archive(settings, sender, first), job)
    assert kept.status_code == 201, kept.text
    assert (kept.json()["id"], kept.json()["status"]) == (str(first), "verified")
    progress = (await engineer.get(f"{receiver.api}/jobs/{job}")).json()
    assert (progress["state"], progress["package_id"], progress["findings"]) == (
        "done",
        str(first),
        [],
    )
    assert await _quarantined(receiver.ctx.tenant_id) == []
    # The page: the inbox with the upload's progress, then the package's page.
    second = await _package(settings, sender)
    job = uuid.uuid4()
    inbox = f"/t/{receiver.ctx.slug}/transfer/inbox"
    sent = await engineer.send(
        "POST",
        f"{inbox}?job={job}",
        data={"_csrf_token": engineer.csrf},
        files={"package": ("p.zip", await _archive(settings, sender, second), "application/zip")},
    )
    assert sent.status_code == 303 and sent.headers["location"].endswith(f"{inbox}?job={job}")
    async with asyncio.timeout(60):
        shown = await engineer.get(f"{inbox}?job={job}")
        while shown.status_code == 200:
            assert 'id="transfer-progress"' in shown.text and "?upload=true" in shown.text
            await asyncio.sleep(0.1)
            shown = await engineer.get(f"{inbox}?job={job}")
    assert shown.status_code == 303, shown.text
    assert shown.headers["location"].endswith(f"/transfer/packages/{second}")
    polled = await engineer.get(
        f"/t/{receiver.ctx.slug}/transfer/jobs/{job}/progress?upload=true",
        headers={"hx-request": "true"},
    )
    assert polled.headers["hx-redirect"] == f"{inbox}?job={job}"
    assert await _count(owner, "transfer_packages", receiver.ctx.tenant_id) == 2
    assert await _events(owner, receiver.ctx.tenant_id, second) == [
        "transfer.package_received",
        "transfer.package_verified",
    ]
    assert await _quarantined(receiver.ctx.tenant_id) == []


@pytest.mark.usefixtures("job_worker")
async def test_a_refused_upload_keeps_nothing(
    settings: Settings, sender: Sender, receiver: Receiver, browser: Any, owner: asyncpg.Connection
) -> None:
    """URS-RCV-02: refused in the worker: a 422 with every finding, no quarantined object, no
    package row, no stored blob, the security event; the findings stay on the progress row
    for the page and the API."""
    engineer = await browser("author")
    package_id = await _package(settings, sender)
    job = uuid.uuid4()
    refused = await _upload(engineer, receiver, await _archive(settings, sender, package_id), job)
    assert refused.status_code == 422, refused.text
    assert [f["code"] for f in refused.json()["error"]["details"]["findings"]] == ["untrusted_key"]
    assert await _quarantined(receiver.ctx.tenant_id) == []
    assert await _count(owner, "transfer_packages", receiver.ctx.tenant_id) == 0
    root = blobs().backend.root  # type: ignore[attr-defined]
    stored = Path(root) / "tenants" / str(receiver.ctx.tenant_id)
    assert not stored.exists() or not any(stored.iterdir())
    assert await _refusals(owner, receiver) == [["untrusted_key"]]
    progress = (await engineer.get(f"{receiver.api}/jobs/{job}")).json()
    assert progress["state"] == "refused" and progress["package_id"] is None
    assert [f["code"] for f in progress["findings"]] == ["untrusted_key"]
    shown = await engineer.get(f"/t/{receiver.ctx.slug}/transfer/inbox?job={job}")
    assert shown.status_code == 200 and 'id="upload-findings"' in shown.text
    assert "not trusted here" in shown.text


async def test_the_upload_job_run_twice_writes_once(
    settings: Settings, sender: Sender, receiver: Receiver, world: World, owner: asyncpg.Connection
) -> None:
    """URS-RCV-02: the handler run again (its worker lost after the outcome committed, before
    or after the object was removed) inserts nothing twice and records no second event; a
    failed attempt keeps the object for the next; the last one failing marks the progress
    failed and removes the object."""
    registry.configure(settings)
    data = await _archive(settings, sender, await _package(settings, sender))
    # Refused twice: one security event.
    refused = uuid.uuid4()
    await receive.start_upload(receiver.engineer, refused)
    path = await _spooled(settings, receiver, data, refused)
    await receive.quarantine_upload(receiver.engineer, path, refused, enqueue=False)
    await tasks.transfer_verify_upload(_job(receiver, refused))
    await tasks.transfer_verify_upload(_job(receiver, refused, 2))
    assert (await receive.job(receiver.engineer, refused)).state == "refused"
    assert await _refusals(owner, receiver) == [["untrusted_key"]]
    # Verified twice, the second time with the object still there: one package, two events.
    await _trusted(sender, receiver)
    kept = uuid.uuid4()
    await receive.start_upload(receiver.engineer, kept)
    path = await _spooled(settings, receiver, data, kept)
    await receive.quarantine_upload(receiver.engineer, path, kept, enqueue=False)
    copy = settings.data_dir / f"left-{kept}.zip"
    copy.write_bytes(data)
    await tasks.transfer_verify_upload(_job(receiver, kept))
    await blobs().quarantine(receiver.engineer, kept, copy)  # as if not removed yet
    assert kept in await _quarantined(receiver.ctx.tenant_id)
    await tasks.transfer_verify_upload(_job(receiver, kept, 2))
    done = await receive.job(receiver.engineer, kept)
    assert done.state == "done" and done.package_id is not None
    assert await _count(owner, "transfer_packages", receiver.ctx.tenant_id) == 1
    assert await _events(owner, receiver.ctx.tenant_id, done.package_id) == [
        "transfer.package_received",
        "transfer.package_verified",
    ]
    assert await _quarantined(receiver.ctx.tenant_id) == []
    # An attempt that fails (the person may no longer import): the object stays for the
    # next attempt; the last one failing marks the progress failed and removes it.
    stopped = uuid.uuid4()
    await receive.start_upload(receiver.engineer, stopped)
    path = await _spooled(settings, receiver, data, stopped)
    await receive.quarantine_upload(receiver.engineer, path, stopped, enqueue=False)
    outsider = world["approver"].user_id
    with pytest.raises(AppError):  # refused by the access check
        await tasks.transfer_verify_upload(_job(receiver, stopped, 1, outsider))
    assert (await receive.job(receiver.engineer, stopped)).state == "running"
    assert stopped in await _quarantined(receiver.ctx.tenant_id)
    with pytest.raises(AppError):
        await tasks.transfer_verify_upload(_job(receiver, stopped, 5, outsider))
    failed = await receive.job(receiver.engineer, stopped)
    assert failed.state == "failed" and failed.error
    assert await _quarantined(receiver.ctx.tenant_id) == []
    assert await _count(owner, "transfer_packages", receiver.ctx.tenant_id) == 1


@pytest.mark.usefixtures("job_worker")
async def test_another_tenants_upload_job_is_not_found(
    settings: Settings, sender: Sender, receiver: Receiver, world: World, browser: Any
) -> None:
    """URS-RCV-04: an upload's job is its tenant's alone: the API, the inbox and the progress
    bar of another tenant answer 404 for it."""
    engineer = await browser("author")
    job = uuid.uuid4()
    package_id = await _package(settings, sender)
    answer = await _upload(engineer, receiver, await _archive(settings, sender, package_id), job)
    assert answer.status_code == 422, answer.text
    other = await _receiver(world)  # the same person is a member there too
    for url in (
        f"{other.api}/jobs/{job}",
        f"/t/{other.ctx.slug}/transfer/inbox?job={job}",
        f"/t/{other.ctx.slug}/transfer/jobs/{job}/progress?upload=true",
    ):
        assert (await engineer.get(url)).status_code == 404, url
    mine = await engineer.get(f"/t/{receiver.ctx.slug}/transfer/inbox?job={job}")
    assert mine.status_code == 200


@pytest.mark.usefixtures("job_worker")
async def test_two_uploads_with_one_job_id_at_once(
    settings: Settings, sender: Sender, receiver: Receiver, browser: Any, owner: asyncpg.Connection
) -> None:
    """URS-RCV-02: two requests with the same job id at the same moment: one is verified and
    kept, the other a 409 that keeps nothing."""
    data = await _archive(settings, sender, await _package(settings, sender))
    await _trusted(sender, receiver)
    one, two = await browser("author"), await browser("author")
    job = uuid.uuid4()
    answers = await asyncio.gather(
        _upload(one, receiver, data, job), _upload(two, receiver, data, job)
    )
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    assert await _count(owner, "transfer_packages", receiver.ctx.tenant_id) == 1
    assert await _quarantined(receiver.ctx.tenant_id) == []
    leftovers = list((settings.data_dir / "transfer-tmp").glob("received-*"))
    assert leftovers == []


@pytest.mark.usefixtures("job_worker")
async def test_an_upload_through_s3(
    settings: Settings,
    s3_settings: Settings,
    sender: Sender,
    receiver: Receiver,
    browser: Any,
    owner: asyncpg.Connection,
) -> None:
    """URS-RCV-02: with the blobs in S3 (moto), the worker streams the quarantined object
    from the bucket: a refusal leaves nothing in the bucket's quarantine, a verified upload
    is stored under its content key and its quarantined object removed."""
    data = await _archive(settings, sender, await _package(settings, sender))
    previous = blobs()
    store = blob_store.use(blob_store.store_for(s3_settings))
    try:
        engineer = await browser("author")
        refused = await _upload(engineer, receiver, data)
        assert refused.status_code == 422, refused.text
        assert await _quarantined(receiver.ctx.tenant_id) == []
        await _trusted(sender, receiver)
        job = uuid.uuid4()
        kept = await _upload(engineer, receiver, data, job)
        assert kept.status_code == 201, kept.text
        assert await _quarantined(receiver.ctx.tenant_id) == []
        assert not await asyncio.to_thread(
            store.backend.exists, quarantine_key(receiver.ctx.tenant_id, job)
        )
        key = await owner.fetchval(
            "SELECT storage_key FROM transfer_packages WHERE tenant_id = $1",
            receiver.ctx.tenant_id,
        )
        assert await store.exists(receiver.engineer, key)
        assert await receive.received(receiver.engineer, UUID(kept.json()["id"]))
    finally:
        blob_store.use(previous)


async def test_an_upload_not_verified_within_the_wait_answers_202(
    settings: Settings,
    sender: Sender,
    receiver: Receiver,
    browser: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """URS-RCV-02: no worker within the wait (shortened here): 202 with the job, which a
    worker then verifies; ``GET /transfer/jobs/{job}`` gives the outcome."""
    monkeypatch.setattr(receive, "VERIFY_WAIT", timedelta(seconds=0.5))
    package_id = await _package(settings, sender)
    await _trusted(sender, receiver)
    engineer = await browser("author")
    job = uuid.uuid4()
    waiting = await _upload(engineer, receiver, await _archive(settings, sender, package_id), job)
    assert waiting.status_code == 202, waiting.text
    assert (waiting.json()["id"], waiting.json()["state"]) == (str(job), "running")
    quick = replace(settings, job_poll_seconds=1, job_retry_seconds=1)
    handlers = {tasks.TRANSFER_VERIFY_UPLOAD: tasks.transfer_verify_upload}
    await Worker(quick, handlers=handlers, periodic=[]).run(until_idle=True)
    done = (await engineer.get(f"{receiver.api}/jobs/{job}")).json()
    assert (done["state"], done["package_id"]) == ("done", str(package_id))


async def test_the_sweep_removes_quarantined_uploads_left_behind(
    settings: Settings, sender: Sender, receiver: Receiver, owner: asyncpg.Connection
) -> None:
    """URS-RCV-02: older than a day, a quarantined upload whose job ended, or has no progress
    row, or whose progress row says running with no job to run it, is removed (the row then
    failed); one still queued for a worker, or a fresh one, stays."""
    data = await _archive(settings, sender, await _package(settings, sender))
    ctx = receiver.engineer
    backend = blobs().backend
    assert isinstance(backend, LocalBackend)

    async def left(job_id: UUID) -> None:
        path = settings.data_dir / f"left-{job_id}.zip"
        path.write_bytes(data)
        await blobs().quarantine(ctx, job_id, path)

    ended = uuid.uuid4()  # refused in process, its object put back as if left
    await receive.start_upload(ctx, ended)
    with pytest.raises(ValidationFailed, match="refused"):  # untrusted
        await receive.upload(settings, ctx, await _spooled(settings, receiver, data, ended), ended)
    await left(ended)
    no_row = uuid.uuid4()
    await left(no_row)
    queued = uuid.uuid4()  # quarantined and enqueued, no worker yet
    await receive.start_upload(ctx, queued)
    await receive.quarantine_upload(ctx, await _spooled(settings, receiver, data, queued), queued)
    stopped = uuid.uuid4()  # its request stopped between the object and the commit
    await receive.start_upload(ctx, stopped)
    await left(stopped)
    fresh = uuid.uuid4()
    await left(fresh)
    old = time.time() - timedelta(days=1, minutes=5).total_seconds()
    for job_id in (ended, no_row, queued, stopped):
        os.utime(backend.path(quarantine_key(ctx.tenant_id, job_id)), (old, old))
    assert await receive.sweep_quarantine() >= 3
    assert sorted(await _quarantined(ctx.tenant_id)) == sorted([queued, fresh])
    assert (await receive.job(ctx, stopped)).state == "failed"
    assert (await receive.job(ctx, ended)).state == "refused"
    assert (await receive.job(ctx, queued)).state == "running"
    await receive.sweep_quarantine()  # a second run removes nothing more of these
    assert sorted(await _quarantined(ctx.tenant_id)) == sorted([queued, fresh])
    waiting = await jobs.by_key(ctx.tenant_id, f"{UPLOAD_JOB}:{queued}", owner)
    assert waiting is not None and waiting.state == "queued"
    assert await _count(owner, "transfer_packages", ctx.tenant_id) == 0
    # The queued one verified by a worker after all (refused: untrusted), and removed.
    quick = replace(settings, job_poll_seconds=1, job_retry_seconds=1)
    handlers = {tasks.TRANSFER_VERIFY_UPLOAD: tasks.transfer_verify_upload}
    await Worker(quick, handlers=handlers, periodic=[]).run(until_idle=True)
    assert (await receive.job(ctx, queued)).state == "refused"
    assert await _quarantined(ctx.tenant_id) == [fresh]
    await blobs().discard(ctx, fresh)
