"""Genealogy traces through the API against the same recursive query through asyncpg directly,
and a trace over 10x the graph against the same trace over 1x.

The graph is generated (seeded) into the demo CDMO's tenant with COPY, as the owner: a few
materials; ``--lots`` lots (100,000) and a tenth as many batches, complete, with the recipe,
revision, formula, site and sponsor of a batch the demo made through the services; and the
links between them in 10 levels. A batch of level k consumes two lots made at level k-1
(one of the batch in the same place and one of its neighbour's) and four raw material lots
of its own (six at level 1), and makes two lots with the batch as their origin; the raw
lots no batch consumed stay in stock. So a trace backward from a lot made at level 10, or
forward from a raw lot consumed at level 1, spans all 10 levels and reaches a bounded
neighbourhood of the graph: about 390 nodes backward, 165 forward, whatever its size.

Throughput: ``--clients`` (20) clients trace backward, then forward, from a seeded sample of
start nodes (each request the next start): ``GET /api/v1/t/<tenant>/genealogy/<id>
?direction=...`` with a bearer token on the server as deployed (one worker process per
core), against what the service runs, through an asyncpg pool as the application role
under row-level security: BEGIN READ ONLY with the tenant setting, ``START_SQL``,
``TRACE_SQL``, COMMIT. Target: the API reaches at least 40 % of the direct throughput.

Scale: the graph then grows to ``--scale`` (10) times its size in the same tenant (more
lots, batches and links of the same shape, 1,000,000 lots at the defaults) and the same
traces from the same starts run again; target: a trace over 10x the graph within 2x the
time, both through the API and directly. ``EXPLAIN (ANALYZE, BUFFERS)`` of one trace each
way, at each size, shows that the walk reads the link indexes (no sequential scan of the
links) and how many buffers it touched.

``python -m bench.genealogy --help`` lists the options (``--lots 10000`` is a quick run;
``--scale 1`` skips the scale check); ``BENCH_SECONDS`` (5) sets each run's length.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import asyncpg

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
from opencdmo.db.engine import release_reset
from opencdmo.db.urls import APP_ROLE, with_user
from opencdmo.inventory.genealogy import MAX_LINKS, START_SQL, TRACE_SQL

SLUG = "larkspur-cdmo"
READER = "materials@larkspur.example"  # a materials handler: materials:read
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
TARGET = 0.40  # API throughput against direct
SCALE_TARGET = 2.0  # time per trace at --scale x the graph against 1x
LEVELS = 10
MADE = 2  # lots a batch makes
RAW_FIRST, RAW = 6, 4  # raw lots a batch consumes at level 1, at later levels
SAMPLE = 200  # start nodes per direction
SEED = 12
ENV = {
    "OPENCDMO_ARGON2_TIME_COST": "1",
    "OPENCDMO_ARGON2_MEMORY_KIB": "1024",
    "OPENCDMO_AUDIT_CHECKPOINT_SECONDS": "0",  # nothing else runs in the server meanwhile
}
RAW_MATERIALS = 6
WHOLE = ("genealogy_links", "lots", "batches")  # read whole, a trace would scan the graph


@dataclass(frozen=True)
class Options:
    lots: int = 100_000
    scale: int = 10
    clients: int = 20
    workers: int = os.cpu_count() or 1
    seconds: float = SECONDS


@dataclass
class Graph:
    """One generated graph (a component of the tenant's): its batches by level and place,
    the lots they made, the raw lots each consumed, and the raw lots left in stock."""

    width: int  # batches per level
    batches: list[list[UUID]] = field(default_factory=list)  # [level - 1][place]
    made: list[list[tuple[UUID, ...]]] = field(default_factory=list)  # [level - 1][place]
    raw: list[list[tuple[UUID, ...]]] = field(default_factory=list)  # [level - 1][place]
    stock: list[UUID] = field(default_factory=list)

    @property
    def lots(self) -> int:
        return sum(len(x) for level in (*self.made, *self.raw) for x in level) + len(self.stock)

    def links(self) -> Iterator[tuple[UUID, str, UUID, str]]:
        """(parent, kind, child, kind): every consumption and output of every batch."""
        for k in range(LEVELS):
            for j, batch in enumerate(self.batches[k]):
                for lot in self.raw[k][j]:
                    yield lot, "lot", batch, "batch"
                if k:
                    yield self.made[k - 1][j][0], "lot", batch, "batch"
                    yield self.made[k - 1][(j + 1) % self.width][1], "lot", batch, "batch"
                for lot in self.made[k][j]:
                    yield batch, "batch", lot, "lot"

    def backward_starts(self) -> list[UUID]:
        return [lot for made in self.made[-1] for lot in made]

    def forward_starts(self) -> list[UUID]:
        return [lot for raw in self.raw[0] for lot in raw]


def generate(lots: int, rng: random.Random) -> Graph:
    """A graph of about ``lots`` lots and a tenth as many batches (see the module)."""
    width = max(LEVELS + 2, lots // 10 // LEVELS)
    graph = Graph(width)

    def ids(n: int) -> tuple[UUID, ...]:
        return tuple(UUID(int=rng.getrandbits(128), version=4) for _ in range(n))

    for k in range(LEVELS):
        graph.batches.append(list(ids(width)))
        graph.made.append([ids(MADE) for _ in range(width)])
        graph.raw.append([ids(RAW_FIRST if k == 0 else RAW) for _ in range(width)])
    graph.stock = list(ids(max(0, lots - graph.lots)))
    return graph


# --- loading it: COPY into the tenant, as the owner ------------------------------------------


@dataclass(frozen=True)
class Tenant:
    id: UUID
    receiver: UUID  # received_by of the lots
    batch: asyncpg.Record  # a batch the demo made: recipe, revision, formula, site, sponsor
    raw_materials: list[UUID]
    intermediates: list[UUID]  # one a level


async def _copy(connection: asyncpg.Connection, table: str, columns: list[str], rows: Any) -> None:
    """COPY into a tenant table. COPY FROM refuses a table with row-level security for a role
    subject to it (the owner is: the policies are forced), so the rows go through a temporary
    table and one INSERT in the tenant's transaction."""
    stage = f"stage_{table}"
    await connection.execute(
        f"CREATE TEMP TABLE {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
    )
    await connection.copy_records_to_table(stage, records=rows, columns=columns)
    await connection.execute(f"INSERT INTO {table} SELECT * FROM {stage}")


async def _tenant(connection: asyncpg.Connection) -> Tenant:
    tenant_id = await connection.fetchval("SELECT id FROM tenants WHERE slug = $1", SLUG)
    receiver = await connection.fetchval("SELECT id FROM users WHERE email = $1", READER)
    async with connection.transaction():
        await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))
        batch = await connection.fetchrow(
            "SELECT recipe_id, revision, formula, site_id, sponsor FROM batches LIMIT 1"
        )
        assert batch is not None, "the demo made no batch"
        rows = [
            (tenant_id, uuid.uuid4(), f"GEN-RAW-{n:02}", f"Generated raw material {n}", "reagent")
            for n in range(1, RAW_MATERIALS + 1)
        ] + [
            (
                tenant_id,
                uuid.uuid4(),
                f"GEN-INT-{k:02}",
                f"Generated intermediate {k}",
                "intermediate",
            )
            for k in range(1, LEVELS + 1)
        ]
        await _copy(
            connection,
            "materials",
            ["tenant_id", "id", "code", "name", "material_type", "default_unit"],
            [(*row, "g") for row in rows],
        )
    ids = [row[1] for row in rows]
    return Tenant(tenant_id, receiver, batch, ids[:RAW_MATERIALS], ids[RAW_MATERIALS:])


LOT_COLUMNS = [
    "tenant_id",
    "id",
    "material_id",
    "lot_number",
    "supplier",
    "supplier_lot",
    "quantity",
    "unit",
    "expiry_date",
    "status",
    "received_by",
    "origin_batch_id",
    "origin_step",
]
BATCH_COLUMNS = [
    "tenant_id",
    "id",
    "number",
    "recipe_id",
    "revision",
    "formula",
    "site_id",
    "sponsor",
    "planned_start",
    "status",
    "started_at",
    "ended_at",
]
LINK_COLUMNS = ["tenant_id", "id", "parent_id", "parent_kind", "child_id", "child_kind"]


async def load(owner: str, tenant: Tenant, graph: Graph, name: str) -> float:
    """COPY one graph into the tenant (one transaction), ANALYZE; returns the seconds taken."""
    began = time.perf_counter()
    t = tenant.id
    expiry = date(2030, 1, 1)
    now = datetime.now(UTC)
    serial = iter(range(10**9))

    def lot(lot_id: UUID, material: UUID, origin: UUID | None, supplier: str) -> tuple[Any, ...]:
        n = next(serial)
        number = f"{name}-L{n:07}"
        step = "S1" if origin else None
        return (t, lot_id, material, number, supplier, number, 1, "g", expiry, "released",
                tenant.receiver, origin, step)  # fmt: skip

    def batches() -> Iterator[tuple[Any, ...]]:
        b = tenant.batch
        for k, level in enumerate(graph.batches):
            for j, batch in enumerate(level):
                number = f"{name}-B{k + 1:02}-{j:06}"
                columns = (b["recipe_id"], b["revision"], b["formula"], b["site_id"], b["sponsor"])
                yield (t, batch, number, *columns, now, "complete", now, now)

    def lots() -> Iterator[tuple[Any, ...]]:
        raws = tenant.raw_materials
        for k in range(LEVELS):
            for j, batch in enumerate(graph.batches[k]):
                for made in graph.made[k][j]:
                    yield lot(made, tenant.intermediates[k], batch, "in-house")
                for i, raw in enumerate(graph.raw[k][j]):
                    yield lot(raw, raws[(j + i) % len(raws)], None, "Generated Supplies")
        for i, raw in enumerate(graph.stock):
            yield lot(raw, raws[i % len(raws)], None, "Generated Supplies")

    def links() -> Iterator[tuple[Any, ...]]:
        for parent, parent_kind, child, child_kind in graph.links():
            yield t, uuid.uuid4(), parent, parent_kind, child, child_kind

    connection = await asyncpg.connect(owner)
    try:
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(t))
            await _copy(connection, "batches", BATCH_COLUMNS, batches())
            await _copy(connection, "lots", LOT_COLUMNS, lots())
            await _copy(connection, "genealogy_links", LINK_COLUMNS, links())
        for table in ("materials", "batches", "lots", "genealogy_links"):
            await connection.execute(f"ANALYZE {table}")
    finally:
        await connection.close()
    return time.perf_counter() - began


# --- measuring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    direction: str
    lines: list[str]  # the plan's lines that read genealogy_links
    seq_scan: bool  # a sequential scan of the links anywhere in the plan
    buffers: str  # the top node's buffers
    links: int  # links the trace returned


async def explain(pool: asyncpg.Pool, tenant_id: UUID, start: UUID, way: str) -> Plan:
    """EXPLAIN (ANALYZE, BUFFERS) of the trace as the app role under row-level security."""
    async with pool.acquire() as connection, connection.transaction(readonly=True):
        await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))
        rows = await connection.fetch(
            "EXPLAIN (ANALYZE, BUFFERS) " + TRACE_SQL[way], start, MAX_LINKS + 1
        )
        links = len(await connection.fetch(TRACE_SQL[way], start, MAX_LINKS + 1))
    text = [r[0] for r in rows]
    if os.environ.get("BENCH_PLANS"):
        print("\n".join(text))
    reads = [line.strip() for line in text if "Scan" in line or "Join" in line]
    buffers = next((line.strip() for line in text if "Buffers:" in line), "")
    seq = any(f"Seq Scan on {t} " in line for line in text for t in WHOLE)
    return Plan(way, reads, seq, buffers, links)


def _direct_worker(pool: asyncpg.Pool, tenant_id: UUID, way: str, starts: list[UUID]) -> Any:
    begin = f"BEGIN READ ONLY; SELECT set_config('app.tenant_id', '{tenant_id}', true)"
    sql = TRACE_SQL[way]
    counter = iter(range(10**9))
    offset = random.Random(SEED).randrange(len(starts))

    async def make() -> Any:
        mine = offset + next(counter) * 7

        async def op() -> None:
            nonlocal mine
            start = starts[mine % len(starts)]
            mine += 1
            async with pool.acquire() as connection:  # what the service does (read_view)
                await connection.execute(begin)
                node = await connection.fetchrow(START_SQL, start)
                rows = await connection.fetch(sql, start, MAX_LINKS + 1)
                await connection.execute("COMMIT")
            assert node is not None
            assert rows

        return op

    return make


def _api_worker(port: int, token: str, way: str, starts: list[UUID]) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    requests = [
        get_request(
            "127.0.0.1", port, f"/api/v1/t/{SLUG}/genealogy/{start}?direction={way}", headers
        )
        for start in starts
    ]
    counter = iter(range(10**9))
    offset = random.Random(SEED).randrange(len(starts))
    connections: list[HttpConnection] = []

    async def make() -> Any:
        mine = offset + next(counter) * 7
        connection = HttpConnection("127.0.0.1", port)
        connections.append(connection)

        async def op() -> None:
            nonlocal mine
            body = await connection.send(requests[mine % len(requests)])
            mine += 1
            assert body

        return op

    return make, connections


@dataclass
class Run:
    """One size's measurements: (direct, API) per direction, and the plans."""

    size: str
    lots: int
    links: int
    results: dict[str, tuple[Result, Result]] = field(default_factory=dict)
    plans: list[Plan] = field(default_factory=list)


async def _check_same(
    pool: asyncpg.Pool, port: int, token: str, tenant_id: UUID, starts: dict[str, list[UUID]]
) -> None:
    """The API's trace has the links the direct query finds (a few starts each way)."""
    import json

    for way, found in starts.items():
        for start in found[:3]:
            async with pool.acquire() as connection, connection.transaction(readonly=True):
                await connection.execute(
                    "SELECT set_config('app.tenant_id', $1, true)", str(tenant_id)
                )
                rows = await connection.fetch(TRACE_SQL[way], start, MAX_LINKS + 1)
            connection = HttpConnection("127.0.0.1", port)
            path = f"/api/v1/t/{SLUG}/genealogy/{start}?direction={way}"
            headers = {"Authorization": f"Bearer {token}"}
            body = json.loads(await connection.send(get_request("127.0.0.1", port, path, headers)))
            await connection.close()
            assert len(body["edges"]) == len(rows), (way, len(body["edges"]), len(rows))


async def measure(
    size: str,
    options: Options,
    pool: asyncpg.Pool,
    port: int,
    token: str,
    tenant_id: UUID,
    starts: dict[str, list[UUID]],
) -> Run:
    async with pool.acquire() as connection, connection.transaction(readonly=True):
        await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))
        counts = await connection.fetchrow(
            "SELECT (SELECT count(*) FROM lots) AS lots,"
            " (SELECT count(*) FROM genealogy_links) AS links"
        )
    run = Run(size, counts["lots"], counts["links"])
    for way, found in starts.items():
        run.plans.append(await explain(pool, tenant_id, found[0], way))
    await _check_same(pool, port, token, tenant_id, starts)
    for way, found in starts.items():
        direct = await run_load(
            f"{size} direct {way} (RLS, read only)",
            options.clients,
            options.seconds,
            _direct_worker(pool, tenant_id, way, found),
        )
        make, connections = _api_worker(port, token, way, found)
        try:
            api = await run_load(
                f"{size} API {way} (bearer token)", options.clients, options.seconds, make
            )
        finally:
            for connection in connections:
                await connection.close()
        run.results[way] = (direct, api)
    return run


async def main(options: Options | None = None) -> list[Run]:
    options = options or Options()
    owner, data_dir = await fresh_database("bench_genealogy")
    env = {**server_env(owner, data_dir), **ENV}
    server = None
    pool = None
    rng = random.Random(SEED)
    runs: list[Run] = []
    try:
        await _cli(env, "demo", str(ROOT / "tenants"))
        token = (await _cli(env, "tokens", "create", "--tenant", SLUG, "--email", READER)).strip()
        connection = await asyncpg.connect(owner)
        try:
            tenant = await _tenant(connection)
        finally:
            await connection.close()
        graph = generate(options.lots, rng)
        took = await load(owner, tenant, graph, "GEN1")
        print(f"  1x graph: {graph.lots:,} lots, {graph.width * LEVELS:,} batches in {took:.0f} s")
        sample = random.Random(SEED)
        starts = {
            "backward": sample.sample(graph.backward_starts(), SAMPLE),
            "forward": sample.sample(graph.forward_starts(), SAMPLE),
        }
        pool = await asyncpg.create_pool(
            with_user(owner, APP_ROLE, None),
            min_size=options.clients,
            max_size=options.clients,
            reset=release_reset,  # as the app's pool: no reset query per checkout
        )
        port = free_port()
        server = await start_server({**env, "OPENCDMO_WORKERS": str(options.workers)}, port)
        runs.append(await measure("1x", options, pool, port, token, tenant.id, starts))
        if options.scale > 1:
            more = generate(options.lots * (options.scale - 1), rng)
            took = await load(owner, tenant, more, "GEN2")
            print(f"  grown by {more.lots:,} lots, {more.width * LEVELS:,} batches in {took:.0f} s")
            runs.append(
                await measure(f"{options.scale}x", options, pool, port, token, tenant.id, starts)
            )
    finally:
        if pool is not None:
            await pool.close()
        if server is not None:
            server.terminate()
            await server.wait()
        await drop_database(owner)
    return runs


def report(runs: list[Run]) -> bool:
    print(__doc__.strip().splitlines()[0])
    ok = True
    for run in runs:
        print(f"{run.size}: {run.lots:,} lots, {run.links:,} links in the tenant")
        for plan in run.plans:
            verdict = "SEQUENTIAL SCAN of the links" if plan.seq_scan else "link indexes only"
            print(f"  EXPLAIN {plan.direction} ({plan.links} links): {verdict}; {plan.buffers}")
            for line in plan.lines:
                print(f"    {line}")
            ok = ok and not plan.seq_scan
        for way, (direct, api) in run.results.items():
            print(direct.line())
            print(api.line())
            ratio = api.rps / direct.rps
            met = ratio >= TARGET
            ok = ok and met
            print(
                f"  {way} API / direct: {ratio:.0%} "
                f"(target >= {TARGET:.0%}: {'met' if met else 'NOT met'})"
            )
    if len(runs) == 2:
        small, large = runs
        for way in small.results:
            for side, n in (("direct", 0), ("API", 1)):
                a, b = small.results[way][n], large.results[way][n]
                ratio = a.rps / b.rps  # time per trace at the same clients
                p50 = b.pct(0.5) / a.pct(0.5)
                met = ratio <= SCALE_TARGET
                ok = ok and met
                print(
                    f"  {way} {side} time {large.size}/{small.size}: {ratio:.2f}x (p50 {p50:.2f}x)"
                    f" (target <= {SCALE_TARGET:.0f}x: {'met' if met else 'NOT met'})"
                )
    return ok


def parse(argv: Sequence[str]) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench.genealogy",
        description=__doc__.strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--lots", type=int, default=defaults.lots, help="lots at 1x (a tenth as many batches)"
    )
    parser.add_argument(
        "--scale", type=int, default=defaults.scale, help="the large graph's size in 1x (1: skip)"
    )
    parser.add_argument("--clients", type=int, default=defaults.clients, help="concurrent clients")
    parser.add_argument(
        "--workers", type=int, default=defaults.workers, help="server worker processes"
    )
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="each run's length")
    args = parser.parse_args(argv)
    if args.lots < 2_000:
        parser.error("--lots is at least 2000 (12 batches a level)")
    if min(args.scale, args.clients, args.workers) < 1 or args.seconds <= 0:
        parser.error("--scale, --clients and --workers are at least 1, --seconds above 0")
    return Options(args.lots, args.scale, args.clients, args.workers, args.seconds)


if __name__ == "__main__":
    options = parse(sys.argv[1:])
    sys.exit(0 if report(asyncio.run(main(options))) else 1)
