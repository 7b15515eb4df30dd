"""Verify the chains against the key and the latest checkpoint, naming every place it fails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opencdmo.audit import coverage, sealer
from opencdmo.audit.chain import (
    AUDIT_FIELDS,
    GENESIS,
    KEYED_FIELDS,
    SECURITY_FIELDS,
    SECURITY_KEYED_FIELDS,
)
from opencdmo.audit.checkpoints import (
    SECURITY_CHAIN,
    Checkpoint,
    CheckpointStore,
    signature_problem,
    tenant_chain,
)
from opencdmo.audit.keys import Keyring, keyring
from opencdmo.audit.walker import Fields, Finding, Walker
from opencdmo.db.engine import get_engine

BATCH = 2000
TAIL = 8  # checkpoint entries read back from the newest until one verifies


@dataclass(frozen=True)
class ChainReport:
    chain: str
    checked: int
    findings: tuple[Finding, ...] = ()
    last_seq: int = 0
    last_hash: str = GENESIS
    unsealed: int = 0  # committed events waiting to be sealed (they verify)

    @property
    def intact(self) -> bool:
        return not self.findings

    @property
    def broken_at(self) -> int | None:
        """The first sequence number a finding names."""
        places = [f.seq for f in self.findings if f.seq is not None]
        return min(places) if places else None

    @property
    def problem(self) -> str | None:
        return "; ".join(f.message for f in self.findings) or None

    @property
    def kinds(self) -> list[str]:
        return [f.kind for f in self.findings]


# Raw SQL for the walk: one statement per chain kind, keyset batches of the rows exactly as
# stored, on a repeatable-read snapshot connection of its own (kept apart from the app's data
# access on purpose: the verifier trusts nothing the app's tables declare).
@dataclass(frozen=True)
class Chain:
    label: str  # "tenant alpha"
    name: str  # checkpoint chain name
    tenant_id: UUID | None
    fields: Fields
    events: str  # query: (*args, after, limit)
    head: str
    at: str  # query: the event at one seq (*args, seq)


def tenant(tenant_id: UUID, slug: str) -> Chain:
    where = "FROM audit_events WHERE tenant_id = $1"
    return Chain(
        f"tenant {slug}",
        tenant_chain(tenant_id),
        tenant_id,
        Fields(AUDIT_FIELDS, KEYED_FIELDS),
        f"SELECT * {where} AND seq > $2 ORDER BY seq LIMIT $3",
        "SELECT last_seq, last_hash FROM audit_heads WHERE tenant_id = $1",
        f"SELECT hash {where} AND seq = $2",
    )


SECURITY = Chain(
    "platform security events",
    SECURITY_CHAIN,
    None,
    Fields(SECURITY_FIELDS, SECURITY_KEYED_FIELDS),
    "SELECT * FROM security_events WHERE seq > $1 ORDER BY seq LIMIT $2",
    "SELECT last_seq, last_hash FROM security_head",
    "SELECT hash FROM security_events WHERE seq = $1",
)


@asynccontextmanager
async def snapshot(tenant_id: UUID | None) -> AsyncIterator[Any]:
    """One read-only snapshot (events and head as of one moment), under the tenant's RLS."""
    engine = get_engine()
    assert engine.pool is not None, "the pool is not started"
    async with (
        engine.pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        if tenant_id is not None:
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))
        yield connection


def checkpoint_findings(
    entries: list[Checkpoint | None], ring: Keyring
) -> tuple[list[Finding], Checkpoint | None]:
    """Findings for the newest entries that do not verify, and the newest one that does."""
    findings = []
    for entry in entries:
        if entry is None:
            findings.append(Finding("bad_checkpoint", None, "a checkpoint entry is unreadable"))
            continue
        problem = signature_problem(entry, ring)
        if problem is None:
            return findings, entry
        kind = "wrong_key" if "wrong key" in problem else "bad_checkpoint"
        findings.append(Finding(kind, entry.seq, f"the checkpoint of {entry.at}: {problem}"))
    return findings, None


def _against(walker: Walker, anchor: Checkpoint) -> list[Finding]:
    last = walker.last_seq
    if anchor.seq > last:
        return [
            Finding(
                "truncated",
                last + 1,
                f"the chain ends at {last} but the checkpoint of {anchor.at} recorded "
                f"{anchor.seq} events: events {last + 1}-{anchor.seq} were removed",
            )
        ]
    if walker.hashes.get(anchor.seq) != anchor.hash:
        return [
            Finding(
                "rewritten",
                anchor.seq,
                f"event {anchor.seq} is not the one the checkpoint of {anchor.at} recorded",
            )
        ]
    return []


async def _walk(
    connection: Any, chain: Chain, walker: Walker, args: tuple[Any, ...]
) -> Finding | None:
    after = walker.last_seq
    while True:
        rows = await connection.fetch(chain.events, *args, after, BATCH + 3)
        todo = rows[:BATCH]
        for i in range(len(todo)):
            finding = walker.step(rows, i)
            if finding is not None:
                return finding
        if len(rows) <= BATCH:
            return None
        after = todo[-1]["seq"]


async def _start(
    connection: Any, chain: Chain, args: tuple[Any, ...], since: Checkpoint
) -> Finding | None:
    """Whether the chain still holds the checkpointed event a walk starts after."""
    digest = await connection.fetchval(chain.at, *args, since.seq)
    if digest is None:
        return Finding(
            "truncated", since.seq, f"event {since.seq} of the checkpoint of {since.at} is gone"
        )
    if digest != since.hash:
        return Finding(
            "rewritten",
            since.seq,
            f"event {since.seq} is not the one the checkpoint of {since.at} recorded",
        )
    return None


async def _unsealed(connection: Any, chain: Chain) -> tuple[list[Finding], int]:
    if chain.tenant_id is None:
        return [], 0
    rows = await connection.fetch(
        "SELECT * FROM audit_events WHERE tenant_id = $1 AND seq IS NULL ORDER BY entry",
        chain.tenant_id,
    )
    forged = [
        Finding(
            "inserted",
            None,
            f"unsealed event {row['id']} ({row['action']}, written as entry {row['entry']}) "
            "does not verify: inserted without the key",
        )
        for row in rows
        if not sealer.authentic(row)
    ]
    return forged, len(rows) - len(forged)


async def verify_chain(
    chain: Chain, store: CheckpointStore | None = None, *, since: Checkpoint | None = None
) -> ChainReport:
    """Walk the whole chain (or only after ``since``, a checkpoint already verified) and
    compare it with its head and its newest checkpoint in ``store``."""
    ring = keyring()
    if chain.tenant_id is not None:
        await sealer.seal(chain.tenant_id)  # committed events still waiting
    findings, anchor = checkpoint_findings(store.latest(chain.name, TAIL) if store else [], ring)
    args: tuple[Any, ...] = () if chain.tenant_id is None else (chain.tenant_id,)
    walker = Walker(chain.fields, ring, *((since.seq, since.hash) if since else ()))
    if anchor is not None:
        walker.watch.add(anchor.seq)
    async with snapshot(chain.tenant_id) as connection:
        broken = await _start(connection, chain, args, since) if since else None
        broken = broken or await _walk(connection, chain, walker, args)
        head = await connection.fetchrow(chain.head, *args)
        forged, unsealed = await _unsealed(connection, chain)
        if chain.tenant_id is not None:
            forged += await coverage.findings(connection, chain.tenant_id)
    if broken is not None:
        findings.append(broken)
    else:
        findings += walker.finish(head)
        if anchor is not None and since is None:
            findings += _against(walker, anchor)
    findings += forged
    return ChainReport(
        chain.label, walker.checked, tuple(findings), walker.last_seq, walker.prev, unsealed
    )


async def verify_tenant(
    tenant_id: UUID, slug: str, store: CheckpointStore | None = None
) -> ChainReport:
    return await verify_chain(tenant(tenant_id, slug), store)


async def verify_security_chain(store: CheckpointStore | None = None) -> ChainReport:
    return await verify_chain(SECURITY, store)


def describe(report: ChainReport) -> list[str]:
    """Lines for people: each finding with its place."""
    return [f"{report.chain}, seq {f.seq or '-'}: {f.kind}: {f.message}" for f in report.findings]
