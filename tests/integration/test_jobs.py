"""Background jobs against the real database: enqueued in the command's transaction, run by
a worker (in-process, and a real ``opencdmo worker`` process), retried with backoff, taken
again after a worker is killed, never run twice by two workers, and the lot expiry job."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from opencdmo.db import jobs as queue
from opencdmo.db.jobs import Job
from opencdmo.db.tx import unit_of_work
from opencdmo.db.urls import DatabaseUrls
from opencdmo.errors import ValidationFailed
from opencdmo.jobs import registry, tasks
from opencdmo.jobs.worker import Worker, periodic_jobs
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from tests.conftest import AUDIT_KEY, DATA_DIR, World, as_actor
from tests.integration.test_inventory import Store, material, received, store

__all__ = ["store"]  # the inventory tenant fixture, used here too

HERE = Path(__file__).parent


def fast(settings: Settings, **more: Any) -> Settings:
    values: dict[str, Any] = {
        "job_poll_seconds": 1,
        "job_stale_seconds": 1,
        "job_retry_seconds": 1,
        "worker_stop_seconds": 10,
        "worker_concurrency": 3,
        **more,
    }
    return replace(settings, **values)


async def job_row(owner: asyncpg.Connection, job_id: UUID | None) -> asyncpg.Record:
    row = await owner.fetchrow("SELECT * FROM background_jobs WHERE id = $1", job_id)
    assert row is not None
    return row


async def until(check: Any, seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - a condition in the database, not an event
            await asyncio.sleep(0.05)


async def test_a_rolled_back_command_leaves_no_job(
    own_tenant: TenantContext, owner: asyncpg.Connection
) -> None:
    async def failing_command() -> None:
        async with unit_of_work(own_tenant):
            await queue.enqueue_for(own_tenant, "test.kept", {"n": 1}, dedupe_key="rolled-back")
            raise ValidationFailed("the command failed after enqueueing")

    with pytest.raises(ValidationFailed):
        await failing_command()
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM background_jobs WHERE for_tenant = $1", own_tenant.tenant_id
        )
        == 0
    )
    async with unit_of_work(own_tenant):
        job_id = await queue.enqueue_for(own_tenant, "test.kept", {"n": 2})
    row = await job_row(owner, job_id)
    assert row["state"] == "queued" and row["for_tenant"] == own_tenant.tenant_id
    # The same work asked twice (a dedupe key): one job.
    async with unit_of_work(own_tenant):
        first = await queue.enqueue_for(own_tenant, "test.kept", dedupe_key=f"k-{job_id}")
    async with unit_of_work(own_tenant):
        again = await queue.enqueue_for(own_tenant, "test.kept", dedupe_key=f"k-{job_id}")
    assert first is not None and again is None


async def test_a_worker_runs_a_job_in_its_tenants_scope_as_who_asked(
    own_tenant: TenantContext, world: World, settings: Settings, owner: asyncpg.Connection
) -> None:
    person = as_actor(own_tenant, world["author"])
    seen: list[TenantContext] = []

    async def record(job: Job) -> None:
        seen.append(await registry.context(job))

    async with unit_of_work(person):
        job_id = await queue.enqueue_for(person, "test.scope", {"x": 1})
    worker = Worker(fast(settings), handlers={"test.scope": record}, periodic=[])
    await asyncio.wait_for(worker.run(until_idle=True), 20)
    assert [(c.tenant_id, c.user_id) for c in seen] == [
        (own_tenant.tenant_id, world["author"].user_id)
    ]
    row = await job_row(owner, job_id)
    assert row["state"] == "done" and row["attempts"] == 1 and row["finished_at"] is not None


async def test_a_failed_job_is_retried_after_a_backoff_then_fails_for_good(
    own_tenant: TenantContext, settings: Settings, owner: asyncpg.Connection
) -> None:
    calls: Counter[UUID] = Counter()

    async def flaky(job: Job) -> None:
        calls[job.id] += 1
        if job.args["fail"] == "always" or calls[job.id] == 1:
            raise ValidationFailed(f"attempt {calls[job.id]} went wrong")

    async with unit_of_work(own_tenant):
        once = await queue.enqueue_for(own_tenant, "test.flaky", {"fail": "once"})
        always = await queue.enqueue_for(
            own_tenant, "test.flaky", {"fail": "always"}, max_attempts=2
        )
    outcomes: list[tuple[UUID, str]] = []
    worker = Worker(
        fast(settings),
        handlers={"test.flaky": flaky},
        periodic=[],
        on_done=lambda job, outcome: outcomes.append((job.id, outcome)),
    )
    task = asyncio.create_task(worker.run())
    try:

        async def first_failures() -> bool:
            return len(outcomes) >= 2

        await until(first_failures)
        # Back in the queue, due only after the backoff (the database's clock).
        for job_id in (once, always):
            row = await job_row(owner, job_id)
            assert row["state"] in ("queued", "running", "done", "failed")
        row = await owner.fetchrow(
            "SELECT state, attempts, error, run_after > heartbeat_at AS later "
            "FROM background_jobs WHERE id = $1",
            once,
        )
        if row["state"] == "queued":
            assert row["later"] and row["attempts"] == 1 and "attempt 1" in row["error"]

        async def settled() -> bool:
            states = await owner.fetch(
                "SELECT state FROM background_jobs WHERE id = ANY($1::uuid[])", [once, always]
            )
            return {r["state"] for r in states} <= {"done", "failed"}

        await until(settled)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 20)
    done = await job_row(owner, once)
    assert done["state"] == "done" and done["attempts"] == 2 and done["error"] is None
    failed = await job_row(owner, always)
    assert failed["state"] == "failed" and failed["attempts"] == 2
    assert failed["error"] == "attempt 2 went wrong"
    assert outcomes.count((once, "queued")) == 1 and (once, "done") in outcomes
    assert (always, "failed") in outcomes
    # The person retries a failed job: queued again, its attempts counted afresh; another
    # tenant's id is no job of theirs.
    async with unit_of_work(own_tenant) as conn:
        assert await queue.get(failed["id"], own_tenant.tenant_id, conn) is not None
        assert await queue.retry(own_tenant.tenant_id, failed["id"], conn)
    again = await job_row(owner, always)
    assert again["state"] == "queued" and again["attempts"] == 0 and again["error"] is None


async def test_two_workers_never_run_one_job_twice(
    own_tenant: TenantContext, settings: Settings, owner: asyncpg.Connection
) -> None:
    ran: Counter[UUID] = Counter()
    by: dict[UUID, str] = {}

    def counting(name: str) -> Any:
        async def count(job: Job) -> None:
            ran[job.id] += 1
            by[job.id] = name
            await asyncio.sleep(0.01)

        return count

    async with unit_of_work(own_tenant):
        ids = [await queue.enqueue_for(own_tenant, "test.count", {"i": i}) for i in range(40)]
    workers = [
        Worker(fast(settings), name=name, handlers={"test.count": counting(name)}, periodic=[])
        for name in ("worker-a", "worker-b")
    ]
    await asyncio.wait_for(asyncio.gather(*(w.run(until_idle=True) for w in workers)), 60)
    assert set(ran) == set(ids) and set(ran.values()) == {1}
    assert await owner.fetchval(
        "SELECT count(*) FROM background_jobs WHERE id = ANY($1::uuid[]) AND state = 'done' "
        "AND attempts = 1",
        ids,
    ) == len(ids)


@pytest.fixture
def worker_env(database: DatabaseUrls, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCDMO_")}
    env.update(
        {
            "OPENCDMO_DATABASE_URL": database.owner,
            "OPENCDMO_DATA_DIR": str(DATA_DIR),
            "OPENCDMO_SECRET_KEY": "test",
            "OPENCDMO_AUDIT_KEY": AUDIT_KEY,
            "OPENCDMO_AUDIT_CHECKPOINT_DIR": str(tmp_path / "audit-checkpoints"),
            "OPENCDMO_JOB_STALE_SECONDS": "1",
            "OPENCDMO_JOB_POLL_SECONDS": "1",
            "OPENCDMO_LOT_EXPIRY_SECONDS": "0",
            "PYTHONPATH": str(HERE.parent.parent),
        }
    )
    return env


async def start_worker(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "job_child.py"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def running(owner: asyncpg.Connection, job_id: UUID | None) -> None:
    async def check() -> bool:
        return bool((await job_row(owner, job_id))["state"] == "running")

    await until(check, 60)


async def test_a_worker_killed_mid_job_and_the_job_is_taken_again(
    own_tenant: TenantContext,
    settings: Settings,
    owner: asyncpg.Connection,
    worker_env: dict[str, str],
) -> None:
    async with unit_of_work(own_tenant):
        job_id = await queue.enqueue_for(own_tenant, "test.sleep", {"seconds": 3600})
    process = await start_worker(worker_env)
    try:
        await running(owner, job_id)
    finally:
        os.kill(process.pid, signal.SIGKILL)  # no clean stop: the job stays "running"
        await process.wait()
    killed = await job_row(owner, job_id)
    assert killed["state"] == "running" and killed["attempts"] == 1

    async def quick(job: Job) -> None:
        assert job.attempts == 2

    taker = Worker(fast(settings), name="taker", handlers={"test.sleep": quick}, periodic=[])
    task = asyncio.create_task(taker.run())
    try:

        async def taken() -> bool:
            return bool((await job_row(owner, job_id))["state"] == "done")

        await until(taken)
    finally:
        taker.stop()
        await asyncio.wait_for(task, 20)
    row = await job_row(owner, job_id)
    assert row["attempts"] == 2 and row["locked_by"] is None


async def test_sigterm_lets_the_running_job_finish(
    own_tenant: TenantContext, owner: asyncpg.Connection, worker_env: dict[str, str]
) -> None:
    async with unit_of_work(own_tenant):
        job_id = await queue.enqueue_for(own_tenant, "test.sleep", {"seconds": 1.5})
    process = await start_worker(worker_env)
    await running(owner, job_id)
    process.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert "stopped" in out.decode()
    row = await job_row(owner, job_id)
    assert row["state"] == "done" and row["attempts"] == 1


async def test_the_lot_expiry_job_stores_expired_once_as_the_system(
    store: Store, browser: Any, settings: Settings, owner: asyncpg.Connection
) -> None:
    handler = await browser("operator")
    pbs = await material(handler, store)
    past = (date.today() - timedelta(days=3)).isoformat()
    old = await received(handler, store, pbs, lot="OLD", expiry_date=past)
    new = await received(handler, store, pbs, lot="NEW")
    assert old["stored_status"] == "quarantine"
    async with unit_of_work(store.ctx):
        first = await queue.enqueue_for(store.ctx, tasks.LOT_EXPIRY)
        second = await queue.enqueue_for(store.ctx, tasks.LOT_EXPIRY)  # asked twice: run twice
    worker = Worker(fast(settings), handlers={tasks.LOT_EXPIRY: tasks.lot_expiry}, periodic=[])
    await asyncio.wait_for(worker.run(until_idle=True), 30)
    for job_id in (first, second):
        assert (await job_row(owner, job_id))["state"] == "done"
    got = (await handler.get(store.url(f"/lots/{old['id']}"))).json()
    assert got["status"] == "expired" and got["stored_status"] == "expired"
    listed = await handler.get(store.url("/lots"), params={"status": "expired"})
    assert [i["lot_number"] for i in listed.json()["items"]] == ["OLD"]
    fresh = (await handler.get(store.url(f"/lots/{new['id']}"))).json()
    assert fresh["stored_status"] == "quarantine"
    events = await owner.fetch(
        "SELECT actor_id, actor_name, reason FROM audit_events "
        "WHERE tenant_id = $1 AND action = 'lot.expired'",
        store.ctx.tenant_id,
    )
    assert len(events) == 1  # the second run found nothing left to do
    assert events[0]["actor_id"] is None and past in events[0]["reason"]


async def test_opencdmo_worker_runs_the_projects_jobs_until_idle(
    store: Store, browser: Any, owner: asyncpg.Connection, worker_env: dict[str, str]
) -> None:
    handler = await browser("operator")
    pbs = await material(handler, store)
    past = (date.today() - timedelta(days=1)).isoformat()
    old = await received(handler, store, pbs, lot="PAST", expiry_date=past)
    async with unit_of_work(store.ctx):
        job_id = await queue.enqueue_for(store.ctx, tasks.LOT_EXPIRY)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opencdmo.cli",
        "worker",
        "--until-idle",
        env=worker_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    assert "job worker" in out.decode() and "stopped" in out.decode()
    assert (await job_row(owner, job_id))["state"] == "done"
    got = (await handler.get(store.url(f"/lots/{old['id']}"))).json()
    assert got["stored_status"] == "expired"


async def test_a_job_still_running_when_the_stop_time_is_up_goes_back_to_the_queue(
    own_tenant: TenantContext, settings: Settings, owner: asyncpg.Connection
) -> None:
    started = asyncio.Event()

    async def endless(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()

    async with unit_of_work(own_tenant):
        job_id = await queue.enqueue_for(own_tenant, "test.endless")
    worker = Worker(
        fast(settings, worker_stop_seconds=0), handlers={"test.endless": endless}, periodic=[]
    )
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 20)
    worker.stop()
    await asyncio.wait_for(task, 20)
    row = await job_row(owner, job_id)
    # Back for the next worker, the interrupted attempt not counted.
    assert (row["state"], row["attempts"], row["locked_by"]) == ("queued", 0, None)
    async with unit_of_work(own_tenant) as conn:
        assert await queue.retry(own_tenant.tenant_id, job_id, conn) is False  # not failed


async def test_the_prune_job_removes_only_what_is_spent(
    store: Store, settings: Settings, owner: asyncpg.Connection
) -> None:
    """Finished jobs past the retention go, and sign-on requests older than a day; a job
    still queued, one finished recently, and a request under way stay."""

    async def job(state: str, days_ago: int) -> UUID:
        found: UUID = await owner.fetchval(
            "INSERT INTO background_jobs (kind, for_tenant, state, created_at, finished_at) "
            "VALUES ('test.prune', $1, $2, now() - make_interval(days => $3), "
            "CASE WHEN $2 IN ('done', 'failed') THEN now() - make_interval(days => $3) END) "
            "RETURNING id",
            store.ctx.tenant_id,
            state,
            days_ago,
        )
        return found

    async def request(hours_ago: int) -> UUID:
        found: UUID = await owner.fetchval(
            "INSERT INTO sso_requests (state_hash, for_tenant, purpose, nonce, code_verifier, "
            "started_at) VALUES (md5(random()::text), $1, 'sign_in', 'n', 'v', "
            "now() - make_interval(hours => $2)) RETURNING id",
            store.ctx.tenant_id,
            hours_ago,
        )
        return found

    spent = [await job("done", 40), await job("failed", 31)]
    kept = [await job("done", 2), await job("failed", 29), await job("queued", 60)]
    old_request, new_request = await request(30), await request(0)
    async with unit_of_work(store.ctx):
        await queue.enqueue_for(store.ctx, tasks.PRUNE)
    worker = Worker(fast(settings), handlers={tasks.PRUNE: tasks.prune}, periodic=[])
    await asyncio.wait_for(worker.run(until_idle=True), 30)
    left = {
        r["id"]
        for r in await owner.fetch(
            "SELECT id FROM background_jobs WHERE id = ANY($1::uuid[])", spent + kept
        )
    }
    assert left == set(kept)
    await owner.execute("DELETE FROM background_jobs WHERE kind = 'test.prune'")
    requests = await owner.fetch(
        "SELECT id FROM sso_requests WHERE id = ANY($1::uuid[])", [old_request, new_request]
    )
    assert [r["id"] for r in requests] == [new_request]
    assert tasks.PRUNE in [p.kind for p in periodic_jobs(settings)]
    assert tasks.PRUNE not in [p.kind for p in periodic_jobs(replace(settings, prune_seconds=0))]
