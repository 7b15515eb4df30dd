"""Capture leases: which worker captures which unit, held in PostgreSQL.

A worker ``take``s the units it can in one statement every few seconds: a unit nobody holds,
one whose lease expired (its worker died or lost the database), and its own (renewed). It
``release``s its leases when it stops cleanly, so another worker takes them at its next
round instead of after the lease runs out.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from opencdmo.db.tx import tenant_id_transaction

# Raw SQL: one upsert for every unit, taking over only a lease that is this worker's or has
# expired (Piccolo's on_conflict has no WHERE on the update).
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

# Raw SQL: ends this worker's leases now (the same UPDATE Piccolo would send, with the time
# taken from the database's clock).
RELEASE = """
UPDATE capture_leases SET expires_at = greatest(acquired_at, clock_timestamp())
WHERE worker = $1 AND expires_at > clock_timestamp()
"""


async def take(tenant_id: UUID, worker: str, units: Sequence[UUID], seconds: float) -> set[UUID]:
    """Take or renew the leases of ``units`` for ``seconds``; the ones this worker holds."""
    if not units:
        return set()
    async with tenant_id_transaction(tenant_id) as conn:
        rows = await conn.fetch(TAKE, tenant_id, list(units), worker, seconds)
    return {r["equipment_id"] for r in rows}


async def release(tenant_id: UUID, worker: str) -> None:
    async with tenant_id_transaction(tenant_id) as conn:
        await conn.execute(RELEASE, worker)


async def holders(tenant_id: UUID) -> dict[UUID, str]:
    """The unexpired leases: unit -> worker."""
    async with tenant_id_transaction(tenant_id) as conn:
        rows = await conn.fetch(
            "SELECT equipment_id, worker FROM capture_leases WHERE expires_at > clock_timestamp()"
        )
    return {r["equipment_id"]: r["worker"] for r in rows}
