"""Setpoint writes against the real simulator and the real database: a phase's parameters
written to the unit bound to its step and read back, a refused write, a server that is down,
a list that is not the one shown, bad input, another tenant's batch, a retry with the same
key, and two operators writing at once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from opencdmo.batches import equipment_use, setpoint_plan
from opencdmo.batches.setpoints import STALE_AFTER, write_setpoints
from opencdmo.equipment.service import Registration
from opencdmo.equipment.simulator import Simulator, SimulatorConfig
from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.settings import Settings
from tests.integration.batch_world import Plant, new_plant
from tests.integration.test_equipment import ready, running_batch
from tests.integration.test_opcua import free_port

NODE = "ns=2;s=BR01.TemperatureSetpoint"
STEP, PHASE = "activate", "incubation"


@pytest.fixture(scope="module")
async def simulator() -> AsyncIterator[Simulator]:
    found = Simulator(SimulatorConfig(port=free_port(), rate=5, record=False, history=0))
    await found.start()
    yield found
    await found.stop(drain=0)


@pytest.fixture
async def plant(world: Any, owner: asyncpg.Connection, settings: Settings, synced: Any) -> Plant:
    return await new_plant(world, owner, settings)


async def _at(simulator: Simulator, value: float) -> None:
    await simulator._server.get_node(NODE).write_value(value)


async def bound_batch(
    plant: Plant, settings: Settings, endpoint: str, node: str = NODE, unit: str = "Cel"
) -> UUID:
    """A running batch whose activation step holds an incubator with the setpoint node."""
    opcua = {
        "endpoint": endpoint,
        "security": {"mode": "None"},
        "setpoints": {"incubation_temperature": {"node": node, "unit": unit}},
    }
    code = f"INC-{uuid.uuid4().hex[:4]}"
    await ready(plant, settings, Registration(code, "co2-incubator", "S1", opcua=opcua))
    batch_id = await running_batch(plant)
    await equipment_use.bind(plant.operator, batch_id, STEP, code)
    return batch_id


def _url(plant: Plant, batch_id: UUID) -> str:
    return f"/api/v1/t/{plant.ctx.slug}/batches/{batch_id}/setpoints"


async def _offered(client: Any, plant: Plant, batch_id: UUID) -> list[dict[str, Any]]:
    found = (await client.get(_url(plant, batch_id))).json()
    offer = next(o for o in found["offers"] if (o["step"], o["phase"]) == (STEP, PHASE))
    return [{k: s[k] for k in ("parameter", "value", "unit", "node")} for s in offer["setpoints"]]


async def _events(owner: asyncpg.Connection, batch_id: UUID, action: str) -> list[Any]:
    rows = await owner.fetch(
        "SELECT new_values FROM audit_events WHERE entity_id = $1 AND action = $2 ORDER BY seq",
        str(batch_id),
        action,
    )
    return [json.loads(r["new_values"]) for r in rows]


async def _failures(owner: asyncpg.Connection, batch_id: UUID) -> list[Any]:
    return await owner.fetch(
        "SELECT severity, message, field FROM batch_exceptions "
        "WHERE batch_id = $1 AND kind = 'setpoint_failed'",
        batch_id,
    )


async def _writes(owner: asyncpg.Connection, batch_id: UUID) -> int:
    found: int = await owner.fetchval(
        "SELECT count(*) FROM batch_setpoint_writes WHERE batch_id = $1", batch_id
    )
    return found


async def test_written_and_read_back_once_per_key(
    plant: Plant, settings: Settings, simulator: Simulator, browser: Any, owner: asyncpg.Connection
) -> None:
    batch_id = await bound_batch(plant, settings, simulator.endpoint)
    await _at(simulator, 20.0)
    operator = await browser("operator")
    run = await operator.get(f"/t/{plant.ctx.slug}/batches/{batch_id}/run")
    assert f'id="s-{STEP}--{PHASE}-form"' in run.text and "Write setpoints to INC-" in run.text
    shown = await _offered(operator, plant, batch_id)
    assert shown == [
        {"parameter": "incubation_temperature", "value": 37, "unit": "Cel", "node": NODE}
    ]
    body = {"step": STEP, "phase": PHASE, "idempotency_key": "k-1", "confirmed": shown}
    done = await operator.send("POST", _url(plant, batch_id), json=body)
    assert done.status_code == 201, done.text
    out = done.json()
    assert out["outcome"] == "ok" and out["replayed"] is False and out["exceptions"] == []
    assert [(r["written"], r["read_back"], r["ok"]) for r in out["results"]] == [(37.0, 37.0, True)]
    assert await simulator.read_setpoint(NODE) == 37.0
    events = await _events(owner, batch_id, "batch.setpoints_written")
    assert [
        (e["parameter"], e["node"], e["value"], e["unit"], e["read_back"], e["ok"]) for e in events
    ] == [("incubation_temperature", NODE, 37.0, "Cel", 37.0, True)]
    # The same key again: the first attempt, given again; nothing written, nothing audited.
    await _at(simulator, 21.0)
    again = await operator.send("POST", _url(plant, batch_id), json=body)
    assert again.status_code == 201 and again.json()["replayed"] is True
    assert again.json()["id"] == out["id"]
    assert await simulator.read_setpoint(NODE) == 21.0
    assert len(await _events(owner, batch_id, "batch.setpoints_written")) == 1
    assert await _failures(owner, batch_id) == [] and await _writes(owner, batch_id) == 1
    page = await operator.get(f"/t/{plant.ctx.slug}/batches/{batch_id}/run")
    assert "written and read back" in page.text


async def test_a_refused_write_raises_an_exception(
    plant: Plant, settings: Settings, simulator: Simulator, owner: asyncpg.Connection
) -> None:
    batch_id = await bound_batch(plant, settings, simulator.endpoint, "ns=2;s=BR01.Temperature")
    shown = [
        {
            "parameter": "incubation_temperature",
            "value": 37,
            "unit": "Cel",
            "node": "ns=2;s=BR01.Temperature",
        }
    ]
    done = await write_setpoints(plant.operator, batch_id, STEP, PHASE, shown, "k", pki=None)
    assert done.write.outcome == "failed" and done.raised == ["setpoint_failed"]
    assert "refused the write" in done.write.outcomes[0]["problem"]
    [failure] = await _failures(owner, batch_id)
    assert failure["severity"] == "major" and failure["field"] == "incubation_temperature"
    assert "refused the write" in failure["message"]
    [event] = await _events(owner, batch_id, "batch.setpoints_written")
    assert event["ok"] is False and event["read_back"] is None


async def test_an_unknown_node_is_a_refused_write(
    plant: Plant, settings: Settings, simulator: Simulator, owner: asyncpg.Connection
) -> None:
    node = "ns=2;s=BR01.NoSuchSetpoint"
    batch_id = await bound_batch(plant, settings, simulator.endpoint, node)
    shown = [{"parameter": "incubation_temperature", "value": 37, "unit": "Cel", "node": node}]
    done = await write_setpoints(plant.operator, batch_id, STEP, PHASE, shown, "k", pki=None)
    assert done.write.outcome == "failed" and done.raised == ["setpoint_failed"]
    assert "refused the write" in done.write.outcomes[0]["problem"]
    assert len(await _failures(owner, batch_id)) == 1


async def test_a_server_that_is_down_raises_an_exception(
    plant: Plant, settings: Settings, owner: asyncpg.Connection
) -> None:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/opencdmo/sim"
    batch_id = await bound_batch(plant, settings, endpoint)
    shown = [{"parameter": "incubation_temperature", "value": 37, "unit": "Cel", "node": NODE}]
    done = await write_setpoints(plant.operator, batch_id, STEP, PHASE, shown, "k", pki=None)
    assert done.write.outcome == "failed"
    assert "could not connect" in done.write.outcomes[0]["problem"]
    [failure] = await _failures(owner, batch_id)
    assert "could not connect" in failure["message"]
    assert len(await _events(owner, batch_id, "batch.setpoints_written")) == 1


async def test_a_value_in_another_unit_is_converted_to_the_nodes(
    plant: Plant, settings: Settings, simulator: Simulator
) -> None:
    batch_id = await bound_batch(plant, settings, simulator.endpoint, unit="K")
    shown = [{"parameter": "incubation_temperature", "value": 37, "unit": "Cel", "node": NODE}]
    done = await write_setpoints(plant.operator, batch_id, STEP, PHASE, shown, "k", pki=None)
    assert done.ok and done.write.outcomes[0]["written"] == pytest.approx(310.15)
    assert await simulator.read_setpoint(NODE) == pytest.approx(310.15)


async def test_a_list_not_the_one_shown_writes_nothing(
    plant: Plant, settings: Settings, simulator: Simulator, browser: Any, owner: asyncpg.Connection
) -> None:
    batch_id = await bound_batch(plant, settings, simulator.endpoint)
    await _at(simulator, 20.0)
    operator = await browser("operator")
    changed = [{"parameter": "incubation_temperature", "value": 38, "unit": "Cel", "node": NODE}]
    body = {"step": STEP, "phase": PHASE, "idempotency_key": "k-1", "confirmed": changed}
    refused = await operator.send("POST", _url(plant, batch_id), json=body)
    assert refused.status_code == 409, refused.text
    assert "not the ones you confirmed" in refused.json()["error"]["message"]
    bad_inputs: list[Any] = [
        {**body, "confirmed": "all of them"},
        {**body, "confirmed": []},
        {**body, "idempotency_key": ""},
        {"step": STEP, "phase": PHASE, "confirmed": changed},
        {**body, "phase": "no_such_phase", "confirmed": changed},
    ]
    for bad in bad_inputs:
        answer = await operator.send("POST", _url(plant, batch_id), json=bad)
        assert answer.status_code in (400, 422), (bad, answer.text)
    form = await operator.send(
        "POST",
        f"/t/{plant.ctx.slug}/batches/{batch_id}/run/setpoints",
        data={"step": STEP, "phase": PHASE, "key": "k-2", "confirmed": "not json"},
    )
    assert form.status_code == 422 and "not the one shown" in form.text
    assert await _writes(owner, batch_id) == 0 and await _failures(owner, batch_id) == []
    assert await _events(owner, batch_id, "batch.setpoints_written") == []
    assert await simulator.read_setpoint(NODE) == 20.0


async def test_the_form_writes_what_the_page_shows(
    plant: Plant, settings: Settings, simulator: Simulator, browser: Any
) -> None:
    batch_id = await bound_batch(plant, settings, simulator.endpoint)
    await _at(simulator, 20.0)
    operator = await browser("operator")
    shown = await _offered(operator, plant, batch_id)
    sent = await operator.send(
        "POST",
        f"/t/{plant.ctx.slug}/batches/{batch_id}/run/setpoints",
        data={"step": STEP, "phase": PHASE, "key": "k-form", "confirmed": json.dumps(shown)},
    )
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"].endswith(f"#s-{STEP}--{PHASE}")
    assert await simulator.read_setpoint(NODE) == 37.0


async def test_another_tenants_batch_is_not_found(
    plant: Plant, settings: Settings, simulator: Simulator, world: Any
) -> None:
    from opencdmo.errors import NotFound
    from tests.conftest import member_as

    batch_id = await bound_batch(plant, settings, simulator.endpoint)
    outsider = await member_as(world.beta, world["outsider"])
    shown = [{"parameter": "incubation_temperature", "value": 37, "unit": "Cel", "node": NODE}]
    with pytest.raises(NotFound):
        await write_setpoints(outsider, batch_id, STEP, PHASE, shown, "k", pki=None)


async def test_two_operators_writing_at_once(
    plant: Plant, settings: Settings, simulator: Simulator, browser: Any, owner: asyncpg.Connection
) -> None:
    """Each a clear outcome: both written one after the other, or one written and the other
    a 409 (the unit's write under way); never a half state or a 500. The same key sent
    twice at once: one write, one set of audit events."""
    batch_id = await bound_batch(plant, settings, simulator.endpoint)
    people = [await browser("operator"), await browser("admin")]
    shown = await _offered(people[0], plant, batch_id)

    async def send(client: Any, key: str) -> Any:
        body = {"step": STEP, "phase": PHASE, "idempotency_key": key, "confirmed": shown}
        return await client.send("POST", _url(plant, batch_id), json=body)

    answers = await asyncio.gather(send(people[0], "a"), send(people[1], "b"))
    codes = sorted(a.status_code for a in answers)
    assert codes in ([201, 201], [201, 409]), [a.text for a in answers]
    for lost in (a for a in answers if a.status_code == 409):
        assert "being written to INC-" in lost.json()["error"]["message"]
    written = codes.count(201)
    assert await _writes(owner, batch_id) == written
    assert len(await _events(owner, batch_id, "batch.setpoints_written")) == written
    same = await asyncio.gather(send(people[0], "same"), send(people[1], "same"))
    assert sorted(a.status_code for a in same) in ([201, 201], [201, 409])
    assert await _writes(owner, batch_id) == written + 1
    assert len(await _events(owner, batch_id, "batch.setpoints_written")) == written + 1


async def test_a_write_never_finished_is_recorded_as_abandoned(
    plant: Plant, settings: Settings, simulator: Simulator, owner: asyncpg.Connection
) -> None:
    batch_id = await bound_batch(plant, settings, simulator.endpoint)
    shown = [{"parameter": "incubation_temperature", "value": 37, "unit": "Cel", "node": NODE}]
    unit_id = await owner.fetchval(
        "SELECT equipment_id FROM batch_equipment WHERE batch_id = $1", batch_id
    )
    await owner.execute(
        "INSERT INTO batch_setpoint_writes (tenant_id, batch_id, step, phase, equipment_id, "
        "idempotency_key, requested, written_by, started_at) "
        "VALUES ($1, $2, $3, $4, $5, 'lost', $6, $7, clock_timestamp() - $8::interval)",
        plant.ctx.tenant_id,
        batch_id,
        STEP,
        PHASE,
        unit_id,
        json.dumps(shown),
        plant.operator.user_id,
        STALE_AFTER * 2,
    )
    done = await write_setpoints(plant.operator, batch_id, STEP, PHASE, shown, "next", pki=None)
    assert done.ok
    outcomes = await owner.fetch(
        "SELECT idempotency_key, outcome FROM batch_setpoint_writes WHERE batch_id = $1 "
        "ORDER BY started_at",
        batch_id,
    )
    assert [tuple(r) for r in outcomes] == [("lost", "abandoned"), ("next", "ok")]
    [failure] = await _failures(owner, batch_id)
    assert "never recorded" in failure["message"]
    assert len(await _events(owner, batch_id, "batch.setpoints_abandoned")) == 1
    # A claim still fresh keeps another write out (a 409).
    await owner.execute(
        "UPDATE batch_setpoint_writes SET outcome = NULL, results = NULL, finished_at = NULL "
        "WHERE batch_id = $1 AND idempotency_key = 'next'",
        batch_id,
    )
    with pytest.raises(Conflict, match="being written"):
        await write_setpoints(plant.operator, batch_id, STEP, PHASE, shown, "third", pki=None)


def test_confirmed_lists_are_checked() -> None:
    good = {"parameter": "t", "value": 37, "unit": "Cel", "node": NODE}
    assert setpoint_plan.confirmed([good]) == {("t", 37.0, "Cel", NODE)}
    for bad in (
        [],
        "x",
        [1],
        [{**good, "value": "hot"}],
        [{"value": 1}],
        [{**good, "value": True}],
    ):
        with pytest.raises(ValidationFailed):
            setpoint_plan.confirmed(bad)
    assert setpoint_plan.matches(37.1, 37.099998474121094)  # a Float node rounds it
    assert not setpoint_plan.matches(37.0, 37.5)


async def test_a_node_unit_that_measures_something_else_is_not_written(
    plant: Plant, settings: Settings, simulator: Simulator, browser: Any, owner: asyncpg.Connection
) -> None:
    batch_id = await bound_batch(plant, settings, simulator.endpoint, unit="%")
    operator = await browser("operator")
    run = await operator.get(f"/t/{plant.ctx.slug}/batches/{batch_id}/run")
    assert "cannot be written" in run.text and f'id="s-{STEP}--{PHASE}-form"' not in run.text
    shown = [{"parameter": "incubation_temperature", "value": 37, "unit": "Cel", "node": NODE}]
    with pytest.raises(ValidationFailed, match="Incubation temperature"):
        await write_setpoints(plant.operator, batch_id, STEP, PHASE, shown, "k", pki=None)
    assert await _writes(owner, batch_id) == 0
