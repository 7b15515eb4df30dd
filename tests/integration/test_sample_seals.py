"""Seals of stored samples in the tenant's audit trail: each period sealed once with its
event, late samples sealed again with a reason, and ``audit verify`` finding a sample
changed, removed or added behind the worker's back, or a seal without its event; two sealers
at once seal a period once; and the capture worker seals what it stores."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from opencdmo.audit.verify import verify_tenant
from opencdmo.equipment import capture, samples, seals
from opencdmo.equipment.simulator import Simulator, SimulatorConfig
from opencdmo.scope import TenantContext
from tests.conftest import World
from tests.integration.test_capture import FAST, bioreactor
from tests.integration.test_opcua import eventually, free_port

MINUTE = dt.timedelta(minutes=1)


def rows_at(unit: UUID, start: dt.datetime, count: int, signal: str = "ph") -> list[samples.Row]:
    return [
        samples.Row(
            unit, signal, 7.0 + i / 1000, None, 0, start + dt.timedelta(seconds=i * 5), start
        )
        for i in range(count)
    ]


@pytest.fixture
async def sealed_unit(own_tenant: TenantContext, world: World, synced: Any) -> dict[str, Any]:
    """A unit with samples in three periods an hour ago (with an empty period between the
    second and third), sealed."""
    unit = await bioreactor(own_tenant, world, "opc.tcp://127.0.0.1:1/none")
    base = seals.floor(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), MINUTE)
    stored = (
        rows_at(unit, base, 10)
        + rows_at(unit, base, 4, "culture_temperature")
        + rows_at(unit, base + MINUTE, 12)
        + rows_at(unit, base + 3 * MINUTE, 6)
    )
    assert await samples.store(own_tenant.tenant_id, stored) == 32
    sealer = seals.Sealer(own_tenant.tenant_id, period=MINUTE, grace=dt.timedelta(seconds=5))
    assert await sealer.round({unit: "BR-X"}) == 3
    assert await sealer.round({unit: "BR-X"}) == 0  # nothing more is due
    return {"unit": unit, "base": base, "sealer": sealer}


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
    own_tenant: TenantContext, sealed_unit: dict[str, Any], owner: asyncpg.Connection
) -> None:
    unit, base, sealer = sealed_unit["unit"], sealed_unit["base"], sealed_unit["sealer"]
    late = [samples.Row(unit, "ph", 6.9, None, 0, base + MINUTE + dt.timedelta(seconds=59), None)]
    batcher = samples.Batcher(own_tenant.tenant_id)
    batcher.on_stored = sealer.stored
    await batcher.add(late)
    await batcher.flush()
    await batcher.add(late)  # the same again (a replay): nothing new to seal
    await batcher.flush()
    assert await sealer.round({unit: "BR-X"}) == 1
    found = await _seals(owner, unit)
    assert [(s["period_start"] - base, s["samples"], s["version"]) for s in found] == [
        (dt.timedelta(0), 14, 1),
        (MINUTE, 12, 1),
        (MINUTE, 13, 2),
        (3 * MINUTE, 6, 1),
    ]
    event = await owner.fetchrow(
        "SELECT old_values, new_values, reason FROM audit_events WHERE tenant_id = $1 "
        "AND action = 'equipment.samples_resealed'",
        own_tenant.tenant_id,
    )
    assert json.loads(event["old_values"])["version"] == 1
    assert json.loads(event["new_values"])["samples"] == 13
    assert "stored after the period was sealed" in event["reason"]
    report = await verify_tenant(own_tenant.tenant_id, own_tenant.slug)
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


async def test_two_sealers_at_once_seal_each_period_once(
    own_tenant: TenantContext, world: World, synced: Any, owner: asyncpg.Connection
) -> None:
    unit = await bioreactor(own_tenant, world, "opc.tcp://127.0.0.1:1/none")
    base = seals.floor(dt.datetime.now(dt.UTC) - dt.timedelta(hours=2), MINUTE)
    await samples.store(
        own_tenant.tenant_id, [r for i in range(5) for r in rows_at(unit, base + i * MINUTE, 3)]
    )
    one, two = (
        seals.Sealer(own_tenant.tenant_id, period=MINUTE, grace=dt.timedelta(0), worker=name)
        for name in ("a", "b")
    )
    written = await asyncio.gather(one.round({unit: "BR-X"}), two.round({unit: "BR-X"}))
    assert sorted(written) == [0, 5]
    assert [s["version"] for s in await _seals(owner, unit)] == [1] * 5


async def test_the_capture_worker_seals_what_it_stores(
    own_tenant: TenantContext, world: World, synced: Any, owner: asyncpg.Connection
) -> None:
    simulator = Simulator(SimulatorConfig(port=free_port(), rate=20, seed=21))
    await simulator.start()
    unit = await bioreactor(own_tenant, world, simulator.endpoint)
    units = await capture.units_to_capture(own_tenant.tenant_id)
    worker = capture.Worker(
        own_tenant.tenant_id,
        units,
        backoff=FAST,
        interval=0.05,
        leases=False,
        seal_period=dt.timedelta(seconds=1),
        seal_grace=dt.timedelta(seconds=0.2),
        seal_every=0.2,
    )
    task = asyncio.create_task(worker.run())
    await eventually(lambda: worker.sealer.seals >= 3, seconds=20)
    await simulator.stop()
    worker.stop()
    await asyncio.wait_for(task, 15)
    found = await _seals(owner, unit)
    assert len(found) == worker.sealer.seals >= 3
    last = max(s["period_end"] for s in found)
    count = await owner.fetchval(
        "SELECT count(*) FROM equipment_samples WHERE equipment_id = $1 AND source_time < $2",
        unit,
        last,
    )
    assert sum(s["samples"] for s in found if s["version"] == 1) == count
    report = await verify_tenant(own_tenant.tenant_id, own_tenant.slug)
    assert report.intact, report.problem
