"""Equipment values in batch fields and excursion exceptions, against the real database (and,
for capture, a real asyncua server): the samples of a phase, a field taken from equipment
(latest or an aggregate, converted to the field's unit, with where it came from; the 409
without a sample; idempotent; another tenant's batch a 404), excursions raised once past the
tenant's debounce (ongoing, then ended in an audited update; at the phase's end; a blip
raising nothing; a parameter's proven acceptable range), two evaluators at once raising one,
and the capture worker with the simulator's injected excursion."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import pytest

from opencdmo.batches import entries, equipment_use, equipment_values, excursions, queries
from opencdmo.batches import excursion_queries as exq
from opencdmo.batches import execution_queries as xq
from opencdmo.batches import phase_samples as ps
from opencdmo.batches import service as batches
from opencdmo.batches.execution import command_phase
from opencdmo.db.tx import read_view
from opencdmo.equipment import capture, samples
from opencdmo.equipment import queries as eq
from opencdmo.equipment.service import Registration
from opencdmo.equipment.signals import Excursion
from opencdmo.equipment.simulator import Simulator, SimulatorConfig
from opencdmo.errors import Conflict, NotFound, ValidationFailed
from opencdmo.hub.model import DataCaptureField, EquipmentSignal
from opencdmo.settings import Settings
from opencdmo.tenancy import batch_rules
from opencdmo.tenancy.batch_rules import ExceptionRules
from tests.conftest import World
from tests.integration.batch_world import Plant, batch_of, new_plant, underway
from tests.integration.test_capture import FAST, stored
from tests.integration.test_equipment import ready
from tests.integration.test_opcua import free_port

TEMPERATURE = "ns=2;s=INC01.Temperature"


def incubator(endpoint: str = "opc.tcp://127.0.0.1:1/sim", temperature_unit: str = "Cel") -> Any:
    opcua = {
        "endpoint": endpoint,
        "security": {"mode": "None"},
        "signals": {
            "chamber_temperature": {"node": TEMPERATURE, "unit": temperature_unit},
            "co2_concentration": {"node": "ns=2;s=INC01.CO2", "unit": "%"},
        },
    }
    return Registration(f"INC-{uuid.uuid4().hex[:4].upper()}", "co2-incubator", "S1", opcua=opcua)


@pytest.fixture
async def plant(world: World, owner: asyncpg.Connection, settings: Settings, synced: Any) -> Plant:
    found = await new_plant(world, owner, settings)
    await batch_rules.set_exception_rules(found.ctx, ExceptionRules({}, 30, 1))  # 1 s debounce
    return found


async def incubating(plant: Plant, settings: Settings, **kw: Any) -> tuple[UUID, Any]:
    """A running batch with its incubation phase running and an incubator bound to it."""
    unit = await ready(plant, settings, incubator(**kw))
    made = await batch_of(plant)
    await underway(plant, made.id, "incubation")
    await equipment_use.bind(plant.operator, made.id, "activate", unit.code)
    return made.id, unit


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def store(
    plant: Plant,
    unit: UUID,
    *points: tuple[dt.datetime, float],
    signal: str = "chamber_temperature",
) -> None:
    rows = [samples.Row(unit, signal, v, None, 0, t, None) for t, v in points]
    assert await samples.store(plant.ctx.tenant_id, rows) == len(rows)


async def take(
    plant: Plant, batch_id: UUID, key: str = "k-1", field: str = "incubator_temperature"
) -> batches.RecordedEntry:
    return await batches.record_entry(
        plant.operator,
        batch_id,
        "activate",
        "incubation",
        field,
        None,
        None,
        key,
        from_equipment=True,
    )


async def actions(owner: asyncpg.Connection, batch_id: UUID) -> list[tuple[str, dict[str, Any]]]:
    rows = await owner.fetch(
        "SELECT action, new_values FROM audit_events WHERE entity_id = $1::text ORDER BY seq",
        str(batch_id),
    )
    return [(r["action"], json.loads(r["new_values"]) if r["new_values"] else {}) for r in rows]


async def of_kind(plant: Plant, batch_id: UUID) -> list[xq.ExceptionRow]:
    async with read_view(plant.ctx):
        return [e for e in await xq.exceptions(batch_id) if e.kind == excursions.KIND]


async def excursion_rows(plant: Plant, batch_id: UUID) -> list[exq.ExcursionRow]:
    async with read_view(plant.ctx):
        return await exq.excursions(batch_id)


# --- values from equipment ----------------------------------------------------------------------


async def test_take_from_equipment_records_the_latest_sample_and_its_source(
    plant: Plant, settings: Settings, owner: asyncpg.Connection
) -> None:
    batch_id, unit = await incubating(plant, settings)
    with pytest.raises(
        Conflict, match=f"No value from {unit.code} chamber_temperature since the phase started"
    ):
        await take(plant, batch_id)
    assert (
        await owner.fetchval("SELECT count(*) FROM batch_entries WHERE batch_id = $1", batch_id)
        == 0
    )
    t1 = now()
    await store(plant, unit.id, (t1, 37.1), (t1 + dt.timedelta(seconds=1), 37.4))
    done = await take(plant, batch_id)
    entry = done.entry
    assert done.created and entry.value == 37.4 and entry.unit == "Cel"
    assert entry.source == "equipment" and entry.check_result == "in_limits"
    source = entry.equipment_source
    assert source is not None
    assert (source["code"], source["signal"], source["aggregate"]) == (
        unit.code,
        "chamber_temperature",
        "latest",
    )
    assert dt.datetime.fromisoformat(source["sample_time"]) == t1 + dt.timedelta(seconds=1)
    again = await take(plant, batch_id)  # the same key: the first entry
    assert not again.created and again.entry.id == entry.id
    with pytest.raises(Conflict, match="has been recorded already"):
        await take(plant, batch_id, key="k-2")
    recorded = [n for a, n in await actions(owner, batch_id) if a == "batch.entry_recorded"]
    assert len(recorded) == 1 and recorded[0]["source"] == "equipment"
    assert recorded[0]["equipment_source"]["sample_time"] == source["sample_time"]
    kinds = [e.kind for e in await xq_exceptions(plant, batch_id)]
    assert "manual_entry" not in kinds


async def xq_exceptions(plant: Plant, batch_id: UUID) -> list[xq.ExceptionRow]:
    async with read_view(plant.ctx):
        return await xq.exceptions(batch_id)


async def test_a_value_in_another_unit_is_converted_and_checked(
    plant: Plant, settings: Settings
) -> None:
    batch_id, unit = await incubating(plant, settings, temperature_unit="K")
    await store(plant, unit.id, (now(), 312.15))  # 39 Cel: outside 36-38
    entry = (await take(plant, batch_id)).entry
    assert entry.value == 39.0 and entry.unit == "Cel" and entry.check_result == "invalid"
    assert entry.equipment_source is not None and entry.equipment_source["signal_unit"] == "K"
    found = [e.kind for e in await xq_exceptions(plant, batch_id) if e.field == entry.field]
    assert found == ["outside_limits"]


async def test_aggregates_over_the_phase(plant: Plant, settings: Settings) -> None:
    batch_id, unit = await incubating(plant, settings)
    t = now()
    await store(
        plant,
        unit.id,
        *[(t + dt.timedelta(seconds=i), v) for i, v in enumerate((36.5, 37.5, 37.0))],
    )
    for how, expected in (("mean", 37.0), ("min", 36.5), ("max", 37.5), ("latest", 37.0)):
        field = DataCaptureField(
            key="incubator_temperature",
            name="Incubator temperature",
            type="number",
            unit="Cel",
            required=True,
            equipment_capturable=True,
            equipment_signal=EquipmentSignal(
                equipment_class="co2-incubator",
                signal="chamber_temperature",
                aggregate=None if how == "latest" else how,  # type: ignore[arg-type]
            ),
        )
        target = entries.Target("activate", "incubation", field, None)
        async with read_view(plant.ctx):
            found = await equipment_values.reading(batch_id, target)
        assert found.value == expected and found.aggregate == how, how
        assert found.count == (1 if how == "latest" else 3)
    async with read_view(plant.ctx):
        wins = await ps.windows(batch_id, "activate", "incubation")
        assert [w.unit.code for w in wins] == [unit.code]
        assert [s.value for s in await ps.samples(wins[0], "chamber_temperature")] == [
            36.5,
            37.5,
            37.0,
        ]


async def test_take_refusals(
    plant: Plant, settings: Settings, world: World, owner: asyncpg.Connection
) -> None:
    unit = await ready(plant, settings, incubator())
    made = await batch_of(plant)
    await underway(plant, made.id, "incubation")
    with pytest.raises(Conflict, match="No co2 incubator is bound to step activate"):
        await take(plant, made.id)
    await equipment_use.bind(plant.operator, made.id, "activate", unit.code)
    with pytest.raises(ValidationFailed, match="is not taken from equipment"):
        await take(plant, made.id, field="incubation_start")
    with pytest.raises(ValidationFailed, match="has no field"):
        await take(plant, made.id, field="nope")
    with pytest.raises(NotFound):
        await batches.record_entry(
            world.beta,
            made.id,
            "activate",
            "incubation",
            "incubator_temperature",
            None,
            None,
            "k",
            from_equipment=True,
        )
    assert (
        await owner.fetchval("SELECT count(*) FROM batch_entries WHERE batch_id = $1", made.id) == 0
    )


async def test_the_api_and_the_run_page(plant: Plant, settings: Settings, browser: Any) -> None:
    batch_id, unit = await incubating(plant, settings)
    await store(plant, unit.id, (now(), 37.2))
    client = await browser("operator")
    page = await client.get(f"/t/{plant.ctx.slug}/batches/{batch_id}/run")
    assert page.status_code == 200
    assert (
        f"From {unit.code} (chamber temperature)" in page.text
        and "Take from equipment" in page.text
    )
    url = f"/api/v1/t/{plant.ctx.slug}/batches/{batch_id}/entries/from-equipment"
    body = {
        "step": "activate",
        "phase": "incubation",
        "field": "incubator_temperature",
        "idempotency_key": "a-1",
    }
    bad = await client.send("POST", url, json={**body, "field": "Bad Key"})
    assert bad.status_code == 422, bad.text
    made = await client.send("POST", url, json=body)
    assert made.status_code == 201, made.text
    assert made.json()["value"] == 37.2 and made.json()["source"] == "equipment"
    assert made.json()["equipment_source"]["code"] == unit.code
    again = await client.send("POST", url, json=body)
    assert again.status_code == 200 and again.json()["id"] == made.json()["id"]


async def test_the_run_page_form_takes_the_value(
    plant: Plant, settings: Settings, browser: Any
) -> None:
    batch_id, unit = await incubating(plant, settings)
    client = await browser("operator")
    run = f"/t/{plant.ctx.slug}/batches/{batch_id}/run"
    form = {
        "step": "activate",
        "phase": "incubation",
        "field": "incubator_temperature",
        "key": "f-1",
    }
    refused = await client.send(
        "POST", run + "/from-equipment", data={**form, "_csrf_token": client.csrf}
    )
    assert refused.status_code == 409 and "since the phase started" in refused.text
    await store(plant, unit.id, (now(), 36.9))
    done = await client.send(
        "POST", run + "/from-equipment", data={**form, "_csrf_token": client.csrf}
    )
    assert done.status_code == 303, done.text


# --- excursions ------------------------------------------------------------------------------------


async def test_an_excursion_raises_once_ongoing_then_ends_audited(
    plant: Plant, settings: Settings, owner: asyncpg.Connection
) -> None:
    batch_id, unit = await incubating(plant, settings)
    start = now()
    await store(
        plant,
        unit.id,
        (start - dt.timedelta(milliseconds=1), 37.0),
        (start, 38.6),
        (start + dt.timedelta(milliseconds=200), 39.1),
    )
    await asyncio.sleep(1.3)  # longer than the 1 s debounce since the excursion began
    assert await excursions.evaluate(plant.ctx.tenant_id) == 1
    (raised,) = await of_kind(plant, batch_id)
    assert raised.severity == "major" and raised.field == "incubator_temperature"
    assert raised.phase == "incubation" and "ongoing" in raised.message and raised.raised_by is None
    (row,) = await excursion_rows(plant, batch_id)
    assert (row.started_at, row.ended_at, row.extreme) == (start, None, 39.1)
    assert (row.low, row.high, row.unit) == (36.0, 38.0, "Cel")
    assert await excursions.evaluate(plant.ctx.tenant_id) == 0  # nothing new: raised once
    back = now()
    await store(plant, unit.id, (back - dt.timedelta(milliseconds=5), 39.4), (back, 37.2))
    assert await excursions.evaluate(plant.ctx.tenant_id) == 1
    (row,) = await excursion_rows(plant, batch_id)
    assert (row.started_at, row.ended_at, row.extreme) == (start, back, 39.4)
    assert len(await of_kind(plant, batch_id)) == 1
    logged = await actions(owner, batch_id)
    ended = [n for a, n in logged if a == "batch.excursion_ended"]
    assert len(ended) == 1 and ended[0]["extreme"] == 39.4 and ended[0]["code"] == unit.code
    assert [a for a, _ in logged].count("batch.excursion_raised") == 1
    with pytest.raises(asyncpg.CheckViolationError):  # an ended excursion does not change
        await owner.execute("UPDATE batch_excursions SET extreme = 0 WHERE id = $1", row.id)


async def test_a_blip_shorter_than_the_debounce_raises_nothing(
    plant: Plant, settings: Settings
) -> None:
    batch_id, unit = await incubating(plant, settings)
    t = now()
    await store(plant, unit.id, (t, 38.5), (t + dt.timedelta(milliseconds=500), 37.0))
    await asyncio.sleep(1.2)  # the evaluation comes after the debounce: still nothing
    assert await excursions.evaluate(plant.ctx.tenant_id) == 0
    assert await excursion_rows(plant, batch_id) == []
    assert await of_kind(plant, batch_id) == []


async def test_the_phase_end_closes_an_ongoing_excursion(plant: Plant, settings: Settings) -> None:
    batch_id, unit = await incubating(plant, settings)
    out = now()
    await store(plant, unit.id, (out, 35.2))
    await asyncio.sleep(1.2)
    await command_phase(plant.operator, batch_id, "activate", "incubation", "complete", "done")
    async with read_view(plant.ctx):
        ended_at = (await xq.phase(batch_id, "activate", "incubation")).ended_at
    rows = await excursion_rows(plant, batch_id)
    assert [(r.started_at, r.ended_at, r.extreme) for r in rows] == [(out, ended_at, 35.2)]
    (raised,) = await of_kind(plant, batch_id)
    assert "ongoing" not in raised.message and "extreme 35.2" in raised.message
    assert await excursions.evaluate(plant.ctx.tenant_id) == 0


async def test_a_fields_limits_else_a_parameters_proven_acceptable_range(
    plant: Plant, settings: Settings
) -> None:
    batch_id, unit = await incubating(plant, settings)
    t = now()
    points = [(t, 6.5), (t + dt.timedelta(seconds=2), 5.0)]
    await store(plant, unit.id, *points, signal="co2_concentration")
    assert await excursions.evaluate(plant.ctx.tenant_id) == 1
    (raised,) = await of_kind(plant, batch_id)
    assert raised.field == "incubator_co2"  # the data-capture field naming the signal
    (row,) = await excursion_rows(plant, batch_id)
    assert (row.low, row.high, row.started_at, row.ended_at) == (4.0, 6.0, t, points[1][0])
    # Without that field, the parameter of the signal's key: its proven acceptable range.
    async with read_view(plant.ctx):
        operation = (await queries.control_recipe(batch_id)).operations["activate"]
        unit_row = await eq.unit(unit.id)
    phases = [
        msgspec.structs.replace(
            p, data_capture=tuple(f for f in p.data_capture if f.key != "incubator_co2")
        )
        for p in operation.phases
    ]
    bare = msgspec.structs.replace(operation, phases=tuple(phases))
    found = excursions.limits_of(bare, "incubation", unit_row, "co2_concentration", "%")
    assert found == excursions.Limits(4.0, 6.0, "%", "co2_concentration")
    assert excursions.limits_of(bare, "seeding", unit_row, "co2_concentration", "%") is None


async def test_two_evaluators_at_once_raise_one_exception(
    plant: Plant, settings: Settings, owner: asyncpg.Connection
) -> None:
    batch_id, unit = await incubating(plant, settings)
    t = now()
    await store(plant, unit.id, (t, 39.0), (t + dt.timedelta(seconds=3), 37.0))
    done = await asyncio.gather(*(excursions.evaluate(plant.ctx.tenant_id) for _ in range(2)))
    assert sorted(done) == [0, 1]
    assert len(await of_kind(plant, batch_id)) == 1
    assert len(await excursion_rows(plant, batch_id)) == 1


async def test_another_tenants_evaluation_sees_nothing(
    plant: Plant, settings: Settings, world: World
) -> None:
    batch_id, unit = await incubating(plant, settings)
    t = now()
    await store(plant, unit.id, (t, 39.0), (t + dt.timedelta(seconds=3), 37.0))
    assert await excursions.evaluate(world.beta.tenant_id) == 0
    assert await of_kind(plant, batch_id) == []


async def test_the_debounce_from_the_manifest_is_checked_and_audited(
    plant: Plant, owner: asyncpg.Connection
) -> None:
    with pytest.raises(ValidationFailed, match="excursion_debounce_seconds"):
        await batch_rules.set_exception_rules(plant.ctx, ExceptionRules({}, 30, 0))
    assert await batch_rules.set_exception_rules(plant.ctx, ExceptionRules({}, 30, 90))
    assert (await batch_rules.exception_rules(plant.ctx)).excursion_debounce_seconds == 90
    new = await owner.fetchval(
        "SELECT new_values FROM audit_events WHERE tenant_id = $1 "
        "AND action = 'tenant.exception_rules_changed' ORDER BY seq DESC LIMIT 1",
        plant.ctx.tenant_id,
    )
    assert json.loads(new)["excursion_debounce_seconds"] == 90


async def test_capture_and_evaluate_an_injected_excursion(
    plant: Plant, settings: Settings, owner: asyncpg.Connection
) -> None:
    """The simulator holds INC-01's temperature near 39.5 °C for 2 s: the worker captures
    every change and evaluates as it goes; exactly one exception, from the first stored value
    outside 36-38 to the first back inside, with the highest value between."""
    config = SimulatorConfig(
        port=free_port(), rate=20, seed=7, excursions=(Excursion(TEMPERATURE, 39.5, 2.0, 1.5),)
    )
    simulator = Simulator(config)
    batch_id, unit = await incubating(plant, settings, endpoint=config.endpoint)
    await simulator.start()
    units = [u for u in await capture.units_to_capture(plant.ctx.tenant_id) if u.id == unit.id]
    worker = capture.Worker(
        plant.ctx.tenant_id,
        units,
        backoff=FAST,
        interval=0.05,
        leases=False,
        evaluate=excursions.evaluate_quietly,
        evaluate_every=0.5,
    )
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(5.0)
    await simulator.stop()
    worker.stop()
    report = await asyncio.wait_for(task, 15)
    assert not report.failed
    await excursions.evaluate(plant.ctx.tenant_id)
    produced = (await stored(owner, unit.id))["chamber_temperature"]
    assert produced == [p for p in simulator.produced.values[TEMPERATURE] if p[0] >= produced[0][0]]
    first_out = next(i for i, (_, v) in enumerate(produced) if not 36 <= v <= 38)
    back = next(i for i in range(first_out, len(produced)) if 36 <= produced[i][1] <= 38)
    (row,) = await excursion_rows(plant, batch_id)
    assert row.started_at == produced[first_out][0] and row.ended_at == produced[back][0]
    assert row.extreme == max(v for _, v in produced[first_out:back])
    (raised,) = await of_kind(plant, batch_id)
    assert raised.kind == "equipment_excursion" and raised.step == "activate"


async def test_the_operator_and_qa_see_the_excursion(
    plant: Plant, settings: Settings, browser: Any
) -> None:
    batch_id, unit = await incubating(plant, settings)
    operator = await browser("operator")
    live = f"/t/{plant.ctx.slug}/batches/{batch_id}/run/exceptions?step=activate&phase=incubation"
    before = await operator.get(live)
    assert before.status_code == 200
    assert 'hx-trigger="every 15s"' in before.text
    assert "equipment_excursion" not in before.text
    t = now()
    await store(plant, unit.id, (t, 38.9), (t + dt.timedelta(seconds=90), 37.0))
    assert await excursions.evaluate(plant.ctx.tenant_id) == 1
    after = await operator.get(live)  # what the running phase's panel shows at its next poll
    assert 'data-kind="equipment_excursion"' in after.text and "(1 min 30 s)" in after.text
    missing = await operator.get(live.replace("incubation", "no_such_phase"))
    assert missing.status_code == 404
    run = await operator.get(f"/t/{plant.ctx.slug}/batches/{batch_id}/run")
    assert run.status_code == 200
    assert 'data-kind="equipment_excursion"' in run.text and "(1 min 30 s)" in run.text
    assert "1 excursion shaded" in run.text  # on the step's trend chart too
    review = await (await browser("approver")).get(f"/t/{plant.ctx.slug}/batches/{batch_id}/review")
    assert review.status_code == 200
    assert 'data-kind="equipment_excursion"' in review.text and "extreme 38.9" in review.text
    listed = await (await browser("approver")).get(
        f"/api/v1/t/{plant.ctx.slug}/batches/{batch_id}/exceptions"
    )
    (item,) = [x for x in listed.json()["items"] if x["kind"] == "equipment_excursion"]
    assert item["excursion"]["extreme"] == 38.9 and item["excursion"]["seconds"] == 90
    assert item["excursion"]["equipment_id"] == str(unit.id)


async def test_two_operators_taking_the_value_at_once(
    plant: Plant, settings: Settings, browser: Any, owner: asyncpg.Connection
) -> None:
    """Real concurrent requests: one entry (201), the other a 409 that shows its value."""
    batch_id, unit = await incubating(plant, settings)
    await store(plant, unit.id, (now(), 37.3))
    one, two = await browser("operator"), await browser("admin")  # admin: the supervisor
    url = f"/api/v1/t/{plant.ctx.slug}/batches/{batch_id}/entries/from-equipment"
    body = {"step": "activate", "phase": "incubation", "field": "incubator_temperature"}
    answers = await asyncio.gather(
        one.send("POST", url, json={**body, "idempotency_key": "c-1"}),
        two.send("POST", url, json={**body, "idempotency_key": "c-2"}),
    )
    assert sorted(a.status_code for a in answers) == [201, 409]
    refused = next(a for a in answers if a.status_code == 409)
    assert "has been recorded already: 37.3 Cel" in refused.json()["error"]["message"]
    count = "SELECT count(*) FROM batch_entries WHERE batch_id = $1 AND source = 'equipment'"
    assert await owner.fetchval(count, batch_id) == 1
