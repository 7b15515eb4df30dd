"""An authenticated tenant API list endpoint against the same query through asyncpg directly.

GET /api/v1/t/<tenant>/members with a bearer token (authentication, tenant resolution, RBAC,
the query under row-level security, JSON) versus the same SQL, in the same tenant-scoped
transaction, run by asyncpg from this process. Target: at 50 clients the endpoint reaches at
least 40 % of the direct throughput.

Both sides make four database round trips per request (the endpoint: the token lookup, BEGIN
with the tenant setting, the query, COMMIT; the baseline: BEGIN, the setting, the query,
COMMIT). What remains is HTTP and framework work in one Python server process, which sits at
about 90 % of a core while PostgreSQL is lightly loaded: on a 2-core machine that also runs the
load generator, runs have given 33-38 % at 50 clients. ``BENCH_WORKERS=2`` runs two server
processes; ``BENCH_SECONDS`` lengthens each run.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import asyncpg

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
from opencdmo.db.tx import SET_TENANT
from opencdmo.db.urls import APP_ROLE, with_user
from opencdmo.tenancy.service import MEMBERS_QUERY

SLUG = "larkspur-cdmo"
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
TARGET = 0.40


async def _cli(env: dict[str, str], *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opencdmo.cli",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(out.decode())
    return out.decode()


async def main() -> list[Result]:
    owner, data_dir = await fresh_database("bench_api")
    env = server_env(owner, data_dir)
    env.update(
        {
            "OPENCDMO_ARGON2_TIME_COST": "1",
            "OPENCDMO_ARGON2_MEMORY_KIB": "1024",
            "OPENCDMO_WORKERS": os.environ.get("BENCH_WORKERS", "1"),
        }
    )
    await _cli(env, "demo", str(ROOT / "tenants"))
    token = (
        await _cli(env, "tokens", "create", "--tenant", SLUG, "--email", "admin@larkspur.example")
    ).strip()
    port = free_port()
    server = await start_server(env, port)
    app_url = with_user(owner, APP_ROLE, None)
    # The baseline pool skips the per-release reset query too, as the app's pool does.
    pool = await asyncpg.create_pool(app_url, min_size=20, max_size=50, reset=release_reset)
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = $1", SLUG)
    request = get_request(
        "127.0.0.1", port, f"/api/v1/t/{SLUG}/members", {"Authorization": f"Bearer {token}"}
    )

    async def direct_worker() -> Any:
        async def op() -> None:
            async with pool.acquire() as connection, connection.transaction():
                await connection.execute(SET_TENANT, str(tenant_id))
                rows = await connection.fetch(MEMBERS_QUERY, None)
                assert rows

        return op

    async def api_worker() -> Any:
        return HttpConnection("127.0.0.1", port, request)

    results = []
    try:
        for clients in (10, 50):
            results.append(
                await run_load("direct asyncpg (same SQL, RLS tx)", clients, SECONDS, direct_worker)
            )
            results.append(
                await run_load("GET members API (bearer token)", clients, SECONDS, api_worker)
            )
    finally:
        await pool.close()
        server.terminate()
        await server.wait()
        await drop_database(owner)
    return results


def report(results: list[Result]) -> bool:
    print(__doc__.strip().splitlines()[0])
    ok = True
    for direct, api in zip(results[::2], results[1::2], strict=True):
        print(direct.line())
        print(api.line())
        ratio = api.rps / direct.rps
        verdict = ""
        if api.clients == 50:
            ok = ratio >= TARGET
            verdict = f"  (target >= {TARGET:.0%}: {'met' if ok else 'NOT met'})"
        print(f"  ratio at {api.clients} clients: {ratio:.0%}{verdict}")
    return ok


if __name__ == "__main__":
    report(asyncio.run(main()))
