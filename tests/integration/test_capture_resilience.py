"""Capture that loses nothing: the database unreachable mid-run (samples spooled to disk and
stored when it is back, none twice), a worker killed with SIGKILL (another takes its unit
once the lease expires and reads the gap from the server's history), the spool of a dead
worker stored by the next one, and a server that asks for a user name and password (the
password from the environment variable the description names)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from opencdmo.db.urls import APP_ROLE, DatabaseUrls
from opencdmo.equipment import capture, leases, samples, trust
from opencdmo.equipment import service as equipment
from opencdmo.equipment.opcua_client import CaptureClient, CollectingSink
from opencdmo.equipment.service import Registration
from opencdmo.equipment.simulator import Simulator, SimulatorConfig
from opencdmo.equipment.spool import Spool
from opencdmo.scope import TenantContext
from tests.conftest import World, _with_database, member_as
from tests.integration.test_capture import (
    FAST,
    NODES,
    UNITS,
    assert_stored_once,
    bioreactor,
    incubator_unit,
    stored,
)
from tests.integration.test_cli import cli_env
from tests.integration.test_opcua import eventually, free_port

__all__ = ["cli_env"]  # the fixture, imported for these tests


async def outage(owner: asyncpg.Connection, urls: DatabaseUrls, seconds: float) -> None:
    """The test database refuses connections and every connection the application holds to
    it is killed, for ``seconds``; then it takes connections again."""
    name = await owner.fetchval("SELECT current_database()")
    server = await asyncpg.connect(_with_database(urls.owner, "postgres"))
    try:
        await server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await server.execute(  # the application's connections (the owner's stay)
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND usename = $2",
            name,
            APP_ROLE,
        )
        await asyncio.sleep(seconds)
    finally:
        await server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await server.close()


def spooled(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.batch"))


async def test_samples_are_spooled_while_the_database_is_away_and_stored_once_after(
    own_tenant: TenantContext,
    world: World,
    synced: Any,
    owner: asyncpg.Connection,
    database: DatabaseUrls,
    tmp_path: Path,
) -> None:
    simulator = Simulator(SimulatorConfig(port=free_port(), rate=50, seed=11))
    await simulator.start()
    unit = await bioreactor(own_tenant, world, simulator.endpoint)
    units = await capture.units_to_capture(own_tenant.tenant_id)
    one = capture.Worker(
        own_tenant.tenant_id, units, backoff=FAST, interval=0.05, leases=False, spool=tmp_path
    )
    one.batcher.retry = 0.3
    task = asyncio.create_task(one.run())
    await eventually(lambda: one.batcher.stored > 50)
    await outage(owner, database, 2.0)  # the connections the worker holds are killed with it
    assert one.batcher.spooled > 0
    assert spooled(tmp_path)
    await eventually(lambda: one.batcher.replayed == one.batcher.spooled, seconds=20)
    await asyncio.sleep(0.5)
    await simulator.stop()
    one.stop()
    report = await asyncio.wait_for(task, 20)
    assert not report.failed
    assert one.batcher.outages >= 1
    got = await stored(owner, unit)
    assert_stored_once(simulator, got)  # before, during and after the outage: no gap, no twin
    assert report.stored == sum(len(p) for p in got.values())
    assert not spooled(tmp_path)  # the spool is empty again


async def test_a_dead_workers_spool_is_stored_by_the_next_one(
    own_tenant: TenantContext, world: World, synced: Any, owner: asyncpg.Connection, tmp_path: Path
) -> None:
    unit = await bioreactor(own_tenant, world, "opc.tcp://127.0.0.1:1/nothing")
    now = dt.datetime.now(dt.UTC)
    rows = [
        samples.Row(unit, "ph", 7.0 + i / 100, None, 0, now + dt.timedelta(seconds=i), None)
        for i in range(30)
    ]
    dead = Spool(tmp_path, "worker-dead")
    dead.open()
    dead.put(rows[:20])
    dead.put(rows[15:])  # overlapping: a batch spooled again after a crash
    assert dead._lock is not None
    dead._lock.close()  # the process died: its lock goes with it (its files stay)
    dead._lock = None
    alive = Spool(tmp_path, "worker-alive")
    alive.open()
    other = Spool(tmp_path, "worker-running")
    other.open()
    other.put(rows[:1])
    pending = alive.pending()
    assert {s.owner for s in pending} == {"worker-dead"}  # a running worker's are its own
    batcher = samples.Batcher(own_tenant.tenant_id, spool=alive)
    await batcher.flush()
    assert batcher.replayed == 35 and batcher.stored == 30
    assert [
        r["value"]
        for r in await owner.fetch(
            "SELECT value FROM equipment_samples WHERE equipment_id = $1 ORDER BY source_time", unit
        )
    ] == [r.value for r in rows]
    assert spooled(tmp_path) == ["worker-running.000000000001.batch"]
    assert "worker-dead.lock" not in os.listdir(tmp_path)
    alive.close()
    other.close()


async def test_a_full_spool_keeps_the_rest_in_memory(
    own_tenant: TenantContext, tmp_path: Path
) -> None:
    spool = Spool(tmp_path, "small", max_bytes=600)
    spool.open()
    now = dt.datetime.now(dt.UTC)
    rows = [samples.Row(uuid.uuid4(), "ph", 7.0, None, 0, now, None) for _ in range(6)]
    assert spool.put(rows[:2]) is not None
    assert spool.put(rows) is None  # no room: refused, nothing written
    assert len(spool.pending()) == 1
    spool.close()


async def test_a_killed_workers_unit_is_taken_over_without_a_gap(
    own_tenant: TenantContext,
    world: World,
    synced: Any,
    owner: asyncpg.Connection,
    cli_env: dict[str, str],
) -> None:
    simulator = Simulator(SimulatorConfig(port=free_port(), rate=20, seed=12))
    await simulator.start()
    unit = await bioreactor(own_tenant, world, simulator.endpoint)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opencdmo.cli",
        "equipment",
        "capture",
        "--tenant",
        own_tenant.slug,
        env=cli_env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )

    async def some_stored() -> bool:
        return bool(
            await owner.fetchval(
                "SELECT count(*) FROM equipment_samples WHERE equipment_id = $1", unit
            )
        )

    for _ in range(300):
        if await some_stored():
            break
        await asyncio.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)  # no clean stop: its lease stays until it expires
    await process.wait()
    before = await stored(owner, unit)
    taker = capture.Worker(
        own_tenant.tenant_id, backoff=FAST, interval=0.05, renew=0.3, name="worker-taker"
    )
    task = asyncio.create_task(taker.run())
    await eventually(lambda: taker.held == {unit}, seconds=20)
    await eventually(lambda: taker.clients[unit].stats.backfilled > 0, seconds=10)
    await asyncio.sleep(0.5)
    await simulator.stop()  # what it wrote last is still delivered
    taker.stop()
    await asyncio.wait_for(task, 15)
    got = await stored(owner, unit)
    assert_stored_once(simulator, got)  # from the dead worker's first sample on, no gap
    assert all(got[key][: len(points)] == points for key, points in before.items())


@pytest.mark.parametrize("password", ["right", None])
async def test_a_server_that_asks_for_a_user(
    own_tenant: TenantContext,
    world: World,
    synced: Any,
    owner: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    password: str | None,
) -> None:
    env = f"BR_{uuid.uuid4().hex[:8].upper()}_PASSWORD"
    if password is not None:
        monkeypatch.setenv(env, password)
    config = SimulatorConfig(
        port=free_port(), rate=20, seed=13, users=(("capture", "right"),), pki=tmp_path / "server"
    )
    async with Simulator(config) as simulator:
        assert simulator.server_certificate is not None
        admin = await member_as(own_tenant, world["admin"])
        await trust.add(admin, simulator.server_certificate, "simulator.der")
        boss = await member_as(own_tenant, world["supervisor"])
        opcua = {
            "endpoint": simulator.endpoint,
            "security": {"mode": "Sign", "policy": "Basic256Sha256"},
            "user": {"name": "capture", "password_env": env},
            "signals": {k: {"node": n, "unit": UNITS[k]} for k, n in NODES.items()},
        }
        registered = await equipment.register(
            boss,
            Registration(
                f"BR-{uuid.uuid4().hex[:6]}", "rocking-motion-bioreactor", "A1", opcua=opcua
            ),
        )
        units = await capture.units_to_capture(own_tenant.tenant_id)
        assert [(u.user, u.password_env) for u in units] == [("capture", env)]
        one = capture.Worker(
            own_tenant.tenant_id,
            units,
            backoff=FAST,
            interval=0.05,
            leases=False,
            pki=tmp_path / "pki",
        )
        task = asyncio.create_task(one.run(seconds=2.0))
        report = await asyncio.wait_for(task, 20)
    count = await owner.fetchval(
        "SELECT count(*) FROM equipment_samples WHERE equipment_id = $1", registered.id
    )
    if password is None:
        assert count == 0
        assert report.failed == {
            registered.code: f"{registered.code} signs in as capture: set its password in the "
            f"environment variable {env}"
        }
    else:
        assert count > 0 and not report.failed


async def test_a_wrong_password_is_refused_by_the_server() -> None:
    config = SimulatorConfig(port=free_port(), rate=20, users=(("capture", "right"),))
    async with Simulator(config) as simulator:
        sink = CollectingSink()
        client = CaptureClient(
            simulator.endpoint, {"ph": NODES["ph"]}, sink, backoff=FAST, user=("capture", "wrong")
        )
        task = asyncio.create_task(client.run())
        await eventually(lambda: len(client.stats.failures) >= 2)
        client.stop()
        await asyncio.wait_for(task, 10)
    assert not sink.samples
    assert "BadUserAccessDenied" in client.stats.failures[0]


async def test_a_worker_that_joins_gets_its_share(
    own_tenant: TenantContext, world: World, synced: Any, owner: asyncpg.Connection
) -> None:
    async with Simulator(SimulatorConfig(port=free_port(), rate=20, seed=14)) as simulator:
        units = {
            await bioreactor(own_tenant, world, simulator.endpoint),
            await incubator_unit(own_tenant, world, simulator.endpoint),
        }
        kw: dict[str, Any] = {"backoff": FAST, "interval": 0.05, "renew": 0.2, "ttl": 1.0}
        a = capture.Worker(own_tenant.tenant_id, name="worker-first", **kw)
        first = asyncio.create_task(a.run())
        await eventually(lambda: a.held == units)  # alone: it takes every unit
        b = capture.Worker(own_tenant.tenant_id, name="worker-joining", **kw)
        second = asyncio.create_task(b.run())
        await eventually(lambda: len(a.held) == len(b.held) == 1, seconds=20)
        assert a.held | b.held == units
        handed = next(iter(b.held))
        await eventually(lambda: b.clients[handed].stats.received > 5)
        a.stop()
        b.stop()
        reports = await asyncio.gather(first, second)
    assert not any(r.failed for r in reports)
    assert await leases.holders(own_tenant.tenant_id) == {}
