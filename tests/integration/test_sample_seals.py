"""Seals of stored samples in the tenant's audit trail, made by the ``equipment.seal`` and
``equipment.reseal`` jobs: each period sealed once with its event, late samples (their store
enqueues a reseal job in its own transaction) sealed again with a reason, and ``audit
verify`` finding a sample changed, removed or added behind the back, or a seal without its
event; two sealing runs at once seal a period once; the periodic job seals every tenant in
its own trail; and a job worker seals what a capture worker stores."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from dataclasses import replace
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from opencdmo.audit.verify import verify_tenant
from opencdmo.db.jobs import Job
from opencdmo.db.tx import tenant_id_transaction
from opencdmo.equipment import capture, samples, seals
from opencdmo.equipment.simulator import Simulator, SimulatorConfig
from opencdmo.jobs import registry, tasks
from opencdmo.jobs.worker import Worker, periodic_jobs
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext
from opencdmo.settings import Settings, SettingsError
from opencdmo.tenancy import service as tenancy
from tests.conftest import PERSONAS, World
from tests.integration.job_worker import seal_worker
from tests.integration.test_capture import FAST, bioreactor
from tests.integration.test_opcua import free_port

__all__ = ["seal_worker"]  # the fixture, imported for these tests

MINUTE = dt.timedelta(minutes=1)
SECOND = dt.timedelta(seconds=1)


def rows_at(unit: UUID, start: dt.datetime, count: int, signal: str = "ph") -> list[samples.Row]:
    return [
        samples.Row(
            unit, signal, 7.0 + i / 1000, None, 0, start + dt.timedelta(seconds=i * 5), start
        )
        for i in range(count)
    ]


def sealing(settings: Settings, period: int = 60, grace: int = 5) -> Settings:
    """The jobs' settings with minute periods sealed five seconds after they end."""
    configured = replace(settings, seal_period_seconds=period, seal_grace_seconds=grace)
    registry.configure(configured)
    return configured


def job(kind: str, tenant_id: UUID | None, args: dict[str, Any] | None = None) -> Job:
    return Job(uuid.uuid4(), kind, tenant_id, None, args or {}, 1, 5)


async def seal(tenant_id: UUID | None) -> None:
    """One run of the sealing job (for one tenant, or every tenant as the periodic one)."""
    await tasks.equipment_seal(job(tasks.EQUIPMENT_SEAL, tenant_id))


async def reseal_jobs(owner: asyncpg.Connection, tenant_id: UUID) -> list[asyncpg.Record]:
    return await owner.fetch(
        "SELECT * FROM background_jobs WHERE for_tenant = $1 AND kind = $2 ORDER BY created_at",
        tenant_id,
        tasks.EQUIPMENT_RESEAL,
    )


async def work_reseals(settings: Settings) -> None:
    """A fresh job worker (nothing of the store's process) runs the queued reseal jobs."""
    worker = Worker(
        replace(sealing(settings), job_poll_seconds=1, job_retry_seconds=1),
        handlers={tasks.EQUIPMENT_RESEAL: tasks.equipment_reseal},
        periodic=[],
    )
    await asyncio.wait_for(worker.run(until_idle=True), 30)


@pytest.fixture
async def sealed_unit(
    own_tenant: TenantContext,
    world: World,
    synced: Any,
    settings: Settings,
    owner: asyncpg.Connection,
) -> dict[str, Any]:
    """A unit with samples in three periods an hour ago (with an empty period between the
    second and third), sealed by the job."""
    sealing(settings)
    unit = await bioreactor(own_tenant, world, "opc.tcp://127.0.0.1:1/none")
    base = seals.floor(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), MINUTE)
    stored = (
        rows_at(unit, base, 10)
        + rows_at(unit, base, 4, "culture_temperature")
        + rows_at(unit, base + MINUTE, 12)
        + rows_at(unit, base + 3 * MINUTE, 6)
    )
    assert await samples.store(own_tenant.tenant_id, stored) == 32
    await seal(own_tenant.tenant_id)
    assert len(await _seals(owner, unit)) == 3
    await seal(own_tenant.tenant_id)  # nothing more is due
    assert len(await _seals(owner, unit)) == 3
    assert await reseal_jobs(owner, own_tenant.tenant_id) == []
    code = await owner.fetchval("SELECT code FROM equipment WHERE id = $1", unit)
    return {"unit": unit, "base": base, "code": code}


async def _seals(owner: asyncpg.Connection, unit: UUID) -> list[asyncpg.Record]:
    return await owner.fetch(
        "SELECT * FROM sample_seals WHERE equipment_id = $1 ORDER BY period_start, version", unit
    )


async def test_each_period_is_sealed_once_with_its_event(
    own_tenant: TenantContext, sealed_unit: dict[str, Any], owner: asyncpg.Connection
) -> None:
    unit, base = sealed_unit["unit"], sealed_unit["base"]
    found = await _seals(owner, unit)
    assert [(s["period_start"] - base, s["samples"], s["version"]) for s in found] == [
        (dt.timedelta(0), 14, 1),
        (MINUTE, 12, 1),
        (3 * MINUTE, 6, 1),
    ]
    assert set(json.loads(found[0]["signals"])) == {"ph", "culture_temperature"}
    events = await owner.fetch(
        "SELECT action, entity_id, new_values FROM audit_events WHERE tenant_id = $1 "
        "AND entity_type = 'sample_seal' ORDER BY entry",
        own_tenant.tenant_id,
    )
    assert [(e["action"], e["entity_id"]) for e in events] == [
        ("equipment.samples_sealed", str(s["id"])) for s in found
    ]
    assert [json.loads(e["new_values"])["digest"] for e in events] == [s["digest"] for s in found]
    report = await verify_tenant(own_tenant.tenant_id, own_tenant.slug)
    assert report.intact, report.problem


async def test_late_samples_seal_the_period_again_with_a_reason(
    own_tenant: TenantContext,
    sealed_unit: dict[str, Any],
    owner: asyncpg.Connection,
    settings: Settings,
) -> None:
    unit, base = sealed_unit["unit"], sealed_unit["base"]
    late = [samples.Row(unit, "ph", 6.9, None, 0, base + MINUTE + dt.timedelta(seconds=59), None)]
    batcher = samples.Batcher(own_tenant.tenant_id)
    await batcher.add(late)
    await batcher.flush()
    await batcher.add(late)  # the same again (a replay): nothing new to seal
    await batcher.flush()
    [queued] = await reseal_jobs(owner, own_tenant.tenant_id)
    assert queued["state"] == "queued" and queued["actor_id"] is None
    assert json.loads(queued["args"]) == {
        "equipment_id": str(unit),
        "code": sealed_unit["code"],
        "periods": [(base + MINUTE).isoformat()],
    }
    await work_reseals(settings)
    assert (await reseal_jobs(owner, own_tenant.tenant_id))[0]["state"] == "done"
    found = await _seals(owner, unit)
    assert [(s["period_start"] - base, s["samples"], s["version"]) for s in found] == [
        (dt.timedelta(0), 14, 1),
        (MINUTE, 12, 1),
        (MINUTE, 13, 2),
        (3 * MINUTE, 6, 1),
    ]
    event = await owner.fetchrow(
        "SELECT actor_id, request_id, old_values, new_values, reason FROM audit_events "
        "WHERE tenant_id = $1 AND action = 'equipment.samples_resealed'",
        own_tenant.tenant_id,
    )
    assert event["actor_id"] is None and event["request_id"] == f"job:{queued['id']}"
    assert json.loads(event["old_values"])["version"] == 1
    assert json.loads(event["new_values"])["samples"] == 13
    assert "stored after the period was sealed" in event["reason"]
    # the job run again (its worker killed before it was marked done): nothing more
    await tasks.equipment_reseal(
        job(tasks.EQUIPMENT_RESEAL, own_tenant.tenant_id, dict(json.loads(queued["args"])))
    )
    assert len(await _seals(owner, unit)) == 4
    report = await verify_tenant(own_tenant.tenant_id, own_tenant.slug)
    assert report.intact, report.problem


async def test_a_store_enqueues_one_reseal_job_only_with_late_rows(
    own_tenant: TenantContext, sealed_unit: dict[str, Any], owner: asyncpg.Connection
) -> None:
    unit, base, tenant = sealed_unit["unit"], sealed_unit["base"], own_tenant.tenant_id
    after = rows_at(unit, base + 10 * MINUTE, 3)  # after the newest seal: not late
    assert await samples.store(tenant, after) == 3
    assert await samples.store(tenant, rows_at(unit, base, 2)) == 0  # stored already
    assert await reseal_jobs(owner, tenant) == []
    late = [  # into both sealed periods with samples, with rows after the seals
        samples.Row(unit, "ph", 6.8, None, 0, base + dt.timedelta(seconds=31), None),
        samples.Row(unit, "ph", 6.9, None, 0, base + dt.timedelta(seconds=33), None),
        samples.Row(unit, "culture_weight", 1.0, None, 0, base + MINUTE, None),
    ]
    assert await samples.store(tenant, [*late, *rows_at(unit, base + 11 * MINUTE, 2)]) == 5
    [queued] = await reseal_jobs(owner, tenant)
    assert json.loads(queued["args"])["periods"] == [base.isoformat(), (base + MINUTE).isoformat()]
    assert queued["for_tenant"] == tenant
    assert await samples.store(tenant, late) == 0  # a replay: no second job
    assert len(await reseal_jobs(owner, tenant)) == 1


async def test_a_store_rolled_back_leaves_no_reseal_job(
    own_tenant: TenantContext, sealed_unit: dict[str, Any], owner: asyncpg.Connection
) -> None:
    unit, base, tenant = sealed_unit["unit"], sealed_unit["base"], own_tenant.tenant_id
    late = [samples.Row(unit, "ph", 6.8, None, 0, base + dt.timedelta(seconds=31), None)]

    class Stop(Exception):
        pass

    async def stored_then_failed() -> None:
        async with tenant_id_transaction(tenant):
            assert await samples.store(tenant, late) == 1
            assert len(await reseal_jobs(owner, tenant)) == 0  # not committed yet
            raise Stop

    with pytest.raises(Stop):
        await stored_then_failed()
    assert await reseal_jobs(owner, tenant) == []
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM equipment_samples WHERE equipment_id = $1 AND value = 6.8", unit
        )
        == 0
    )
    assert (await verify_tenant(tenant, own_tenant.slug)).intact


async def test_late_rows_are_resealed_after_the_storing_process_died(
    own_tenant: TenantContext,
    sealed_unit: dict[str, Any],
    owner: asyncpg.Connection,
    settings: Settings,
) -> None:
    """What was late is in the queue, not in a process: a store (then nothing of it kept),
    and a job worker started afresh reseals the period."""
    unit, base, tenant = sealed_unit["unit"], sealed_unit["base"], own_tenant.tenant_id
    late = rows_at(unit, base + 3 * MINUTE + dt.timedelta(seconds=2), 3, "culture_temperature")
    assert await samples.store(tenant, late) == 3
    report = await verify_tenant(tenant, own_tenant.slug)
    assert report.kinds == ["tampered"]  # until the job has run: the period is not its seal
    await work_reseals(settings)
    [queued] = await reseal_jobs(owner, tenant)
    assert queued["state"] == "done"
    found = await _seals(owner, unit)
    assert [(s["period_start"] - base, s["samples"], s["version"]) for s in found][-2:] == [
        (3 * MINUTE, 6, 1),
        (3 * MINUTE, 9, 2),
    ]
    report = await verify_tenant(tenant, own_tenant.slug)
    assert report.intact, report.problem


async def test_late_rows_into_a_period_with_no_seal_get_its_first_seal(
    own_tenant: TenantContext,
    sealed_unit: dict[str, Any],
    owner: asyncpg.Connection,
    settings: Settings,
) -> None:
    """The empty period between sealed ones gets rows later (a dead worker's spool stored by
    another worker): the reseal job seals it, version 1, and verify finds nothing."""
    unit, base, tenant = sealed_unit["unit"], sealed_unit["base"], own_tenant.tenant_id
    assert await samples.store(tenant, rows_at(unit, base + 2 * MINUTE, 2)) == 2
    [queued] = await reseal_jobs(owner, tenant)
    assert json.loads(queued["args"])["periods"] == [(base + 2 * MINUTE).isoformat()]
    await work_reseals(settings)
    found = await _seals(owner, unit)
    assert [(s["period_start"] - base, s["samples"], s["version"]) for s in found] == [
        (dt.timedelta(0), 14, 1),
        (MINUTE, 12, 1),
        (2 * MINUTE, 2, 1),
        (3 * MINUTE, 6, 1),
    ]
    actions = await owner.fetch(
        "SELECT action FROM audit_events WHERE tenant_id = $1 AND entity_type = 'sample_seal'",
        tenant,
    )
    assert [a["action"] for a in actions] == ["equipment.samples_sealed"] * 4
    report = await verify_tenant(tenant, own_tenant.slug)
    assert report.intact, report.problem


async def _behind_the_back(owner: asyncpg.Connection, table: str, sql: str, *args: Any) -> None:
    async with owner.transaction():
        await owner.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        await owner.execute(sql, *args)
        await owner.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


@pytest.mark.parametrize(
    ("tamper", "undo", "says"),
    [
        (
            "UPDATE equipment_samples SET value = 9.99 WHERE equipment_id = $1 "
            "AND signal = 'ph' AND source_time = $2::timestamptz + interval '1 minute'",
            "UPDATE equipment_samples SET value = 7.0 WHERE equipment_id = $1 "
            "AND signal = 'ph' AND source_time = $2::timestamptz + interval '1 minute'",
            "ph: 12 sealed, 12 stored",
        ),
        (
            "DELETE FROM equipment_samples WHERE equipment_id = $1 AND signal = 'ph' "
            "AND source_time = $2::timestamptz + interval '1 minute'",
            "INSERT INTO equipment_samples (tenant_id, equipment_id, signal, value, status_code,"
            " source_time, server_time) SELECT tenant_id, id, 'ph', 7.0, 0,"
            " $2::timestamptz + interval '1 minute', $2::timestamptz + interval '1 minute' FROM equipment WHERE id = $1",
            "ph: 12 sealed, 11 stored",
        ),
        (
            "INSERT INTO equipment_samples (tenant_id, equipment_id, signal, value, status_code,"
            " source_time) SELECT tenant_id, id, 'ph', 7.4, 0, $2::timestamptz + interval '150 seconds'"
            " FROM equipment WHERE id = $1",
            "DELETE FROM equipment_samples WHERE equipment_id = $1 AND signal = 'ph'"
            " AND source_time = $2::timestamptz + interval '150 seconds'",
            "1 samples from",
        ),
    ],
    ids=["changed", "removed", "added-between-seals"],
)
async def test_samples_tampered_with_are_found_by_audit_verify(
    own_tenant: TenantContext,
    sealed_unit: dict[str, Any],
    owner: asyncpg.Connection,
    tamper: str,
    undo: str,
    says: str,
) -> None:
    unit, base = sealed_unit["unit"], sealed_unit["base"]
    await _behind_the_back(owner, "equipment_samples", tamper, unit, base)
    try:
        report = await verify_tenant(own_tenant.tenant_id, own_tenant.slug)
        assert report.kinds == ["tampered"]
        assert "BR-" in (report.problem or "") and says in (report.problem or "")
    finally:  # other suites verify every tenant's chain
        await _behind_the_back(owner, "equipment_samples", undo, unit, base)
    report = await verify_tenant(own_tenant.tenant_id, own_tenant.slug)
    assert report.intact, report.problem


async def test_a_seal_without_its_event_is_found(
    own_tenant: TenantContext, sealed_unit: dict[str, Any], owner: asyncpg.Connection
) -> None:
    unit = sealed_unit["unit"]
    await owner.execute(
        "INSERT INTO sample_seals (tenant_id, id, equipment_id, period_start, period_end, "
        "version, samples, signals, digest) SELECT tenant_id, gen_random_uuid(), equipment_id, "
        "period_start, period_end, 2, samples, signals, digest FROM sample_seals "
        "WHERE equipment_id = $1 ORDER BY period_start LIMIT 1",
        unit,
    )
    try:
        report = await verify_tenant(own_tenant.tenant_id, own_tenant.slug)
        assert report.kinds == ["uncovered"]
        assert "sample seal" in (report.problem or "")
    finally:
        await _behind_the_back(
            owner,
            "sample_seals",
            "DELETE FROM sample_seals WHERE equipment_id = $1 AND version = 2",
            unit,
        )
    assert (await verify_tenant(own_tenant.tenant_id, own_tenant.slug)).intact


async def test_two_sealing_runs_at_once_seal_each_period_once(
    own_tenant: TenantContext,
    world: World,
    synced: Any,
    owner: asyncpg.Connection,
    settings: Settings,
) -> None:
    sealing(settings, grace=0)
    unit = await bioreactor(own_tenant, world, "opc.tcp://127.0.0.1:1/none")
    base = seals.floor(dt.datetime.now(dt.UTC) - dt.timedelta(hours=2), MINUTE)
    await samples.store(
        own_tenant.tenant_id, [r for i in range(5) for r in rows_at(unit, base + i * MINUTE, 3)]
    )
    await asyncio.gather(seal(own_tenant.tenant_id), seal(own_tenant.tenant_id))
    found = await _seals(owner, unit)
    assert [(s["period_start"] - base, s["version"]) for s in found] == [
        (i * MINUTE, 1) for i in range(5)
    ]
    events = await owner.fetchval(
        "SELECT count(*) FROM audit_events WHERE tenant_id = $1 "
        "AND action = 'equipment.samples_sealed'",
        own_tenant.tenant_id,
    )
    assert events == 5
    assert (await verify_tenant(own_tenant.tenant_id, own_tenant.slug)).intact


async def test_a_store_and_a_seal_at_once_lose_no_row(
    own_tenant: TenantContext,
    world: World,
    synced: Any,
    owner: asyncpg.Connection,
    settings: Settings,
) -> None:
    """A store into a period being sealed at that moment: the seal has the rows, or the
    store saw the seal and enqueued its reseal (the seal lock, shared by the store)."""
    sealing(settings, grace=0)
    tenant = own_tenant.tenant_id
    unit = await bioreactor(own_tenant, world, "opc.tcp://127.0.0.1:1/none")
    base = seals.floor(dt.datetime.now(dt.UTC) - dt.timedelta(hours=5), MINUTE)
    for i in range(16):
        start = base + 2 * i * MINUTE
        assert await samples.store(tenant, rows_at(unit, start, 6)) == 6
        extra = [  # stores one after another while the seal runs
            rows_at(unit, start + dt.timedelta(seconds=1 + k), 1, "culture_weight")
            for k in range(4)
        ]

        async def stores(batches: list[list[samples.Row]]) -> None:
            for batch in batches:
                await samples.store(tenant, batch)

        await asyncio.gather(seal(tenant), stores(extra), stores(extra[::-1]))
    await work_reseals(settings)
    await seal(tenant)
    found = await _seals(owner, unit)
    assert {s["period_start"] for s in found} == {base + 2 * i * MINUTE for i in range(16)}
    report = await verify_tenant(tenant, own_tenant.slug)
    assert report.intact, report.problem


async def test_a_unit_keeps_the_period_of_its_seals_and_a_long_gap_is_skipped(
    own_tenant: TenantContext,
    world: World,
    synced: Any,
    owner: asyncpg.Connection,
    settings: Settings,
) -> None:
    """Samples ten hours after the unit's newest seal (more periods than one run seals) are
    sealed in one run; with the period setting changed, the unit goes on in its minutes."""
    sealing(settings)
    unit = await bioreactor(own_tenant, world, "opc.tcp://127.0.0.1:1/none")
    now = dt.datetime.now(dt.UTC)
    first, second, third = (
        seals.floor(now - ago, MINUTE) for ago in (10 * 60 * MINUTE, 20 * MINUTE, 10 * MINUTE)
    )
    assert await samples.store(own_tenant.tenant_id, rows_at(unit, first, 3)) == 3
    await seal(own_tenant.tenant_id)
    assert await samples.store(own_tenant.tenant_id, rows_at(unit, second, 3)) == 3
    await seal(own_tenant.tenant_id)
    sealing(settings, period=300)
    assert await samples.store(own_tenant.tenant_id, rows_at(unit, third, 3)) == 3
    await seal(own_tenant.tenant_id)
    found = await _seals(owner, unit)
    assert [(s["period_start"], s["period_end"] - s["period_start"]) for s in found] == [
        (first, MINUTE),
        (second, MINUTE),
        (third, MINUTE),
    ]
    assert (await verify_tenant(own_tenant.tenant_id, own_tenant.slug)).intact


async def _tenant_with_unit(world: World) -> TenantContext:
    ctx = await tenancy.create_tenant(
        f"seal-{uuid.uuid4().hex[:8]}", "Sealing Test Tenant", "cdmo", SYSTEM, RequestMeta()
    )
    await tenancy.upsert_site(ctx, "A1", "Main site", "Europe/Berlin")
    for key, (tenant, roles) in PERSONAS.items():
        if tenant == "alpha":
            await tenancy.add_member(ctx, world[key].user_id, roles)
    found = await tenancy.internal_context(ctx.tenant_id, SYSTEM, ctx.meta)
    assert found is not None
    return found


async def test_the_periodic_job_seals_every_tenant_in_its_own_trail(
    world: World, synced: Any, owner: asyncpg.Connection, settings: Settings
) -> None:
    sealing(settings)
    tenants = [await _tenant_with_unit(world), await _tenant_with_unit(world)]
    base = seals.floor(dt.datetime.now(dt.UTC) - dt.timedelta(hours=3), MINUTE)
    units = []
    for n, ctx in enumerate(tenants, start=2):
        unit = await bioreactor(ctx, world, "opc.tcp://127.0.0.1:1/none")
        stored = [r for i in range(n) for r in rows_at(unit, base + i * MINUTE, 4)]
        assert await samples.store(ctx.tenant_id, stored) == 4 * n
        units.append(unit)
    await seal(None)  # as the periodic job is enqueued: for no tenant
    for n, (ctx, unit) in enumerate(zip(tenants, units, strict=True), start=2):
        found = await _seals(owner, unit)
        assert [s["tenant_id"] for s in found] == [ctx.tenant_id] * n
        events = await owner.fetch(
            "SELECT tenant_id, entity_id, actor_id FROM audit_events "
            "WHERE action = 'equipment.samples_sealed' AND new_values ->> 'equipment_id' = $1",
            str(unit),
        )
        assert sorted(e["entity_id"] for e in events) == sorted(str(s["id"]) for s in found)
        assert {(e["tenant_id"], e["actor_id"]) for e in events} == {(ctx.tenant_id, None)}
        report = await verify_tenant(ctx.tenant_id, ctx.slug)
        assert report.intact, report.problem


async def test_a_job_worker_seals_what_the_capture_worker_stores(
    own_tenant: TenantContext,
    world: World,
    synced: Any,
    owner: asyncpg.Connection,
    seal_worker: Worker,
) -> None:
    simulator = Simulator(SimulatorConfig(port=free_port(), rate=20, seed=21))
    await simulator.start()
    unit = await bioreactor(own_tenant, world, simulator.endpoint)
    units = await capture.units_to_capture(own_tenant.tenant_id)
    worker = capture.Worker(own_tenant.tenant_id, units, backoff=FAST, interval=0.05, leases=False)
    task = asyncio.create_task(worker.run())
    sealed: list[asyncpg.Record] = []

    async def three_sealed() -> None:
        while len(sealed) < 3:
            await asyncio.sleep(0.2)
            sealed[:] = await _seals(owner, unit)

    await asyncio.wait_for(three_sealed(), 30)
    await simulator.stop()
    worker.stop()
    await asyncio.wait_for(task, 15)
    assert worker.report.stored > 0

    async def no_reseal_waiting() -> bool:
        jobs = await reseal_jobs(owner, own_tenant.tenant_id)
        return all(j["state"] == "done" for j in jobs)

    await eventually_async(no_reseal_waiting, 30)
    found = await _seals(owner, unit)
    assert all(s["period_end"] - s["period_start"] == SECOND for s in found)
    newest: dict[dt.datetime, asyncpg.Record] = {}
    for s in found:  # in version order: the newest of each period wins
        newest[s["period_start"]] = s
    last = max(s["period_end"] for s in found)
    count = await owner.fetchval(
        "SELECT count(*) FROM equipment_samples WHERE equipment_id = $1 AND source_time < $2",
        unit,
        last,
    )
    assert sum(s["samples"] for s in newest.values()) == count
    report = await verify_tenant(own_tenant.tenant_id, own_tenant.slug)
    assert report.intact, report.problem


async def eventually_async(check: Any, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - a condition in the database
            await asyncio.sleep(0.2)


async def test_the_seal_job_is_periodic_unless_its_setting_is_0(settings: Settings) -> None:
    assert {tasks.EQUIPMENT_SEAL, tasks.EQUIPMENT_RESEAL} <= set(registry.load())
    assert Settings().seal_seconds == 30
    found = {p.kind: p.seconds for p in periodic_jobs(settings)}
    assert found[tasks.EQUIPMENT_SEAL] == 30
    never = periodic_jobs(replace(settings, seal_seconds=0))
    assert tasks.EQUIPMENT_SEAL not in [p.kind for p in never]
    registry.configure(replace(settings, seal_period_seconds=0))
    with pytest.raises(SettingsError, match="OPENCDMO_SEAL_PERIOD_SECONDS"):
        await seal(None)
    registry.configure(settings)
    assert tasks.seal_timing() == seals.Timing(5 * MINUTE, MINUTE)
