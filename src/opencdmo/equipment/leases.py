"""Capture leases: which worker captures which unit, held in PostgreSQL.

Every few seconds a worker ``take``s its share in one transaction: it says it is alive
(``capture_workers``, until its lease time runs out), counts the live workers, and holds at
most its fair share of the units (the units divided by the live workers, rounded up): its
own leases renewed first, then units nobody holds or whose lease expired (their worker died
or lost the database). A worker holding more than its share (a new worker joined) lets the
rest go, so the next round of another worker takes them: scale-out is starting more workers.
A worker's first round only says it is there, so that workers started together share the
units from their second round on instead of the first one taking every unit and letting
some go again (a handover, whose gap only a server that keeps history can fill). A clean
stop (``release``) ends its leases and its presence at once, so another worker takes its
units at its next round instead of after the leases run out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from uuid import UUID

from opencdmo.db.tx import tenant_id_transaction

# Raw SQL (these statements): upserts and updates guarded by the database's clock, which
# Piccolo's on_conflict cannot express (no WHERE on the update).
ALIVE = """
INSERT INTO capture_workers (tenant_id, worker, seen_at, expires_at)
VALUES ($1::uuid, $2, clock_timestamp(), clock_timestamp() + make_interval(secs => $3))
ON CONFLICT (tenant_id, worker) DO UPDATE
SET seen_at = excluded.seen_at, expires_at = excluded.expires_at
RETURNING (xmax = 0) AS joined
"""
LIVE = "SELECT count(*) FROM capture_workers WHERE expires_at > clock_timestamp()"
MINE = """
SELECT equipment_id FROM capture_leases
WHERE worker = $1 AND expires_at > clock_timestamp() AND equipment_id = ANY($2::uuid[])
ORDER BY acquired_at, equipment_id
"""
TAKE = """
INSERT INTO capture_leases (tenant_id, equipment_id, worker, acquired_at, expires_at)
SELECT $1::uuid, u, $3, clock_timestamp(), clock_timestamp() + make_interval(secs => $4)
FROM unnest($2::uuid[]) AS u
ON CONFLICT (tenant_id, equipment_id) DO UPDATE SET
    worker = excluded.worker,
    acquired_at = CASE WHEN capture_leases.worker = excluded.worker
                       THEN capture_leases.acquired_at ELSE excluded.acquired_at END,
    expires_at = excluded.expires_at
WHERE capture_leases.worker = excluded.worker OR capture_leases.expires_at < clock_timestamp()
RETURNING equipment_id
"""
FREE = """
SELECT u FROM unnest($1::uuid[]) AS u
WHERE NOT EXISTS (
    SELECT 1 FROM capture_leases l WHERE l.equipment_id = u AND l.expires_at > clock_timestamp())
ORDER BY u
"""
LET_GO = """
UPDATE capture_leases SET expires_at = greatest(acquired_at, clock_timestamp())
WHERE worker = $1 AND expires_at > clock_timestamp() AND equipment_id = ANY($2::uuid[])
"""
RELEASE = """
UPDATE capture_leases SET expires_at = greatest(acquired_at, clock_timestamp())
WHERE worker = $1 AND expires_at > clock_timestamp()
"""
GONE = """
UPDATE capture_workers SET expires_at = greatest(seen_at, clock_timestamp()) WHERE worker = $1
"""


async def take(tenant_id: UUID, worker: str, units: Sequence[UUID], seconds: float) -> set[UUID]:
    """Renew this worker's leases and take free ones, up to its fair share of ``units``, for
    ``seconds``; the units it holds now."""
    async with tenant_id_transaction(tenant_id) as conn:
        joined = await conn.fetchval(ALIVE, tenant_id, worker, seconds)
        if joined or not units:  # a worker's first round only says it is there
            return set()
        live = max(1, await conn.fetchval(LIVE))
        share = math.ceil(len(units) / live)
        mine = [r["equipment_id"] for r in await conn.fetch(MINE, worker, list(units))]
        keep, shed = mine[:share], mine[share:]
        if shed:
            await conn.execute(LET_GO, worker, shed)
        wanted = list(keep)
        if len(keep) < share:
            free = [r["u"] for r in await conn.fetch(FREE, list(units))]
            wanted += free[: share - len(keep)]
        if not wanted:
            return set()
        rows = await conn.fetch(TAKE, tenant_id, wanted, worker, seconds)
    return {r["equipment_id"] for r in rows}


async def release(tenant_id: UUID, worker: str) -> None:
    async with tenant_id_transaction(tenant_id) as conn:
        await conn.execute(RELEASE, worker)
        await conn.execute(GONE, worker)


async def holders(tenant_id: UUID) -> dict[UUID, str]:
    """The unexpired leases: unit -> worker."""
    async with tenant_id_transaction(tenant_id) as conn:
        rows = await conn.fetch(
            "SELECT equipment_id, worker FROM capture_leases WHERE expires_at > clock_timestamp()"
        )
    return {r["equipment_id"]: r["worker"] for r in rows}
