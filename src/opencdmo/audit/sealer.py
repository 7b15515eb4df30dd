"""Sealing: a tenant's committed, unchained events are chained in the order they committed.

A command writes its events unchained (each with its own MAC) and never touches the chain
head, so a tenant's writers do not wait on each other. Right after the command commits, the
sealer gives its events their sequence numbers and chain MACs. One sealing round per tenant
runs at a time in this process (calls arriving during a round are served together by the
next one), and an advisory lock serialises rounds across processes. A round chains only
events whose own MAC verifies: a row inserted without the key is left unsealed, and
``audit verify`` reports it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from opencdmo.audit.chain import KEYED, KEYED_FIELDS, chain_mac, entry_mac
from opencdmo.audit.keys import keyring, same
from opencdmo.db.engine import get_engine

log = logging.getLogger(__name__)

LOCK_CLASS = 0x0A0D17  # advisory lock class of the audit sealer; the key is the tenant's hash
ROUND = 1000  # events sealed per statement

# Raw SQL throughout: a round holds an advisory lock, reads the head and the unsealed events in
# one LATERAL join and places them all with one UPDATE ... FROM unnest(...), forms Piccolo
# cannot say.
# BEGIN, the tenant and the tenant's sealing lock in one round trip; the tenant id is a UUID
# rendered by UUID.__str__ (hex digits and dashes only), so inlining it is safe.
_BEGIN = (
    "BEGIN; SELECT set_config('app.tenant_id', '{tenant}', true), "
    "pg_advisory_xact_lock({lock}, hashtext('{tenant}'))"
)
# The head and the oldest unsealed events in one round trip (one row with NULLs: none).
_UNSEALED = """
SELECT h.last_seq AS head_seq, h.last_hash AS head_hash, e.*
FROM audit_heads h
LEFT JOIN LATERAL (
    SELECT * FROM audit_events u WHERE u.tenant_id = h.tenant_id AND u.seq IS NULL
    ORDER BY u.entry LIMIT $2
) e ON true
WHERE h.tenant_id = $1
"""
# The events' places and the new head in one statement.
_SEAL = """
WITH sealed AS (
    UPDATE audit_events e SET seq = s.seq, prev_hash = s.prev_hash, hash = s.hash
    FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::text[]) AS s(id, seq, prev_hash, hash)
    WHERE e.tenant_id = $1 AND e.id = s.id
)
UPDATE audit_heads SET last_seq = $6, last_hash = $7 WHERE tenant_id = $1
"""


async def seal_round(tenant_id: UUID) -> int:
    """Chain every committed unsealed event of the tenant that verifies; returns how many."""
    engine = get_engine()
    assert engine.pool is not None, "the pool is not started"
    begin = _BEGIN.format(tenant=UUID(str(tenant_id)), lock=LOCK_CLASS)
    async with engine.pool.acquire() as connection:
        await connection.execute(begin)
        try:
            total = 0
            while True:
                rows = [r for r in await connection.fetch(_UNSEALED, tenant_id, ROUND) if r["id"]]
                sealed = await _seal(connection, tenant_id, rows) if rows else 0
                total += sealed
                if len(rows) < ROUND or not sealed:
                    break
            await connection.execute("COMMIT")
        except BaseException:
            if not connection.is_closed():
                await connection.execute("ROLLBACK")
            raise
    return total


def authentic(row: Any) -> bool:
    """Whether an unsealed event carries a MAC made with a key of this key ring."""
    key = keyring().get(row["key_id"])
    return key is not None and row["algorithm"] == KEYED and same(entry_mac(key, row), row["mac"])


_refused: set[UUID] = set()


async def _seal(connection: Any, tenant_id: UUID, rows: list[Any]) -> int:
    seq, prev = int(rows[0]["head_seq"]), str(rows[0]["head_hash"])
    ids, seqs, prevs, hashes = [], [], [], []
    for row in rows:
        if not authentic(row):
            if row["id"] not in _refused:  # once per process: the sweep meets it again
                _refused.add(row["id"])
                log.error(
                    "audit event %s of tenant %s does not verify (written without the audit"
                    " key?): left unsealed",
                    row["id"],
                    tenant_id,
                )
            continue
        key = keyring().get(row["key_id"])
        assert key is not None
        seq += 1
        digest = chain_mac(key, prev, {**dict(row), "seq": seq}, KEYED_FIELDS)
        ids.append(row["id"])
        seqs.append(seq)
        prevs.append(prev)
        hashes.append(digest)
        prev = digest
    if ids:
        await connection.execute(_SEAL, tenant_id, ids, seqs, prevs, hashes, seq, prev)
    return len(ids)


@dataclass
class _Rounds:
    waiting: list[asyncio.Future[None]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


_tenants: dict[UUID, _Rounds] = {}


async def seal(tenant_id: UUID) -> None:
    """Seal the tenant's committed events; returns after a round that began after this call.

    Never raises: a failed round is logged and the sweep (``keeper``) retries it later.
    """
    state = _tenants.setdefault(tenant_id, _Rounds())
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    state.waiting.append(done)
    if state.task is None:
        state.task = asyncio.create_task(_run(tenant_id, state))
    await done


async def _run(tenant_id: UUID, state: _Rounds) -> None:
    try:
        while state.waiting:
            served, state.waiting = state.waiting, []
            try:
                await seal_round(tenant_id)
            except Exception:
                log.exception(
                    "sealing the audit trail of tenant %s failed; retried later", tenant_id
                )
            finally:
                _release(served)
    finally:
        _release(state.waiting)
        state.task = None
        _tenants.pop(tenant_id, None)


def _release(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


async def drain() -> None:
    """Wait for the sealing rounds running in this process (shutdown, tests)."""
    while running := [s.task for s in _tenants.values() if s.task is not None]:
        await asyncio.gather(*running, return_exceptions=True)
