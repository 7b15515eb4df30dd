"""The batch record's entries through the JSON API: each checked at once, idempotent under
retries and concurrent retries, one first value per field, corrections that keep both,
tenant isolation and the audit trail."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from opencdmo.audit import queries as audit_queries
from opencdmo.audit import sentences
from opencdmo.audit.queries import AuditFilter
from opencdmo.batches import entry_queries
from opencdmo.batches import service as batches
from opencdmo.db.tx import read_view
from opencdmo.settings import Settings
from tests.conftest import World
from tests.integration.batch_world import Plant, batch_of, new_plant, underway


@pytest.fixture
async def plant(synced: Any, world: World, owner: asyncpg.Connection, settings: Settings) -> Plant:
    return await new_plant(world, owner, settings)


async def running(plant: Plant) -> str:
    made = await batch_of(plant)
    await underway(plant, made.id, "seeding")
    return str(made.id)


def url(plant: Plant, batch: str) -> str:
    return f"/api/v1/t/{plant.ctx.slug}/batches/{batch}/entries"


def entry(
    key: str,
    value: Any,
    phase: str = "seeding",
    field: str = "pre_activation_viability",
    **more: Any,
) -> dict[str, Any]:
    return {
        "step": "activate",
        "phase": phase,
        "field": field,
        "value": value,
        "idempotency_key": key,
        **more,
    }


@pytest.mark.parametrize(
    ("field", "value", "check", "message"),
    [
        ("pre_activation_viability", 92, "in_limits", "92 % recorded."),
        ("pre_activation_viability", 75, "invalid", "75 % is outside the limits 80–100 %."),
        ("seeding_density", 1.0, "in_limits", "1 × 10⁶ cells/mL is within the ranges."),
        (
            "seeding_density",
            1.5,
            "outside_normal",
            "outside the normal range 0.8–1.2 × 10⁶ cells/mL.",
        ),
        (
            "seeding_density",
            2.5,
            "outside_par",
            "outside the proven acceptable range 0.5–2 × 10⁶ cells/mL.",
        ),
    ],
)
async def test_each_entry_is_checked_when_it_is_made(
    plant: Plant, browser: Any, field: str, value: float, check: str, message: str
) -> None:
    batch = await running(plant)
    client = await browser("operator")
    sent = await client.send("POST", url(plant, batch), json=entry("k-1", value, field=field))
    assert sent.status_code == 201, sent.text
    made = sent.json()
    assert (made["check"], made["value"], made["source"]) == (check, value, "manual")
    assert made["message"].endswith(message)
    assert made["unit"] == ("%" if field == "pre_activation_viability" else "10*6/mL")
    listed = (await client.get(url(plant, batch))).json()["items"]
    assert [(e["id"], e["check"], e["superseded_by"]) for e in listed] == [
        (made["id"], check, None)
    ]


@pytest.mark.parametrize(
    ("changes", "status", "message"),
    [
        ({"value": "high"}, 422, "Viability before activation: must be a number."),
        ({"field": "colour"}, 422, "has no field 'colour'"),
        ({"phase": "thawing"}, 422, "has no phase 'thawing'"),
        ({"step": "expand"}, 422, "has no step 'expand'"),
        ({"unit": "mL"}, 422, "is recorded in %, not in mL."),
        ({"device_time": "2026-05-04T08:00:00"}, 422, "device_time: give a time zone"),
        ({"idempotency_key": ""}, 422, "idempotency_key"),
        ({"value": "x" * 2001}, 422, "value"),
        ({"source": "guess"}, 422, "source"),
        ({"supersedes": "00000000-0000-0000-0000-000000000000"}, 422, "needs a reason"),
        ({"colour": "red"}, 422, "colour: is not a known field"),
    ],
)
async def test_bad_entries_are_refused_and_nothing_is_stored(
    plant: Plant, browser: Any, changes: dict[str, Any], status: int, message: str
) -> None:
    batch = await running(plant)
    client = await browser("operator")
    sent = await client.send("POST", url(plant, batch), json={**entry("k-1", 92), **changes})
    assert sent.status_code == status, sent.text
    assert message in sent.json()["error"]["message"]
    assert (await client.get(url(plant, batch))).json()["items"] == []


async def test_a_batch_that_is_not_running_takes_no_entries(plant: Plant, browser: Any) -> None:
    made = await batch_of(plant)
    client = await browser("operator")
    sent = await client.send("POST", url(plant, str(made.id)), json=entry("k-1", 92))
    assert sent.status_code == 409
    assert sent.json()["error"]["message"] == "This batch is Idle: an entry needs it Running."
    await batches.command_batch(plant.supervisor, made.id, "start")
    await batches.command_batch(plant.supervisor, made.id, "hold", "pump fault")
    sent = await client.send("POST", url(plant, str(made.id)), json=entry("k-1", 92))
    assert sent.status_code == 409
    assert sent.json()["error"]["message"].startswith("This batch is Held:")
    assert (await client.get(url(plant, str(made.id)))).json()["items"] == []


async def test_the_same_key_twice_is_one_entry_and_the_same_body(
    plant: Plant, browser: Any
) -> None:
    batch = await running(plant)
    client = await browser("operator")
    first = await client.send("POST", url(plant, batch), json=entry("k-1", 92))
    again = await client.send("POST", url(plant, batch), json=entry("k-1", 92))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert len((await client.get(url(plant, batch))).json()["items"]) == 1


async def test_the_same_key_sent_at_the_same_moment_is_one_entry(
    plant: Plant, browser: Any
) -> None:
    batch = await running(plant)
    clients = [await browser("operator") for _ in range(4)]
    responses = await asyncio.gather(
        *(c.send("POST", url(plant, batch), json=entry("k-1", 92)) for c in clients)
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
    assert len({r.text for r in responses}) == 1
    assert len((await clients[0].get(url(plant, batch))).json()["items"]) == 1


async def test_two_people_writing_one_field_at_once_the_second_sees_the_first(
    plant: Plant, browser: Any
) -> None:
    batch = await running(plant)
    operator, supervisor = await browser("operator"), await browser("admin")
    responses = await asyncio.gather(
        operator.send("POST", url(plant, batch), json=entry("op-1", 91)),
        supervisor.send("POST", url(plant, batch), json=entry("sv-1", 93)),
    )
    assert sorted(r.status_code for r in responses) == [201, 409]
    won = next(r for r in responses if r.status_code == 201).json()
    lost = next(r for r in responses if r.status_code == 409).json()["error"]
    assert lost["details"]["current"]["value"] == won["value"]
    assert lost["details"]["current"]["id"] == won["id"]
    assert f"recorded already: {won['value']} %" in lost["message"]
    items = (await operator.get(url(plant, batch))).json()["items"]
    assert [e["id"] for e in items] == [won["id"]]


async def test_a_correction_keeps_both_entries(plant: Plant, browser: Any) -> None:
    batch = await running(plant)
    client = await browser("operator")
    first = (await client.send("POST", url(plant, batch), json=entry("k-1", 92))).json()
    without = await client.send(
        "POST", url(plant, batch), json=entry("k-2", 90, supersedes=first["id"])
    )
    assert without.status_code == 422
    assert without.json()["error"]["message"] == "A correction needs a reason."
    fixed = await client.send(
        "POST",
        url(plant, batch),
        json=entry("k-2", 75, supersedes=first["id"], reason="transcription error"),
    )
    assert fixed.status_code == 201, fixed.text
    second = fixed.json()
    assert (second["supersedes"], second["reason"], second["check"]) == (
        first["id"],
        "transcription error",
        "invalid",
    )
    stale = await client.send(
        "POST", url(plant, batch), json=entry("k-3", 91, supersedes=first["id"], reason="again")
    )
    assert stale.status_code == 409
    assert "corrected already; its current value is 75 %" in stale.json()["error"]["message"]
    items = (await client.get(url(plant, batch))).json()["items"]
    assert [(e["id"], e["value"], e["superseded_by"]) for e in items] == [
        (first["id"], 92, second["id"]),
        (second["id"], 75, None),
    ]


async def test_entries_cannot_be_changed_or_deleted_in_the_database(
    plant: Plant, browser: Any, owner: asyncpg.Connection
) -> None:
    batch = await running(plant)
    client = await browser("operator")
    made = (await client.send("POST", url(plant, batch), json=entry("k-1", 92))).json()
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await owner.execute("UPDATE batch_entries SET value = '80' WHERE id = $1", made["id"])
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await owner.execute("DELETE FROM batch_entries WHERE id = $1", made["id"])


async def test_another_tenants_batch_is_404_for_entries(plant: Plant, browser: Any) -> None:
    batch = await running(plant)
    operator = await browser("operator")  # also an operator in alpha
    sent = await operator.send(
        "POST", f"/api/v1/t/alpha/batches/{batch}/entries", json=entry("k-1", 92)
    )
    assert sent.status_code == 404
    assert (await operator.get(f"/api/v1/t/alpha/batches/{batch}/entries")).status_code == 404
    assert (await operator.get(url(plant, batch))).json()["items"] == []


async def test_entries_and_corrections_are_audited(plant: Plant, browser: Any) -> None:
    batch = await running(plant)
    client = await browser("operator")
    first = (await client.send("POST", url(plant, batch), json=entry("k-1", 92))).json()
    await client.send("POST", url(plant, batch), json=entry("k-1", 92))  # a retry: no event
    await client.send(
        "POST",
        url(plant, batch),
        json=entry("k-2", 90, supersedes=first["id"], reason="transcription error"),
    )
    async with read_view(plant.ctx):
        rows, _ = await audit_queries.page(plant.ctx, AuditFilter(), limit=100, before=None)
        said = [s.text for s in await sentences.describe(plant.ctx, rows)]
    entry_rows = [r for r in rows if r.action.startswith("batch.entry_")]
    assert sorted(r.action for r in entry_rows) == ["batch.entry_corrected", "batch.entry_recorded"]
    corrected = next(r for r in entry_rows if r.action == "batch.entry_corrected")
    assert corrected.reason == "transcription error"
    number = (await batches.get_batch_row(plant.ctx, batches.UUID(batch))).number
    names = [s for s in said if "Viability before activation" in s and "exception" not in s]
    assert (
        f"The system raised a minor exception in batch {number} on an action of Operator "
        "Person: Viability before activation corrected." in said
    )
    assert names == [
        f"Operator Person corrected Viability before activation from 92 % to 90 % (in limits) "
        f"in batch {number}",
        f"Operator Person recorded Viability before activation 92 % (in limits) in batch {number}",
    ]


async def test_an_entrys_audit_event_has_the_entrys_own_time(
    plant: Plant, browser: Any, owner: asyncpg.Connection
) -> None:
    batch = await running(plant)
    client = await browser("operator")
    made = (await client.send("POST", url(plant, batch), json=entry("k-1", 92))).json()
    row = await owner.fetchrow(
        "SELECT e.entered_at, a.occurred_at FROM batch_entries e JOIN audit_events a"
        " ON a.tenant_id = e.tenant_id AND a.action = 'batch.entry_recorded'"
        " AND a.new_values ->> 'entry_id' = e.id::text WHERE e.id = $1",
        batches.UUID(made["id"]),
    )
    assert row["occurred_at"] == row["entered_at"]


async def test_an_entrys_read_of_its_field_uses_an_index_not_the_whole_batch(
    plant: Plant, owner: asyncpg.Connection
) -> None:
    """Each entry reads the entry of its key and its field's entries. In a batch of 3,000
    entries, as the app role under row-level security, the plan takes both from their indexes:
    a scan of the batch's entries would make every entry slower the fuller its batch. (The
    entries are made and analysed in a transaction rolled back at the end.)"""
    batch = UUID(await running(plant))
    rolled_back = owner.transaction()
    await rolled_back.start()
    try:
        await owner.execute(
            "INSERT INTO batch_entries (tenant_id, batch_id, step, phase, field, value,"
            " source, entered_by, idempotency_key, check_result, message)"
            " SELECT $1, $2, 'activate', 'seeding', 'f' || n, '1', 'manual', $3,"
            " 'k' || n, 'in_limits', 'recorded' FROM generate_series(1, 3000) n",
            plant.ctx.tenant_id,
            batch,
            plant.operator.user_id,
        )
        await owner.execute("ANALYZE batch_entries")
        await owner.execute("SET LOCAL ROLE opencdmo_app")
        await owner.execute(
            "SELECT set_config('app.tenant_id', $1, true)", str(plant.ctx.tenant_id)
        )
        plan = "\n".join(
            r[0]
            for r in await owner.fetch(
                "EXPLAIN " + entry_queries._FOR_ENTRY, batch, "activate", "seeding", "k17", "f17"
            )
        )
    finally:
        await rolled_back.rollback()
    assert "batch_entries_idempotency" in plan and "batch_entries_field" in plan, plan
    assert "batch_entries_batch" not in plan, plan
