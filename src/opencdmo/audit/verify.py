"""Recompute the hash chains and name the first broken sequence number."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opencdmo.audit.chain import AUDIT_FIELDS, GENESIS, SECURITY_FIELDS, event_hash
from opencdmo.db.tx import global_transaction, tenant_id_transaction

BATCH = 2000


@dataclass(frozen=True)
class ChainReport:
    chain: str
    checked: int
    broken_at: int | None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.broken_at is None


class _Walker:
    def __init__(self, chain: str, fields: tuple[str, ...]):
        self.chain, self.fields = chain, fields
        self.expected, self.prev, self.checked = 1, GENESIS, 0

    def step(self, row: Mapping[str, Any]) -> ChainReport | None:
        seq = row["seq"]
        if seq != self.expected:
            return self.broken(self.expected, f"sequence jumps from {self.expected - 1} to {seq}")
        if row["prev_hash"] != self.prev:
            return self.broken(seq, "previous-hash link does not match")
        if event_hash(self.prev, row, self.fields) != row["hash"]:
            return self.broken(seq, "event content does not match its hash")
        self.prev, self.expected, self.checked = row["hash"], seq + 1, self.checked + 1
        return None

    def finish(self, head: Mapping[str, Any] | None) -> ChainReport:
        last = self.expected - 1
        if head is None:
            return self.broken(max(last, 1), "chain head is missing")
        if head["last_seq"] != last or (last and head["last_hash"] != self.prev):
            return self.broken(last + 1, f"chain head says {head['last_seq']} events, found {last}")
        return ChainReport(self.chain, self.checked, None)

    def broken(self, seq: int, problem: str) -> ChainReport:
        return ChainReport(self.chain, self.checked, seq, problem)


async def _walk(connection: Any, walker: _Walker, query: str, *args: Any) -> ChainReport | None:
    after = 0
    while True:
        rows = await connection.fetch(query, *args, after, BATCH)
        for row in rows:
            report = walker.step(row)
            if report is not None:
                return report
        if len(rows) < BATCH:
            return None
        after = rows[-1]["seq"]


async def verify_tenant(tenant_id: UUID, slug: str) -> ChainReport:
    walker = _Walker(f"tenant {slug}", AUDIT_FIELDS)
    query = "SELECT * FROM audit_events WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    async with tenant_id_transaction(tenant_id) as connection:
        report = await _walk(connection, walker, query, tenant_id)
        if report is not None:
            return report
        head = await connection.fetchrow(
            "SELECT last_seq, last_hash FROM audit_heads WHERE tenant_id = $1", tenant_id
        )
    return walker.finish(head)


async def verify_security_chain() -> ChainReport:
    walker = _Walker("platform security events", SECURITY_FIELDS)
    query = "SELECT * FROM security_events WHERE seq > $1 ORDER BY seq LIMIT $2"
    async with global_transaction() as connection:
        report = await _walk(connection, walker, query)
        if report is not None:
            return report
        head = await connection.fetchrow("SELECT last_seq, last_hash FROM security_head")
    return walker.finish(head)
