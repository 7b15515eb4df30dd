"""Keeping the trail: sealing what a sealer missed, writing checkpoints, anchoring chains
that were written before the chain was keyed. The app runs ``Keeper`` in the background; the
CLI calls the same functions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from uuid import UUID

from opencdmo.audit import queries, sealer, service
from opencdmo.audit.chain import LEGACY
from opencdmo.audit.checkpoints import Checkpoint, CheckpointStore, sign
from opencdmo.audit.keys import keyring
from opencdmo.audit.verify import (
    SECURITY,
    TAIL,
    Chain,
    ChainReport,
    checkpoint_findings,
    describe,
    snapshot,
    tenant,
    verify_chain,
)
from opencdmo.db.tx import global_transaction
from opencdmo.errors import NotFound
from opencdmo.scope import SYSTEM, RequestMeta

log = logging.getLogger(__name__)

SWEEP_SECONDS = 5.0


@dataclass(frozen=True)
class Head:
    tenant_id: UUID
    slug: str
    last_seq: int
    unsealed: int


async def heads() -> list[Head]:
    """Every tenant chain's head (one call, each tenant read under its own RLS)."""
    async with global_transaction() as connection:
        # Raw SQL: a set-returning function (each tenant's head read under its own row-level
        # security), which Piccolo cannot select from.
        rows = await connection.fetch(
            "SELECT tenant_id, slug, last_seq, unsealed FROM audit_chain_heads()"
        )
    return [Head(r["tenant_id"], r["slug"], r["last_seq"], r["unsealed"]) for r in rows]


async def sweep() -> int:
    """Seal the events of every tenant with committed events still unsealed."""
    waiting = [h for h in await heads() if h.unsealed]
    for head in waiting:
        await sealer.seal(head.tenant_id)
    return len(waiting)


@dataclass(frozen=True)
class CheckpointResult:
    report: ChainReport
    written: Checkpoint | None


def write_checkpoint(
    chain: Chain, report: ChainReport, store: CheckpointStore
) -> Checkpoint | None:
    """Append a checkpoint of a verified chain's head, unless the newest one says the same."""
    ring = keyring()
    _, newest = checkpoint_findings(store.latest(chain.name, TAIL), ring)
    unchanged = newest is not None and (newest.seq, newest.hash) == (
        report.last_seq,
        report.last_hash,
    )
    if not report.intact or report.last_seq == 0 or unchanged:
        return None
    checkpoint = sign(ring.current, chain.name, chain.label, report.last_seq, report.last_hash)
    store.append(checkpoint)
    return checkpoint


async def checkpoint_chain(chain: Chain, store: CheckpointStore) -> CheckpointResult:
    """Verify what was added since the newest checkpoint; if it holds, checkpoint the head."""
    _, since = checkpoint_findings(store.latest(chain.name, TAIL), keyring())
    report = await verify_chain(chain, store, since=since)
    return CheckpointResult(report, write_checkpoint(chain, report, store))


async def chains_for(slug: str | None = None) -> list[Chain]:
    """Every tenant's chain and the platform's, or only the chain of the tenant ``slug``."""
    if slug is None:
        return [tenant(h.tenant_id, h.slug) for h in await heads()] + [SECURITY]
    found = [tenant(h.tenant_id, h.slug) for h in await heads() if h.slug == slug]
    if not found:
        raise NotFound(f"No tenant has the slug '{slug}'.")
    return found


async def checkpoint_all(store: CheckpointStore) -> list[CheckpointResult]:
    return [await checkpoint_chain(chain, store) for chain in await chains_for()]


async def _ends_unkeyed(chain: Chain) -> bool:
    async with snapshot(chain.tenant_id) as connection:
        last = await queries.last_algorithm(connection, security=chain.tenant_id is None)
    return last == LEGACY


async def anchor_legacy() -> list[str]:
    """Give every chain that ends with unkeyed (pre-key) events a keyed event, whose MAC then
    vouches for all of them; returns the chains anchored."""
    anchored = []
    key = keyring().current
    for chain in await chains_for():
        if await _ends_unkeyed(chain):
            await service.record_security(
                "audit.chain_keyed",
                actor=SYSTEM,
                meta=RequestMeta(request_id="cli:db-upgrade"),
                tenant_id=chain.tenant_id,
                detail={"key_id": key.id},
            )
            anchored.append(chain.label)
    return anchored


class Keeper:
    """The app's background task: a sweep every few seconds, checkpoints every interval.

    It is never cancelled mid-work (a transaction cancelled while it commits would keep its
    connection): ``stop`` asks it to end and waits for the chain it is on.
    """

    def __init__(self, store: CheckpointStore, checkpoint_seconds: int) -> None:
        self.store, self.seconds = store, checkpoint_seconds
        self.task: asyncio.Task[None] | None = None
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        self.stopping.clear()
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self.stopping.set()
        if self.task is not None:
            await self.task
            self.task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        tick = min(SWEEP_SECONDS, self.seconds) if self.seconds > 0 else SWEEP_SECONDS
        due = loop.time() + self.seconds
        while not self.stopping.is_set():
            try:
                await sweep()
                if self.seconds > 0 and loop.time() >= due:
                    due = loop.time() + self.seconds
                    await self._checkpoint()
            except Exception:
                log.exception("audit keeper: sweep or checkpoint failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), tick)

    async def _checkpoint(self) -> None:
        for chain in await chains_for():
            if self.stopping.is_set():
                return
            result = await checkpoint_chain(chain, self.store)
            for line in describe(result.report):
                log.error("audit trail: %s (no checkpoint written)", line)
