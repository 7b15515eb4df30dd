"""The capture worker against the simulator on a free port, storing into the real database:
every change stored once, a replay (two workers over overlapping windows) storing nothing
twice, the samples API (in order, downsampled, validated, another tenant's unit a 404), row
level security on the samples, and the table's partitions and append-only rule."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from opencdmo.cli import main
from opencdmo.equipment import capture, leases, samples
from opencdmo.equipment import service as equipment
from opencdmo.equipment.opcua_client import Backoff, Sample
from opencdmo.equipment.service import Registration
from opencdmo.equipment.simulator import Simulator, SimulatorConfig
from opencdmo.scope import TenantContext
from tests.conftest import World, member_as
from tests.integration.test_cli import cli_env, run
from tests.integration.test_opcua import eventually, free_port

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


def worker(ctx: TenantContext, units: list[capture.Unit], **kw: Any) -> capture.Worker:
    return capture.Worker(ctx.tenant_id, units, backoff=FAST, interval=0.05, **kw)


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
    # without leases: both capture the unit at once (as during a lease handed over)
    first = worker(own_tenant, units, leases=False)
    second = worker(own_tenant, units, leases=False)
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
    assert "capturing the equipment of" in out and "new samples" in out
    assert sum(len(p) for p in (await stored(owner, unit)).values()) > 0
    code, _, err = await run(cli_env, "equipment", "capture", "--tenant", "no-such-tenant")
    assert (code, "No tenant has the slug" in err) == (2, True)


def test_capture_seconds_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["equipment", "capture", "--tenant", "x", "--once", "0"]) == 2
    assert "--once must be above 0" in capsys.readouterr().err


# --- the samples API --------------------------------------------------------------------------

T0 = dt.datetime(2026, 11, 30, 23, 50, tzinfo=dt.UTC)  # the series spans two partitions


async def known_series(ctx: TenantContext, world: World, n: int = 1000) -> tuple[str, UUID]:
    """A unit with ``n`` samples of ph a second apart from T0 (written through the sink's
    store), the 500th with a Bad status."""
    unit = await bioreactor(ctx, world, "opc.tcp://127.0.0.1:4840/opencdmo/sim")
    rows = [
        samples.Row(
            unit,
            "ph",
            7.0 + (i % 37) / 100,
            None,
            0x80000000 if i == 500 else 0,
            T0 + dt.timedelta(seconds=i),
            T0 + dt.timedelta(seconds=i, milliseconds=1),
        )
        for i in range(n)
    ]
    assert await samples.store(ctx.tenant_id, rows) == n
    code = await ctx_code(ctx, unit)
    return code, unit


async def ctx_code(ctx: TenantContext, unit: UUID) -> str:
    return (await equipment.get_unit(ctx, str(unit))).unit.code


def iso(at: dt.datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def test_the_samples_api_in_order_and_downsampled(
    own_tenant: TenantContext, world: World, synced: Any, browser: Any
) -> None:
    code, _ = await known_series(own_tenant, world)
    viewer = await browser("viewer")
    url = f"/api/v1/t/{own_tenant.slug}/equipment/{code}/samples"
    start, end = T0 + dt.timedelta(seconds=100), T0 + dt.timedelta(seconds=899)
    answer = await viewer.get(url, params={"signal": "ph", "start": iso(start), "end": iso(end)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["equipment"], body["signal"], body["downsampled"]) == (code, "ph", False)
    times = [dt.datetime.fromisoformat(s["source_time"]) for s in body["samples"]]
    assert times == [start + dt.timedelta(seconds=i) for i in range(800)]  # ends included
    assert body["samples"][400]["status_code"] == 0x80000000
    assert body["samples"][0]["value"] == pytest.approx(7.0 + (100 % 37) / 100)
    assert body["samples"][0]["server_time"] is not None

    params = {"signal": "ph", "start": iso(start), "end": iso(end), "max_points": "50"}
    both = await asyncio.gather(viewer.get(url, params=params), viewer.get(url, params=params))
    assert [a.status_code for a in both] == [200, 200]
    assert both[0].json() == both[1].json()
    small = both[0].json()
    assert small["downsampled"] is True and len(small["samples"]) == 50
    picked = [dt.datetime.fromisoformat(s["source_time"]) for s in small["samples"]]
    assert picked[0] == start and picked[-1] == end and picked == sorted(picked)
    assert all(start <= t <= end for t in picked)
    everything = [
        samples.Point(t, None, s["value"], None, s["status_code"])
        for t, s in zip(times, body["samples"], strict=True)
    ]
    assert picked == [p.source_time for p in samples.lttb(everything, 50)]
    # An offset other than UTC means the same instants.
    berlin = dt.timezone(dt.timedelta(hours=1))
    shifted = await viewer.get(
        url,
        params={"signal": "ph", "start": start.astimezone(berlin).isoformat(), "end": iso(end)},
    )
    assert len(shifted.json()["samples"]) == 800


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"start": "2026-11-30T23:00:00"}, "with its offset"),
        ({"start": "yesterday"}, "ISO 8601"),
        ({"start": ""}, "start is required"),
        ({"start": "0001-01-01T00:00:00+05:00"}, "ISO 8601"),
        ({"end": "2026-11-30T22:00:00Z"}, "end must not be before start"),
        ({"end": "2027-02-01T00:00:00Z"}, "at most 31 days"),
        ({"max_points": "2"}, "max_points is from 3"),
        ({"max_points": "20000"}, "max_points is from 3"),
        ({"signal": "co2_concentration"}, "not a signal of"),
    ],
)
async def test_samples_api_refusals(
    own_tenant: TenantContext,
    world: World,
    synced: Any,
    browser: Any,
    params: dict[str, str],
    says: str,
) -> None:
    unit = await bioreactor(own_tenant, world, "opc.tcp://127.0.0.1:4840/opencdmo/sim")
    code = await ctx_code(own_tenant, unit)
    viewer = await browser("viewer")
    given = {"signal": "ph", "start": iso(T0), "end": iso(T0 + dt.timedelta(hours=1)), **params}
    answer = await viewer.get(f"/api/v1/t/{own_tenant.slug}/equipment/{code}/samples", params=given)
    assert answer.status_code == 422, answer.text
    assert says in answer.json()["error"]["message"]


async def test_samples_of_another_tenant_or_without_the_right(
    own_tenant: TenantContext, world: World, synced: Any, browser: Any
) -> None:
    code, unit = await known_series(own_tenant, world, 10)
    params = {"signal": "ph", "start": iso(T0), "end": iso(T0 + dt.timedelta(hours=1))}
    viewer = await browser("viewer")
    # alpha has no such unit: the other tenant's code or id is a 404 like a missing one
    answers = [
        await viewer.get(f"/api/v1/t/alpha/equipment/{key}/samples", params=params)
        for key in (code, unit, "NO-SUCH", uuid.uuid4())
    ]
    assert [a.status_code for a in answers] == [404] * 4
    assert len({a.json()["error"]["message"] for a in answers}) == 1
    bare = await browser("bare")
    refused = await bare.get(f"/api/v1/t/{own_tenant.slug}/equipment/{code}/samples", params=params)
    assert refused.status_code == 403, refused.text
    lacking = await viewer.get(f"/api/v1/t/{own_tenant.slug}/equipment/{code}/samples")
    assert lacking.status_code == 422, lacking.text
    assert lacking.json()["error"]["message"] == "signal is required"


# --- the table --------------------------------------------------------------------------------


async def test_row_level_security_and_append_only(
    own_tenant: TenantContext,
    world: World,
    synced: Any,
    app_role: asyncpg.Connection,
    owner: asyncpg.Connection,
) -> None:
    _, unit = await known_series(own_tenant, world, 20)
    count = "SELECT count(*) FROM equipment_samples WHERE equipment_id = $1"
    for tenant, expected in ((world.beta.tenant_id, 0), (own_tenant.tenant_id, 20)):
        async with app_role.transaction():
            await app_role.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant))
            assert await app_role.fetchval(count, unit) == expected
    async with app_role.transaction():
        await app_role.execute(
            "SELECT set_config('app.tenant_id', $1, true)", str(world.beta.tenant_id)
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app_role.execute(
                "INSERT INTO equipment_samples (tenant_id, equipment_id, signal, source_time) "
                "VALUES ($1, $2, 'ph', now())",
                own_tenant.tenant_id,
                unit,
            )
    for change in ("UPDATE equipment_samples SET value = 0", "DELETE FROM equipment_samples"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await owner.execute(f"{change} WHERE equipment_id = $1", unit)
    for table in ("equipment_samples", "equipment_samples_default"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await owner.execute(f"TRUNCATE {table}")
    assert await owner.fetchval(count, unit) == 20


async def test_partitions_are_made_ahead_and_the_default_takes_the_rest(
    own_tenant: TenantContext, world: World, synced: Any, owner: asyncpg.Connection
) -> None:
    _, unit = await known_series(own_tenant, world, 3)
    far = samples.Row(unit, "ph", 7.0, None, 0, dt.datetime(2031, 5, 5, tzinfo=dt.UTC), None)
    assert await samples.store(own_tenant.tenant_id, [far]) == 1
    month = dt.datetime.now(dt.UTC).strftime("%Y%m")
    parts = {
        r["relname"]: r["bound"]
        for r in await owner.fetch(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'equipment_samples'::regclass"
        )
    }
    assert f"equipment_samples_p{month}" in parts and "equipment_samples_default" in parts
    assert await samples.make_partitions(own_tenant.tenant_id) == 0  # made already
    where = await owner.fetchval(
        "SELECT tableoid::regclass::text FROM equipment_samples "
        "WHERE equipment_id = $1 AND source_time = $2",
        unit,
        far.source_time,
    )
    assert where == "equipment_samples_default"


# --- leases -----------------------------------------------------------------------------------


async def incubator_unit(ctx: TenantContext, world: World, endpoint: str) -> UUID:
    boss = await member_as(ctx, world["supervisor"])
    opcua = {
        "endpoint": endpoint,
        "signals": {
            "chamber_temperature": {"node": "ns=2;s=INC01.Temperature", "unit": "Cel"},
            "co2_concentration": {"node": "ns=2;s=INC01.CO2", "unit": "%"},
        },
    }
    code = f"INC-{uuid.uuid4().hex[:6]}"
    unit = await equipment.register(boss, Registration(code, "co2-incubator", "A1", opcua=opcua))
    return unit.id


async def latest(owner: asyncpg.Connection, unit: UUID) -> dt.datetime | None:
    found: dt.datetime | None = await owner.fetchval(
        "SELECT max(source_time) FROM equipment_samples WHERE equipment_id = $1", unit
    )
    return found


async def test_leases_share_the_units_and_a_dead_workers_are_taken_over(
    own_tenant: TenantContext, world: World, synced: Any, owner: asyncpg.Connection
) -> None:
    async with Simulator(SimulatorConfig(port=free_port(), rate=20, seed=6)) as simulator:
        units = {
            await bioreactor(own_tenant, world, simulator.endpoint),
            await incubator_unit(own_tenant, world, simulator.endpoint),
        }
        kw: dict[str, Any] = {"backoff": FAST, "interval": 0.05, "renew": 0.2, "ttl": 1.0}
        a = capture.Worker(own_tenant.tenant_id, name="worker-a", **kw)
        b = capture.Worker(own_tenant.tenant_id, name="worker-b", **kw)
        tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
        await eventually(lambda: len(a.held | b.held) == 2)
        assert not a.held & b.held  # each unit captured by one worker
        await eventually(lambda: len(a.held) == len(b.held) == 1)  # shared fairly
        holders = await leases.holders(own_tenant.tenant_id)
        assert holders == dict.fromkeys(a.held, "worker-a") | dict.fromkeys(b.held, "worker-b")
        # Worker a dies: its unit goes to b once its lease (and its presence) expire.
        dead, alive, dying = a, b, tasks[0]
        orphans = dead.held
        dying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(dying, 10)
        await eventually(lambda: alive.held == units, seconds=20)
        taken = {u: await latest(owner, u) for u in orphans}
        await asyncio.sleep(0.5)
        for unit in orphans:  # captured again, by the other worker
            now = await latest(owner, unit)
            assert now is not None and (taken[unit] is None or now > taken[unit])
        assert set((await leases.holders(own_tenant.tenant_id)).values()) == {alive.name}
        alive.stop()
        report = await asyncio.wait_for(tasks[1] if alive is b else tasks[0], 15)
        assert not report.failed
    assert await leases.holders(own_tenant.tenant_id) == {}  # a clean stop releases them
