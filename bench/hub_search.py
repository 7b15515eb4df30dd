"""HUB full-text search with two facets, first page, through the API at 20 clients against
the same search as plain SQL on hub_items run as the owner (no row-level security, the
full-text index used: the baseline), and against the endpoint's own statements run
directly, as the owner and as the app role (under row-level security); then the same with
10 and with 1,000 tenants holding installs.

A deterministic generator adds 10,000 items to the real library (seeded, so every run
searches the same catalogue). Targets: the API's time per request within 2x of the
baseline's; the 1,000-tenant case within 1.2x of the 10-tenant case.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from typing import Any

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
from opencdmo.canonical import content_hash
from opencdmo.db.engine import release_reset
from opencdmo.db.textsearch import as_typed
from opencdmo.db.tx import SET_TENANT
from opencdmo.db.urls import APP_ROLE, with_user
from opencdmo.hub.content import search_text
from opencdmo.hub.search import SearchQuery, search_on, search_sql
from opencdmo.scope import SYSTEM, TenantContext

SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
CLIENTS = 20
ITEMS = int(os.environ.get("BENCH_HUB_ITEMS", "10000"))
SLUG = "larkspur-cdmo"
QUERY = {"q": "cell expansion", "kind": "unit_operation", "modality": "car-t"}
WORDS = (
    "cell",
    "expansion",
    "harvest",
    "wash",
    "culture",
    "vector",
    "filtration",
    "buffer",
    "thaw",
    "seeding",
    "transduction",
    "activation",
    "formulation",
    "sampling",
    "storage",
)
MODALITIES = ("car-t", "tcr-t", "aav", "lvv", "msc", "ipsc", "nk")
CATEGORIES = ("cell-processing", "upstream", "downstream", "fill-finish", "qc-sampling")


def generated(n: int) -> dict[str, Any]:
    """Item n of the synthetic catalogue: same input, same item."""
    rng = random.Random(n)
    words = rng.sample(WORDS, 3)
    return {
        "kind": "unit_operation",
        "slug": f"gen-{n:05d}",
        "version": "1.0.0",
        "name": f"{words[0].title()} {words[1]} step {n}",
        "summary": f"Generated {words[0]} and {words[1]} operation for benchmarking.",
        "description": f"Synthetic {' '.join(words)} content (benchmark data, not a process).",
        "changelog": "Initial release.",
        "authors": ["bench"],
        "licence": "CC-BY-4.0",
        "tags": [words[2]],
        "modalities": rng.sample(MODALITIES, 2),
        "category": rng.choice(CATEGORIES),
        "equipment_classes": ["biosafety-cabinet"],
        "materials": [],
        "phases": [
            {
                "key": "main",
                "name": f"{words[1].title()} phase",
                "instructions": "Synthetic.",
                "parameters": [],
                "data_capture": [],
            }
        ],
    }


async def add_items(owner: asyncpg.Connection, publisher: Any) -> None:
    rows = []
    for n in range(ITEMS):
        data = generated(n)
        rows.append((data, *search_text(data)))
    await owner.executemany(
        """
        WITH item AS (
            INSERT INTO hub_items (publisher_id, kind, slug, name, summary, latest_version,
                                   category, modalities, equipment_classes, tags, search)
            VALUES ($1, 'unit_operation', $2::jsonb->>'slug', $2::jsonb->>'name',
                    $2::jsonb->>'summary', '1.0.0', $2::jsonb->>'category',
                    ARRAY(SELECT jsonb_array_elements_text($2::jsonb->'modalities')),
                    ARRAY['biosafety-cabinet'],
                    ARRAY(SELECT jsonb_array_elements_text($2::jsonb->'tags')),
                    setweight(to_tsvector('english', $3::text), 'A')
                    || setweight(to_tsvector('english', $4::text), 'B')
                    || setweight(to_tsvector('english', $5::text), 'C'))
            RETURNING id
        )
        INSERT INTO hub_versions (item_id, version, major, minor, patch, content, content_hash,
                                  changelog)
        SELECT id, '1.0.0', 1, 0, 0, $2::jsonb, $6, 'Initial release.' FROM item
        """,
        [(publisher, json.dumps(d), a, b, c, content_hash(d)) for d, a, b, c in rows],
    )


async def add_tenants(owner: asyncpg.Connection, start: int, stop: int) -> None:
    """Tenants numbered [start, stop), each with 20 installed items."""
    versions = [
        r["id"]
        for r in await owner.fetch(
            "SELECT v.id FROM hub_versions v JOIN hub_items i ON i.id = v.item_id "
            "WHERE i.slug LIKE 'gen-%' ORDER BY i.slug LIMIT 2000"
        )
    ]
    for n in range(start, stop):
        tenant = await owner.fetchval(
            "INSERT INTO tenants (slug, name, kind) VALUES ($1, $2, 'cdmo') RETURNING id",
            f"bench-{n:04d}",
            f"Bench tenant {n}",
        )
        await owner.execute("INSERT INTO audit_heads VALUES ($1, 0, repeat('0', 64))", tenant)
        picks = random.Random(n).sample(versions, 20)
        await owner.executemany(
            "INSERT INTO library_items (tenant_id, source, hub_item_id, hub_version_id, kind, "
            "slug, name, version, content, content_hash) SELECT $1, 'installed', v.item_id, v.id, "
            "i.kind, i.slug, i.name, v.version, v.content, v.content_hash FROM hub_versions v "
            "JOIN hub_items i ON i.id = v.item_id WHERE v.id = $2",
            [(tenant, v) for v in picks],
        )


# The same search written plainly, on hub_items alone: what it costs with its indexes and no
# row-level security (run as the owner).
PLAIN_PAGE = """
SELECT i.id, i.kind, i.slug, i.name, i.summary, i.latest_version, i.category, i.modalities,
       i.install_count, i.updated_at, i.visibility, t.name AS publisher,
       t.slug AS publisher_slug, ts_rank(i.search, websearch_to_tsquery('english', $1)) AS rank,
       count(*) OVER () AS total
FROM hub_items i JOIN tenants t ON t.id = i.publisher_id
WHERE i.search @@ websearch_to_tsquery('english', $1) AND i.kind = $2
  AND i.modalities @> ARRAY[$3]
ORDER BY rank DESC, i.name, i.id LIMIT 20
"""
PLAIN_FACETS = """
WITH f AS (SELECT i.kind, i.category, i.modalities, i.equipment_classes, t.slug AS publisher
           FROM hub_items i JOIN tenants t ON t.id = i.publisher_id
           WHERE i.search @@ websearch_to_tsquery('english', $1) AND i.kind = $2
             AND i.modalities @> ARRAY[$3])
SELECT 'kind' AS facet, kind AS value, count(*) AS n FROM f GROUP BY kind
UNION ALL SELECT 'category', category, count(*) FROM f WHERE category IS NOT NULL GROUP BY category
UNION ALL SELECT 'modality', m, count(*) FROM f, unnest(modalities) m GROUP BY m
UNION ALL SELECT 'publisher', publisher, count(*) FROM f GROUP BY publisher
UNION ALL SELECT 'equipment_class', e, count(*) FROM f, unnest(equipment_classes) e GROUP BY e
"""
PLAIN_ARGS = (QUERY["q"], QUERY["kind"], QUERY["modality"])


async def plain_statements(connection: asyncpg.Connection, ctx: TenantContext) -> None:
    assert await connection.fetch(PLAIN_PAGE, *PLAIN_ARGS)
    await connection.fetch(PLAIN_FACETS, *PLAIN_ARGS)


async def search_statements(connection: asyncpg.Connection, ctx: TenantContext) -> None:
    """What the endpoint runs, by the same code (the words as typed; looked up for typos only
    when they find less than a page)."""
    query = SearchQuery(QUERY["q"], QUERY["kind"], QUERY["modality"])
    assert (await search_on(connection, ctx, query)).items


async def index_used(pool: asyncpg.Pool, ctx: TenantContext, *, plain: bool = False) -> bool:
    """Whether the plan reads the full-text index."""
    query = SearchQuery(QUERY["q"], QUERY["kind"], QUERY["modality"])
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(SET_TENANT, str(ctx.tenant_id))
        sql, args = (
            (PLAIN_PAGE, list(PLAIN_ARGS))
            if plain
            else search_sql(ctx, query, as_typed(query.text))
        )
        plan = await connection.fetch("EXPLAIN " + sql, *args)
    return any("hub_items_search" in row[0] for row in plan)


async def measure(
    port: int, token: str, pools: dict[str, asyncpg.Pool], ctx: TenantContext, label: str
) -> list[Result]:
    path = f"/api/v1/t/{SLUG}/hub/items?" + "&".join(
        f"{k}={v.replace(' ', '+')}" for k, v in QUERY.items()
    )
    request = get_request("127.0.0.1", port, path, {"Authorization": f"Bearer {token}"})

    def direct(pool: asyncpg.Pool, statements: Any = search_statements) -> Any:
        async def make() -> Any:
            async def op() -> None:
                async with pool.acquire() as connection, connection.transaction():
                    await connection.execute(SET_TENANT, str(ctx.tenant_id))
                    await statements(connection, ctx)

            return op

        return make

    async def api() -> Any:
        return HttpConnection("127.0.0.1", port, request)

    owner, app = pools["owner"], pools["app"]
    return [
        await run_load(f"baseline ({label})", CLIENTS, SECONDS, direct(owner, plain_statements)),
        await run_load(f"statements, no RLS ({label})", CLIENTS, SECONDS, direct(owner)),
        await run_load(f"statements, RLS ({label})", CLIENTS, SECONDS, direct(app)),
        await run_load(f"search API ({label})", CLIENTS, SECONDS, api),
    ]


async def main() -> list[Result]:
    owner_url, data_dir = await fresh_database("bench_hub")
    env = server_env(owner_url, data_dir)
    env.update({"OPENCDMO_ARGON2_TIME_COST": "1", "OPENCDMO_ARGON2_MEMORY_KIB": "1024"})
    await _cli(env, "demo", str(ROOT / "tenants"))
    owner = await asyncpg.connect(owner_url)
    publisher = await owner.fetchval("SELECT id FROM tenants WHERE slug = 'opencdmo-hub'")
    print(f"generating {ITEMS} items...", flush=True)
    await add_items(owner, publisher)
    await add_tenants(owner, 0, 10)
    # As autovacuum leaves a server that has run a while: statistics, and the full-text
    # index's pending list merged (a bulk load leaves it full, and the planner avoids it).
    await owner.execute("VACUUM ANALYZE")
    token = (
        await _cli(
            env, "tokens", "create", "--tenant", SLUG, "--email", "engineer@larkspur.example"
        )
    ).strip()
    port = free_port()
    server = await start_server(env, port)
    pools = {
        name: await asyncpg.create_pool(
            url, min_size=CLIENTS, max_size=CLIENTS, reset=release_reset
        )
        for name, url in (("owner", owner_url), ("app", with_user(owner_url, APP_ROLE, None)))
    }
    row = await owner.fetchrow("SELECT id, name FROM tenants WHERE slug = $1", SLUG)
    ctx = TenantContext(row["id"], SLUG, row["name"], "cdmo", SYSTEM, None, (), 1)
    try:
        used = {name: await index_used(pool, ctx) for name, pool in pools.items()}
        used["baseline"] = await index_used(pools["owner"], ctx, plain=True)
        print(f"full-text index in the plans: {used}", flush=True)
        results = await measure(port, token, pools, ctx, "10 tenants")
        print("adding 990 tenants with installs...", flush=True)
        await add_tenants(owner, 10, 1000)
        await owner.execute("VACUUM ANALYZE")
        results += await measure(port, token, pools, ctx, "1,000 tenants")
    finally:
        for pool in pools.values():
            await pool.close()
        await owner.close()
        server.terminate()
        await server.wait()
        await drop_database(owner_url)
    return results


def report(results: list[Result]) -> bool:
    print(__doc__.strip().splitlines()[0])
    for result in results:
        print(result.line())
    baseline10, _, _, api10, _, _, _, api1000 = results
    ratio = baseline10.rps / api10.rps
    slowdown = api10.rps / api1000.rps
    ok_ratio, ok_scale = ratio <= 2.0, slowdown <= 1.2
    print(
        f"  API vs baseline (plain SQL, no RLS, index used) at 10 tenants: {ratio:.2f}x the "
        f"time per request (target <= 2x: {'met' if ok_ratio else 'NOT met'})"
    )
    print(
        f"  1,000 vs 10 tenants: {slowdown:.2f}x the time per request (target <= 1.2x: "
        f"{'met' if ok_scale else 'NOT met'})"
    )
    return ok_ratio and ok_scale


if __name__ == "__main__":
    report(asyncio.run(main()))
