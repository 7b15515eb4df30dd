"""HUB full-text search with two facets, first page, through the API at 20 clients against
the same SQL through asyncpg in the same run; then the same search with 10 and with 1,000
tenants holding installs.

A deterministic generator adds 10,000 items to the real library (seeded, so every run
searches the same catalogue). Targets: the API reaches at least 40 % of the direct
throughput; the 1,000-tenant case stays within 1.2x of the 10-tenant case.
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
from opencdmo.db.tx import SET_TENANT
from opencdmo.db.urls import APP_ROLE, with_user
from opencdmo.hub.content import search_text
from opencdmo.hub.queries import SearchQuery, facets_sql, page_sql, where

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


async def measure(
    port: int, token: str, pool: asyncpg.Pool, tenant_id: Any, label: str
) -> tuple[Result, Result]:
    path = f"/api/v1/t/{SLUG}/hub/items?" + "&".join(
        f"{k}={v.replace(' ', '+')}" for k, v in QUERY.items()
    )
    request = get_request("127.0.0.1", port, path, {"Authorization": f"Bearer {token}"})
    # The same SQL the endpoint runs, built by the same functions.
    query = SearchQuery(QUERY["q"], QUERY["kind"], QUERY["modality"])
    sql, args = page_sql(query)
    facets, facet_args = facets_sql(where(query)[0]), where(query)[1]

    async def direct() -> Any:
        async def op() -> None:
            async with pool.acquire() as connection, connection.transaction():
                await connection.execute(SET_TENANT, str(tenant_id))
                assert await connection.fetch(sql, *args)
                await connection.fetch(facets, *facet_args)

        return op

    async def api() -> Any:
        return HttpConnection("127.0.0.1", port, request)

    return (
        await run_load(f"direct asyncpg ({label})", CLIENTS, SECONDS, direct),
        await run_load(f"search API ({label})", CLIENTS, SECONDS, api),
    )


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
    await owner.execute("ANALYZE")
    token = (
        await _cli(
            env, "tokens", "create", "--tenant", SLUG, "--email", "engineer@larkspur.example"
        )
    ).strip()
    port = free_port()
    server = await start_server(env, port)
    pool = await asyncpg.create_pool(
        with_user(owner_url, APP_ROLE, None),
        min_size=CLIENTS,
        max_size=CLIENTS,
        reset=release_reset,
    )
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = $1", SLUG)
    try:
        results = list(await measure(port, token, pool, tenant_id, "10 tenants"))
        print("adding 990 tenants with installs...", flush=True)
        await add_tenants(owner, 10, 1000)
        await owner.execute("ANALYZE")
        results += list(await measure(port, token, pool, tenant_id, "1,000 tenants"))
    finally:
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
    direct10, api10, _, api1000 = results
    ratio = api10.rps / direct10.rps
    slowdown = api10.rps / api1000.rps
    ok_ratio, ok_scale = ratio >= 0.40, slowdown <= 1.2
    print(
        f"  API / direct at 10 tenants: {ratio:.0%} (target >= 40%: "
        f"{'met' if ok_ratio else 'NOT met'})"
    )
    print(
        f"  1,000 vs 10 tenants: {slowdown:.2f}x the time per request (target <= 1.2x: "
        f"{'met' if ok_scale else 'NOT met'})"
    )
    return ok_ratio and ok_scale


if __name__ == "__main__":
    report(asyncio.run(main()))
