"""Scale-out: the batch-entry and HUB-search workloads with 10 and with 1,000 tenants, each
through one web worker process and through two, on the real server as deployed.

Two fresh databases, made alike but for their tenant count: the demo tenants, the HUB's
``BENCH_HUB_ITEMS`` generated items (10,000 by default, as in ``bench.hub_search``), and 10
or 1,000 more tenants (each with 20 installed items, their own audit chain head), statistics
refreshed. The entry workload is
``bench.batch_entries``'s API side: ``--clients`` operators, each writing the demo recipe's
fields to a running batch of its own (a fresh batch for each configuration, so every entry
is a first value), with their bearer tokens. The search workload is ``bench.hub_search``'s
API search with two facets at 20 clients for ``BENCH_SECONDS``. The measurements alternate
between the databases (``ORDER``, ``ROUNDS`` times), so that neither gets the machine's
quieter moments or a later, larger state; each configuration's best round is compared.

Targets: at each worker count, 1,000 tenants within 1.2x of 10 (time per request); two
workers at least 1.6x the throughput of one where the machine has the cores for it (two
server processes, the database and the load client: at least 4). The cores this process may
use are printed, and the worker target is reported as not applicable below 4.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from bench import batch_entries as be
from bench import hub_search as hs
from bench.api_list import _cli
from bench.harness import (
    ROOT,
    HttpConnection,
    Result,
    drop_database,
    free_port,
    fresh_database,
    get_request,
    run_load,
    server_env,
    start_server,
)
from opencdmo.audit import keys
from opencdmo.db import engine as db
from opencdmo.db.urls import resolve_urls
from opencdmo.identity import passwords

SCALE = 1.2  # time per request, 1,000 tenants / 10, at most
WORKERS = 1.6  # throughput, two workers / one, at least (given the cores)
CORES_NEEDED = 4
# (tenants, workers), alternating between the two databases; run ROUNDS times.
ORDER = ((10, 1), (1000, 1), (1000, 2), (10, 2))
ROUNDS = 2


@dataclass(frozen=True)
class Options:
    clients: int = 20
    entries: int = 30
    warmup: int = 2


@dataclass(frozen=True)
class Run:
    tenants: int
    workers: int
    entries: Result
    search: Result


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


async def _batches(plant: be.Plant, count: int) -> list[list[UUID]]:
    """``count`` fresh running batches per operator."""
    supervisor = await be._as(plant.ctx.tenant_id, "supervisor@larkspur.example")
    operator = await be._as(plant.ctx.tenant_id, "operator@larkspur.example")
    recipe = await be._effective_recipe(plant.ctx.tenant_id)
    made: list[list[UUID]] = []
    for k in range(count):
        made.append(
            [
                await be._running_batch(supervisor, operator, recipe, 1000 + k * 100 + n)
                for n in range(len(plant.operators))
            ]
        )
    return made


async def _entries(
    port: int, plant: be.Plant, batches: list[UUID], options: Options, label: str
) -> Result:
    operators = [
        be.Operator(o.actor, o.token, batch, o.direct_batch)
        for o, batch in zip(plant.operators, batches, strict=True)
    ]
    pairs = [be._api_writer(port, plant, who) for who in operators]
    measured = be.Options(options.clients, options.entries, options.warmup)
    try:
        return await be._measure(f"entries API ({label})", [w for w, _ in pairs], measured)
    finally:
        for _, connection in pairs:
            await connection.close()


async def _search(port: int, token: str, label: str) -> Result:
    path = f"/api/v1/t/{hs.SLUG}/hub/items?" + "&".join(
        f"{k}={v.replace(' ', '+')}" for k, v in hs.QUERY.items()
    )
    request = get_request("127.0.0.1", port, path, {"Authorization": f"Bearer {token}"})

    async def api() -> HttpConnection:
        return HttpConnection("127.0.0.1", port, request)

    return await run_load(f"search API ({label})", hs.CLIENTS, hs.SECONDS, api)


@dataclass
class Prepared:
    """One database, the same as the other but for its tenant count."""

    tenants: int
    owner_url: str
    env: dict[str, str]
    plant: be.Plant
    batches: list[list[UUID]]  # fresh running batches for each measurement, used in turn
    token: str


async def _prepare(tenants: int, options: Options, measurements: int) -> Prepared:
    """A fresh database with the demo, the generated HUB items and ``tenants`` more tenants
    (each with 20 installed items), statistics refreshed."""
    owner_url, data_dir = await fresh_database(f"bench_scale_{tenants}")
    env = {**server_env(owner_url, data_dir), **be.ARGON2}
    settings = be._settings(owner_url, data_dir)
    await _cli(env, "demo", str(ROOT / "tenants"))
    keys.configure(settings)
    passwords.configure(settings)
    engine = db.bind_engine(resolve_urls(settings, owner_url))
    await db.start_pool(engine, 8)
    owner = await asyncpg.connect(owner_url)
    try:
        publisher = await owner.fetchval("SELECT id FROM tenants WHERE slug = 'opencdmo-hub'")
        print(
            f"{tenants:,} tenants: generating {hs.ITEMS} HUB items and the tenants...", flush=True
        )
        await hs.add_items(owner, publisher)
        await hs.add_tenants(owner, 0, tenants)
        plant = await be._plant(settings, options.clients)
        if options.warmup + options.entries > len(plant.fields):
            raise SystemExit(f"--warmup + --entries is at most {len(plant.fields)}")
        batches = await _batches(plant, measurements)
        token = (
            await _cli(
                env, "tokens", "create", "--tenant", hs.SLUG, "--email", "engineer@larkspur.example"
            )
        ).strip()
        await owner.execute("VACUUM ANALYZE")
    finally:
        await owner.close()
        await db.close_pool(engine)
    return Prepared(tenants, owner_url, env, plant, batches, token)


async def main(options: Options | None = None) -> list[Run]:
    """Both databases first, then the measurements alternating between them (ORDER, twice),
    so that neither gets the machine's quieter moments or a later, larger state; each
    configuration's best round is reported."""
    options = options or Options()
    order = [c for _ in range(ROUNDS) for c in ORDER]
    per_db = {tenants: sum(1 for t, _ in order if t == tenants) for tenants in (10, 1000)}
    prepared: dict[int, Prepared] = {}
    runs: list[Run] = []
    try:
        for tenants in (10, 1000):
            prepared[tenants] = await _prepare(tenants, options, per_db[tenants])
        used = dict.fromkeys(prepared, 0)
        for tenants, workers in order:
            world = prepared[tenants]
            batches = world.batches[used[tenants]]
            used[tenants] += 1
            label = f"{tenants:,} tenants, {workers} worker{'s' if workers > 1 else ''}"
            port = free_port()
            server = await start_server({**world.env, "OPENCDMO_WORKERS": str(workers)}, port)
            try:
                entries = await _entries(port, world.plant, batches, options, label)
                search = await _search(port, world.token, label)
            finally:
                server.terminate()
                await server.wait()
            runs.append(Run(tenants, workers, entries, search))
            print(entries.line(), flush=True)
            print(search.line(), flush=True)
    finally:
        for world in prepared.values():
            await drop_database(world.owner_url)
    return runs


def best(runs: list[Run], tenants: int, workers: int, workload: str) -> Result:
    """The configuration's round with the highest throughput."""
    found = [getattr(r, workload) for r in runs if (r.tenants, r.workers) == (tenants, workers)]
    return max(found, key=lambda result: result.rps)


def report(runs: list[Run]) -> bool:
    print(__doc__.strip().splitlines()[0])
    for run in runs:
        print(run.entries.line())
        print(run.search.line())
    ok = True
    have = cores()
    print(f"  cores this machine gives the benchmark: {have}")
    for workload in ("entries", "search"):
        for workers in (1, 2):
            small = best(runs, 10, workers, workload)
            large = best(runs, 1000, workers, workload)
            slowdown = small.rps / large.rps
            met = slowdown <= SCALE
            ok = ok and met
            print(
                f"  {workload}, {workers} worker(s): 1,000 vs 10 tenants {slowdown:.2f}x the time "
                f"per request (target <= {SCALE}x: {'met' if met else 'NOT met'})"
            )
        for tenants in (10, 1000):
            one = best(runs, tenants, 1, workload)
            two = best(runs, tenants, 2, workload)
            gain = two.rps / one.rps
            if have < CORES_NEEDED:
                verdict = f"not applicable: {have} cores, {CORES_NEEDED} needed"
            else:
                verdict = "met" if gain >= WORKERS else "NOT met"
                ok = ok and gain >= WORKERS
            print(
                f"  {workload}, {tenants:,} tenants: two workers {gain:.2f}x the throughput of "
                f"one (target >= {WORKERS}x: {verdict})"
            )
    return ok


def parse(argv: Sequence[str]) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale_tenants", description=__doc__.strip().splitlines()[0]
    )
    parser.add_argument("--clients", type=int, default=defaults.clients, help="operators")
    parser.add_argument("--entries", type=int, default=defaults.entries, help="timed per operator")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="untimed first")
    args = parser.parse_args(argv)
    return Options(args.clients, args.entries, args.warmup)


if __name__ == "__main__":
    sys.exit(0 if report(asyncio.run(main(parse(sys.argv[1:])))) else 1)
