"""Background jobs: enqueueing (by any command, in its transaction) and the worker's side of
the queue table (``background_jobs``, migration 0037: a global table, never read by a route;
the worker itself is ``opencdmo.jobs``).

Raw SQL throughout: ``FOR UPDATE SKIP LOCKED`` in a subquery, ``pg_notify`` and the
database's clock in one statement, none of which Piccolo's query builder writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opencdmo.db import sql
from opencdmo.db.tx import autonomous
from opencdmo.scope import TenantContext

CHANNEL = "opencdmo_jobs"
ERROR_MAX = 4000

_ENQUEUE = """
WITH job AS (
    INSERT INTO background_jobs (kind, for_tenant, actor_id, args, dedupe_key, max_attempts,
                                 run_after)
    VALUES ($1, $2, $3, $4::jsonb, $5, $6, clock_timestamp() + make_interval(secs => $7))
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id, kind
)
SELECT id, pg_notify('opencdmo_jobs', kind) FROM job
"""

_COLUMNS = "id, kind, for_tenant, actor_id, args, attempts, max_attempts, state, error"

# A job whose worker stopped beating, with no attempt left, fails (it would stop the next one).
_GIVE_UP = """
UPDATE background_jobs SET state = 'failed', locked_by = NULL, finished_at = clock_timestamp(),
    error = 'Its worker stopped while running it, on every attempt.'
WHERE state = 'running' AND attempts >= max_attempts AND kind = ANY($2::text[])
  AND heartbeat_at < clock_timestamp() - make_interval(secs => $1)
"""

_CLAIM = f"""
UPDATE background_jobs SET state = 'running', attempts = attempts + 1, locked_by = $1,
    heartbeat_at = clock_timestamp()
WHERE id = (
    SELECT id FROM background_jobs
    WHERE kind = ANY($3::text[]) AND (
        (state = 'queued' AND run_after <= clock_timestamp())
        OR (state = 'running' AND heartbeat_at < clock_timestamp() - make_interval(secs => $2))
    )
    ORDER BY run_after, created_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING {_COLUMNS}
"""

_BEAT = """
UPDATE background_jobs SET heartbeat_at = clock_timestamp()
WHERE id = $1 AND locked_by = $2 AND state = 'running'
"""

_DONE = """
UPDATE background_jobs SET state = 'done', locked_by = NULL, error = NULL,
    finished_at = clock_timestamp()
WHERE id = $1 AND locked_by = $2 AND state = 'running'
"""

# Attempts left: back in the queue after the backoff; none left: failed.
_FAILED = """
UPDATE background_jobs SET locked_by = NULL, error = $3,
    state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
    finished_at = CASE WHEN attempts >= max_attempts THEN clock_timestamp() END,
    run_after = clock_timestamp() + make_interval(secs => $4 * power(2, attempts - 1))
WHERE id = $1 AND locked_by = $2 AND state = 'running'
RETURNING state
"""

# A worker stopping before its job finished: the job goes back, the attempt not counted.
_RELEASE = """
UPDATE background_jobs SET state = 'queued', locked_by = NULL, run_after = clock_timestamp(),
    attempts = greatest(attempts - 1, 0)
WHERE id = $1 AND locked_by = $2 AND state = 'running'
"""

_RETRY = """
UPDATE background_jobs SET state = 'queued', attempts = 0, error = NULL, finished_at = NULL,
    run_after = clock_timestamp()
WHERE id = $1 AND for_tenant = $2 AND state = 'failed'
RETURNING id
"""


# Finished jobs past their retention; never one still queued or running.
_PRUNE = """
DELETE FROM background_jobs
WHERE state IN ('done', 'failed') AND finished_at < clock_timestamp() - make_interval(days => $1)
"""


@dataclass(frozen=True)
class Job:
    id: UUID
    kind: str
    for_tenant: UUID | None
    actor_id: UUID | None
    args: dict[str, Any]
    attempts: int
    max_attempts: int
    state: str = "queued"
    error: str | None = None


def _job(row: Any) -> Job:
    values = dict(row)
    raw = values["args"]
    values["args"] = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
    return Job(**values)


async def enqueue(
    kind: str,
    args: dict[str, Any] | None = None,
    *,
    tenant_id: UUID | None,
    actor_id: UUID | None = None,
    dedupe_key: str | None = None,
    max_attempts: int = 5,
    delay_seconds: float = 0,
    on: Any = None,
) -> UUID | None:
    """Add a job in the transaction open in this context (or on ``on``): it exists once that
    transaction commits. None: a job with this ``dedupe_key`` exists already."""
    conn = on or sql.connection()
    found = await conn.fetchval(
        _ENQUEUE,
        kind,
        tenant_id,
        actor_id,
        json.dumps(args or {}),
        dedupe_key,
        max_attempts,
        float(delay_seconds),
    )
    return found if isinstance(found, UUID) else None


async def enqueue_for(
    ctx: TenantContext,
    kind: str,
    args: dict[str, Any] | None = None,
    *,
    dedupe_key: str | None = None,
    max_attempts: int = 5,
) -> UUID | None:
    """A job for the command's tenant, run as its actor, in the command's open transaction."""
    return await enqueue(
        kind,
        args,
        tenant_id=ctx.tenant_id,
        actor_id=ctx.user_id,
        dedupe_key=dedupe_key,
        max_attempts=max_attempts,
    )


async def claim(worker: str, stale_seconds: float, kinds: list[str]) -> Job | None:
    """The next job of these kinds due (or one whose worker stopped beating), now this
    worker's; committed at once so that no other worker takes it."""
    async with autonomous(None) as conn:
        await conn.execute(_GIVE_UP, float(stale_seconds), kinds)
        row = await conn.fetchrow(_CLAIM, worker, float(stale_seconds), kinds)
    return None if row is None else _job(row)


async def beat(job_id: UUID, worker: str) -> bool:
    """The running job is alive (False: it is no longer this worker's)."""
    async with autonomous(None) as conn:
        return str(await conn.execute(_BEAT, job_id, worker)).endswith(" 1")


async def done(job_id: UUID, worker: str) -> None:
    async with autonomous(None) as conn:
        await conn.execute(_DONE, job_id, worker)


async def failed(job_id: UUID, worker: str, error: str, backoff_seconds: float) -> str | None:
    """Record a failure: ``queued`` (retried after the backoff) or ``failed`` (no attempt left)."""
    async with autonomous(None) as conn:
        state = await conn.fetchval(
            _FAILED, job_id, worker, error[:ERROR_MAX], float(backoff_seconds)
        )
    return None if state is None else str(state)


async def release(job_id: UUID, worker: str) -> None:
    async with autonomous(None) as conn:
        await conn.execute(_RELEASE, job_id, worker)


async def retry(tenant_id: UUID, job_id: UUID, on: Any = None) -> bool:
    """Queue a failed job of this tenant again, its attempts counted afresh (False: there is
    no failed job of this id for this tenant)."""
    conn = on or sql.connection()
    return await conn.fetchval(_RETRY, job_id, tenant_id) is not None


async def get(job_id: UUID, tenant_id: UUID, on: Any = None) -> Job | None:
    """One job of this tenant (None: no such job, or another tenant's)."""
    return await _one("id", job_id, tenant_id, on)


async def by_key(tenant_id: UUID, dedupe_key: str, on: Any = None) -> Job | None:
    """The job of this tenant enqueued with this key (None: none, or another tenant's)."""
    return await _one("dedupe_key", dedupe_key, tenant_id, on)


async def _one(column: str, value: Any, tenant_id: UUID, on: Any) -> Job | None:
    """The tenant's job whose ``column`` (a name from the two above, never input) is ``value``."""
    conn = on or sql.connection()
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM background_jobs WHERE {column} = $1 AND for_tenant = $2",
        value,
        tenant_id,
    )
    return None if row is None else _job(row)


async def prune(retention_days: int) -> int:
    """Remove jobs finished more than ``retention_days`` ago; how many."""
    async with autonomous(None) as conn:
        done = str(await conn.execute(_PRUNE, retention_days))
    return int(done.rsplit(" ", 1)[-1])
