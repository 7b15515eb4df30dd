"""The same code against an external PostgreSQL (the machine's server on 127.0.0.1:5432, 15+):
migrate, provision the demo tenants, verify the audit trail, and check RLS as the app role."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from opencdmo.tenancy.manifest import discover
from tests.conftest import DATA_DIR, _recreate, _with_database

SERVER = os.environ.get(
    "OPENCDMO_TEST_EXTERNAL_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def external() -> AsyncIterator[str]:
    """A database of this test's own on the external server (each test runs the demo anew)."""
    try:
        connection = await asyncpg.connect(SERVER, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no external PostgreSQL at {SERVER}: {exc}")
    version = await connection.fetchval("SHOW server_version_num")
    await connection.close()
    assert int(version) >= 150000, "PostgreSQL 15 or newer is supported"
    name = f"opencdmo_ext_{uuid.uuid4().hex[:8]}"
    await _recreate(SERVER, name)
    yield _with_database(SERVER, name)
    await _recreate(SERVER, name, drop_only=True)


def checkpoint_dir(url: str) -> str:
    """Audit checkpoints of this database only (the data dir is shared by concurrent runs)."""
    return str(DATA_DIR / "audit-checkpoints" / urlsplit(url).path.strip("/"))


async def _cli(url: str, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCDMO_")}
    env.update(
        {
            "OPENCDMO_DATABASE_URL": url,
            "OPENCDMO_DATA_DIR": str(DATA_DIR),
            "OPENCDMO_AUDIT_CHECKPOINT_DIR": checkpoint_dir(url),
            "OPENCDMO_ARGON2_TIME_COST": "1",
            "OPENCDMO_ARGON2_MEMORY_KIB": "1024",
        }
    )
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
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_demo_on_an_external_server(external: str) -> None:
    code, out = await _cli(external, "demo", "tenants")
    assert code == 0, out
    assert "Demo logins" in out
    assert "larkspur-cdmo: example master recipe drafted" in out
    assert "quillon-tx: example master recipe drafted" in out
    assert "quillon-tx: example master recipe effective, ready for tech transfer" in out
    assert "materials received and released for the demo batches" in out, out
    assert "larkspur-cdmo: user admin@larkspur.example created\n" in out
    assert "larkspur-cdmo and quillon-tx: partner relationship active" in out
    assert "no password" not in out, "every demo user gets the demo password"
    people = {p.email for m in discover(ROOT / "tenants") for p in m.people}
    assert f"demo password given to {len(people)} people who had none" in out
    code, out = await _cli(external, "demo", "tenants")
    assert code == 0, out
    assert "tenant created" not in out, "applying twice changes nothing"
    assert "demo password given" not in out, "passwords are given once"
    assert "example master recipe" not in out, "the example recipes are drafted once"
    assert "batch" not in out.split("Demo logins")[0], "the demo batches are made once"
    code, out = await _cli(external, "audit", "verify")
    assert code == 0, out
    assert "audit trail intact" in out
    app_url = external.replace("postgres@", "opencdmo_app@", 1)
    connection = await asyncpg.connect(app_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM memberships") == 0
        tenant = await connection.fetchval("SELECT id FROM tenants WHERE slug = 'larkspur-cdmo'")
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant))
            tenants = await connection.fetch("SELECT DISTINCT tenant_id FROM memberships")
            recipes = await connection.fetch("SELECT name, status FROM master_recipes")
            # The demo batches used real lots: each step of the complete one its bill of
            # materials, the patient's own apheresis bag included.
            used = await connection.fetch(
                "SELECT b.status, count(*) AS n, count(*) FILTER (WHERE l.coi_label = b.coi_label)"
                " AS own FROM batch_consumptions c JOIN batches b ON b.id = c.batch_id"
                " JOIN lots l ON l.id = c.lot_id GROUP BY b.id, b.status ORDER BY b.status"
            )
            made = await connection.fetch(
                "SELECT l.status, l.coi_label FROM lots l WHERE l.origin_batch_id IS NOT NULL"
            )
            products = [(r["status"], r["coi_label"]) for r in made]
            batches = await connection.fetch(
                "SELECT b.status, b.disposition,"
                " count(x.id) FILTER (WHERE x.disposition IS NULL) AS open,"
                " string_agg(x.message, ' | ') AS kinds"
                " FROM batches b LEFT JOIN batch_exceptions x ON x.batch_id = b.id"
                " GROUP BY b.tenant_id, b.id ORDER BY b.planned_start"
            )
            # The demo's units ready for a batch step: available and clean (a signed entry).
            units = await connection.fetch(
                "SELECT code, status, clean_until > clock_timestamp() AS clean FROM equipment"
            )
            # The batch in progress holds a captured unit, so its run page shows live trends.
            held = await connection.fetch(
                "SELECT e.code, e.opcua IS NOT NULL AS captured, b.status FROM batch_equipment x"
                " JOIN equipment e ON e.id = x.equipment_id JOIN batches b ON b.id = x.batch_id"
                " WHERE x.released_at IS NULL"
            )
        assert [r["tenant_id"] for r in tenants] == [tenant]
        assert [(h["captured"], h["status"]) for h in held] == [(True, "running")], held
        in_use = {h["code"] for h in held}
        assert all(u["status"] == "in_use" for u in units if u["code"] in in_use)
        assert all(
            u["status"] == "available" and u["clean"] for u in units if u["code"] not in in_use
        ), units
        assert [r["status"] for r in recipes] == ["effective"], "the example recipe, in force"
        # One complete, awaiting QA's review and release (the recipe's own values outside
        # their normal range are exceptions to disposition); one in progress with one value
        # outside its normal range.
        assert [(b["status"], b["disposition"]) for b in batches] == [
            ("complete", None),
            ("running", None),
        ]
        assert batches[1]["open"] == 1, batches[1]["kinds"]
        complete = next(u for u in used if u["status"] == "complete")
        assert complete["n"] >= 30 and complete["own"] == 1, used
        assert products == [("quarantine", "COI-24017-01")], products
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute("DELETE FROM audit_events")
        # The sponsor sees the two batches made for it, through its one shared projection.
        sponsor = await connection.fetchval("SELECT id FROM tenants WHERE slug = 'quillon-tx'")
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(sponsor))
            shared = await connection.fetch("SELECT status, decision FROM sponsor_batches()")
            assert await connection.fetchval("SELECT count(*) FROM batches") == 0
        assert sorted((r["status"], r["decision"]) for r in shared) == [
            ("complete", "pending"),
            ("running", "pending"),
        ]
    finally:
        await connection.close()


async def test_serve_with_worker_processes(external: str) -> None:
    import httpx

    code, out = await _cli(external, "serve", "--workers", "0")
    assert code == 2 and "at least 1" in out
    code, out = await _cli(external, "demo", "tenants")
    assert code == 0, out
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCDMO_")}
    env.update(
        {
            "OPENCDMO_DATABASE_URL": external,
            "OPENCDMO_DATA_DIR": str(DATA_DIR),
            "OPENCDMO_AUDIT_CHECKPOINT_DIR": checkpoint_dir(external),
            "OPENCDMO_METRICS_TOKEN": "metrics-token-of-the-operator",
        }
    )
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opencdmo.cli",
        "serve",
        "--workers",
        "2",
        "--port",
        str(port),
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                try:
                    ready = await client.get(f"http://127.0.0.1:{port}/readyz")
                    if ready.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("two worker processes did not start")
        workers = await asyncio.create_subprocess_exec(
            "pgrep", "-P", str(server.pid), stdout=asyncio.subprocess.PIPE
        )
        children, _ = await workers.communicate()
        assert len(children.split()) >= 2, "uvicorn runs one process per worker"
        await _metrics_of_all_workers(port, DATA_DIR / "run" / f"metrics-{server.pid}")
    finally:
        server.terminate()
        out, _ = await server.communicate()
    assert server.returncode == 0, "a stop by SIGTERM is a clean exit"
    assert f"Serving http://127.0.0.1:{port} (Ctrl+C to stop)" in out.decode().splitlines()


async def _metrics_of_all_workers(port: int, directory: Path) -> None:
    """Requests on fresh connections land on either worker; every scrape, whichever worker
    answers it, shows the total of both (prometheus_client's multiprocess directory)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    for _ in range(20):
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    totals = []
    for _ in range(4):
        async with httpx.AsyncClient() as client:
            scrape = await client.get(
                f"http://127.0.0.1:{port}/metrics",
                headers={"Authorization": "Bearer metrics-token-of-the-operator"},
            )
        assert scrape.status_code == 200
        totals.append(
            sum(
                s.value
                for f in text_string_to_metric_families(scrape.text)
                for s in f.samples
                if s.name == "opencdmo_http_requests_total" and s.labels.get("route") == "/healthz"
            )
        )
    assert totals == [20.0] * 4
    files = await asyncio.to_thread(lambda: list(directory.glob("counter_*.db")))
    writers = {p.name.rsplit("_", 1)[1] for p in files}
    assert len(writers) >= 2, "both workers counted requests into the shared directory"
