"""Many concurrent short commands in one tenant against the same number spread over many
tenants (no shared chain head): the cost of the per-tenant audit chain under contention.

Each command is one transaction: an UPDATE of the command's own row (a site of its own, so
no two commands touch the same record) and one audit event, through the real services on
the app's pool. ``one tenant`` runs CLIENTS workers in one tenant; the baseline runs the
same number of workers, each in its own tenant. Two orders are measured: the audit event
last (just before COMMIT) and first (before the UPDATE, as a command that signs and then
changes state does). Target: one tenant reaches at least 70 % of the baseline throughput.
The two sides run in alternating short rounds (``BENCH_SECONDS`` in all per side, default 2),
``BENCH_CLIENTS`` sets the concurrency (default 16).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from piccolo.engine.postgres import PostgresEngine

from bench.harness import Result, drop_database, fresh_database, run_load
from opencdmo.audit import keys
from opencdmo.audit import service as audit
from opencdmo.db import migrate
from opencdmo.db.engine import bind_engine, close_pool, start_pool
from opencdmo.db.tx import unit_of_work
from opencdmo.db.urls import resolve_urls
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy

SECONDS = float(os.environ.get("BENCH_SECONDS", "2"))
ROUNDS = 4  # alternating rounds per comparison
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "16"))
TARGET = 0.70
UPDATE = "UPDATE sites SET name = $2 WHERE tenant_id = $1 AND code = $3"

Command = Callable[[], Awaitable[None]]


async def _tenant(n: int) -> TenantContext:
    slug = f"bench-{uuid.uuid4().hex[:8]}-{n}"
    return await tenancy.create_tenant(slug, f"Bench {n}", "cdmo", SYSTEM, RequestMeta())


def command(ctx: TenantContext, code: str, event_first: bool) -> Command:
    """One command: its own site row updated and one audit event, in one transaction."""
    state = {"n": 0}

    async def run() -> None:
        state["n"] += 1
        async with unit_of_work(ctx) as connection:
            if event_first:
                await audit.record(ctx, "bench.touched", "site", code, new={"n": state["n"]})
            await connection.execute(UPDATE, ctx.tenant_id, f"site {state['n']}", code)
            if not event_first:
                await audit.record(ctx, "bench.touched", "site", code, new={"n": state["n"]})

    return run


async def _workers(contexts: list[TenantContext]) -> list[tuple[TenantContext, str]]:
    """CLIENTS (tenant, site code) pairs, cycling over the given tenants."""
    pairs = []
    for i in range(CLIENTS):
        ctx = contexts[i % len(contexts)]
        code = f"S{i}"
        await tenancy.upsert_site(ctx, code, f"site {i}", "UTC")
        pairs.append((ctx, code))
    return pairs


async def _measure(name: str, pairs: list[tuple[TenantContext, str]], event_first: bool) -> Result:
    queue = iter(pairs)

    async def make() -> Command:
        ctx, code = next(queue)
        return command(ctx, code, event_first)

    return await run_load(name, CLIENTS, SECONDS / ROUNDS, make)


def _merged(results: list[Result]) -> Result:
    first = results[0]
    return Result(
        first.name,
        first.clients,
        sum(r.requests for r in results),
        sum(r.seconds for r in results),
        [latency for r in results for latency in r.latencies],
    )


async def _compare(
    many: list[tuple[TenantContext, str]], one: list[tuple[TenantContext, str]], event_first: bool
) -> list[Result]:
    """Baseline and one tenant in alternating short rounds, so drift in the machine's load
    (other work on it) falls on both alike."""
    order = "event first" if event_first else "event last"
    spread, shared = [], []
    for _ in range(ROUNDS):
        spread.append(await _measure(f"{CLIENTS} tenants ({order})", many, event_first))
        shared.append(await _measure(f"one tenant ({order})", one, event_first))
    return [_merged(spread), _merged(shared)]


async def main() -> list[Result]:
    owner, data_dir = await fresh_database("bench_audit")
    settings = Settings(
        database_url=owner, data_dir=Path(data_dir), secret_key="bench", audit_key="b" * 32
    )
    keys.configure(settings)
    urls = resolve_urls(settings, owner)
    results: list[Result] = []
    engine: PostgresEngine | None = None
    try:
        await asyncio.to_thread(migrate.upgrade, urls)
        engine = bind_engine(urls)
        await start_pool(engine, CLIENTS + 4)
        one = await _workers([await _tenant(0)])
        many = await _workers([await _tenant(n + 1) for n in range(CLIENTS)])
        for event_first in (False, True):
            results += await _compare(many, one, event_first)
    finally:
        await audit.drain()
        if engine is not None:
            await close_pool(engine)
        await drop_database(owner)
    return results


def report(results: list[Result]) -> bool:
    print(__doc__.strip().splitlines()[0])
    ok = True
    for baseline, shared in zip(results[::2], results[1::2], strict=True):
        print(baseline.line())
        print(shared.line())
        ratio = shared.rps / baseline.rps
        met = ratio >= TARGET
        ok = ok and met
        verdict = "met" if met else "NOT met"
        print(f"  one tenant / many: {ratio:.0%} (target >= {TARGET:.0%}: {verdict})")
    return ok


if __name__ == "__main__":
    report(asyncio.run(main()))
