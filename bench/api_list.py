"""An authenticated tenant API list endpoint against the same query through asyncpg directly.

GET /api/v1/t/<tenant>/members with a bearer token (authentication, tenant resolution, RBAC,
the query under row-level security, JSON) versus the same SQL, in the same tenant-scoped
transaction, run by asyncpg from this process. Target: at 50 clients the endpoint reaches at
least 40 % of the direct throughput.

Both sides make the same three database round trips per request: BEGIN with the tenant
setting in one simple query, the query, COMMIT. The endpoint's token lookup is cached
(``OPENCDMO_AUTH_CACHE_SECONDS``; the database notifies every process of any change to
tokens, users, memberships, roles, tenants or sites, which drops it at once). What remains
is HTTP and framework work in the server, which runs as deployed, one worker process per
core (``OPENCDMO_WORKERS``), on a machine whose cores it shares with PostgreSQL and the load
generator. On a 2-core machine: 39-43 % at 50 clients; one worker process gives about
37 %, and a token lookup on every request about 33 %. ``BENCH_WORKERS`` sets the worker
count, ``BENCH_AUTH_CACHE=0`` turns the cache off, ``BENCH_SECONDS`` lengthens each run.
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
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode:
        raise RuntimeError(out.decode() + err.decode())
    return out.decode()


async def main() -> list[Result]:
    owner, data_dir = await fresh_database("bench_api")
    env = server_env(owner, data_dir)
    env.update(
        {
            "OPENCDMO_ARGON2_TIME_COST": "1",
            "OPENCDMO_ARGON2_MEMORY_KIB": "1024",
            # As deployed: one server process per core.
            "OPENCDMO_WORKERS": os.environ.get("BENCH_WORKERS", str(os.cpu_count() or 1)),
            "OPENCDMO_AUTH_CACHE_SECONDS": os.environ.get("BENCH_AUTH_CACHE", "10"),
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
    begin = f"BEGIN; SELECT set_config('app.tenant_id', '{tenant_id}', true)"
    request = get_request(
        "127.0.0.1", port, f"/api/v1/t/{SLUG}/members", {"Authorization": f"Bearer {token}"}
    )

    async def direct_worker() -> Any:
        async def op() -> None:
            # The app's own three round trips: BEGIN with the tenant setting, the query, COMMIT.
            async with pool.acquire() as connection:
                await connection.execute(begin)
                rows = await connection.fetch(MEMBERS_QUERY, None)
                await connection.execute("COMMIT")
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
