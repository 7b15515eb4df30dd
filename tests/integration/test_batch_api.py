"""Batches through the JSON API and the pages: create, list with filters, read, commands;
concurrent requests, bad input, site-scoped permission and the audit trail's sentences."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from opencdmo.audit import queries as audit_queries
from opencdmo.audit import sentences
from opencdmo.audit.queries import AuditFilter
from opencdmo.db.tx import read_view
from opencdmo.settings import Settings
from tests.conftest import World
from tests.integration.batch_world import Plant, new_plant


@pytest.fixture
async def plant(synced: Any, world: World, owner: asyncpg.Connection, settings: Settings) -> Plant:
    return await new_plant(world, owner, settings)


def body(plant: Plant, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "recipe_id": str(plant.recipe),
        "formula": "1 L scale",
        "site": "S1",
        "planned_start": "2026-05-04T08:00:00+02:00",
        "sponsor": "Quillon Therapeutics",
        "chain_of_identity": {
            "donor_id": "D-7",
            "coi_label": "COI-7",
            "apheresis_id": "APH-7",
        },
    }
    values.update(changes)
    return values


async def test_create_read_list_and_command_through_the_api(plant: Plant, browser: Any) -> None:
    client = await browser("admin")  # the plant's production supervisor
    url = f"/api/v1/t/{plant.ctx.slug}/batches"
    created = await client.send("POST", url, json=body(plant))
    assert created.status_code == 201, created.text
    made = created.json()
    assert made["number"] == "S1-26-0001"
    one = (await client.get(f"{url}/{made['id']}")).json()
    assert one["control_recipe_hash"] == made["control_recipe_hash"]
    assert one["control_recipe"]["recipe"]["revision"] == 2
    assert (one["status"], one["site"], one["commands"]) == ("idle", "S1", ["start", "abort"])
    assert one["coi_label"] == "COI-7" and one["recipe_name"] == "CAR-T autologous"
    started = await client.send("POST", f"{url}/{made['id']}/commands/start", json={})
    assert started.status_code == 200 and started.json()["status"] == "running"
    again = await client.send("POST", f"{url}/{made['id']}/commands/start", json={})
    assert again.status_code == 409
    assert again.json()["error"]["message"] == "This batch is Running: 'start' needs it Idle."
    held = await client.send("POST", f"{url}/{made['id']}/commands/hold", json={})
    assert held.status_code == 422 and "needs a reason" in held.json()["error"]["message"]
    listed = (await client.get(url, params={"status": "running", "site": "S1"})).json()
    assert [b["number"] for b in listed["items"]] == ["S1-26-0001"] and listed["total"] == 1
    assert (await client.get(url, params={"status": "idle"})).json()["total"] == 0
    assert (await client.get(url, params={"sponsor": "quillon"})).json()["total"] == 1
    window = {"planned_from": "2026-05-04T06:00:00Z", "planned_to": "2026-05-04T06:00:00Z"}
    assert (await client.get(url, params=window)).json()["total"] == 1
    assert (await client.get(url, params={"recipe": str(plant.author.tenant_id)})).json()[
        "total"
    ] == 0


@pytest.mark.parametrize(
    ("changes", "status", "message"),
    [
        ({"formula": "big"}, 422, "no formula 'big'"),
        ({"site": "S9"}, 422, "no site 'S9'"),
        ({"site": "bad code!"}, 422, "site: is not in the expected format"),
        ({"sponsor": ""}, 422, "sponsor: must be at least 1 characters long"),
        ({"planned_start": "soon"}, 422, "planned_start: must be a date and time"),
        ({"chain_of_identity": None}, 422, "chain of identity needs the donor id"),
        ({"chain_of_identity": {"coi_label": "x" * 201}}, 422, "at most 200 characters"),
        ({"colour": "red"}, 422, "colour: is not a known field"),
        ({"recipe_id": "00000000-0000-0000-0000-000000000000"}, 404, "No such recipe."),
    ],
)
async def test_bad_input_is_a_4xx_with_a_message(
    plant: Plant, browser: Any, changes: dict[str, Any], status: int, message: str
) -> None:
    client = await browser("admin")
    url = f"/api/v1/t/{plant.ctx.slug}/batches"
    response = await client.send("POST", url, json=body(plant, **changes))
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert (await client.get(url)).json()["total"] == 0


async def test_two_creates_at_the_same_moment_get_consecutive_numbers(
    plant: Plant, browser: Any
) -> None:
    first, second = await browser("admin"), await browser("admin")
    url = f"/api/v1/t/{plant.ctx.slug}/batches"
    responses = await asyncio.gather(
        first.send("POST", url, json=body(plant)), second.send("POST", url, json=body(plant))
    )
    assert [r.status_code for r in responses] == [201, 201]
    assert sorted(r.json()["number"] for r in responses) == ["S1-26-0001", "S1-26-0002"]


async def test_two_commands_at_the_same_moment_one_wins(plant: Plant, browser: Any) -> None:
    supervisor, operator = await browser("admin"), await browser("operator")
    url = f"/api/v1/t/{plant.ctx.slug}/batches"
    made = (await supervisor.send("POST", url, json=body(plant))).json()
    await supervisor.send("POST", f"{url}/{made['id']}/commands/start", json={})
    reason = {"reason": "deviation under investigation"}
    responses = await asyncio.gather(
        supervisor.send("POST", f"{url}/{made['id']}/commands/pause", json=reason),
        operator.send("POST", f"{url}/{made['id']}/commands/pause", json=reason),
    )
    assert sorted(r.status_code for r in responses) == [200, 409]
    refused = next(r for r in responses if r.status_code == 409)
    assert refused.json()["error"]["message"].startswith("This batch is Paused:")


async def test_roles_through_the_api(plant: Plant, browser: Any) -> None:
    supervisor = await browser("admin")
    url = f"/api/v1/t/{plant.ctx.slug}/batches"
    made = (await supervisor.send("POST", url, json=body(plant))).json()
    for persona in ("operator", "viewer", "author", "approver"):
        client = await browser(persona)
        refused = await client.send("POST", url, json=body(plant))
        assert refused.status_code == 403, persona
        assert (await client.get(f"{url}/{made['id']}")).status_code == (
            403 if persona == "author" else 200
        ), persona
    viewer = await browser("viewer")
    command = await viewer.send("POST", f"{url}/{made['id']}/commands/start", json={})
    assert command.status_code == 403
    operator = await browser("operator")
    command = await operator.send("POST", f"{url}/{made['id']}/commands/start", json={})
    assert command.status_code == 403  # the supervisor releases a batch to the floor
    assert "batches: start" in command.json()["error"]["message"]
    await supervisor.send("POST", f"{url}/{made['id']}/commands/start", json={})
    paused = {"reason": "break"}
    command = await operator.send("POST", f"{url}/{made['id']}/commands/pause", json=paused)
    assert command.status_code == 200


async def test_a_supervisor_at_one_site_creates_there_only(plant: Plant, browser: Any) -> None:
    remote = await browser("bare")  # production supervisor at S2 only
    url = f"/api/v1/t/{plant.ctx.slug}/batches"
    at_s1 = await remote.send("POST", url, json=body(plant))
    assert at_s1.status_code == 403
    assert "batches: create" in at_s1.json()["error"]["message"]
    at_s2 = await remote.send("POST", url, json=body(plant, site="S2"))
    assert at_s2.status_code == 201 and at_s2.json()["number"] == "S2-26-0001"
    made = at_s2.json()["id"]
    assert (await remote.get(f"{url}/{made}")).status_code == 200
    started = await remote.send("POST", f"{url}/{made}/commands/start", json={})
    assert started.status_code == 200
    other = (await (await browser("admin")).send("POST", url, json=body(plant))).json()["id"]
    assert (await remote.get(f"{url}/{other}")).status_code == 403
    refused = await remote.send("POST", f"{url}/{other}/commands/start", json={})
    assert refused.status_code == 403


async def test_another_tenants_batch_is_404_on_every_route(
    plant: Plant, browser: Any, world: World
) -> None:
    made = (
        await (await browser("admin")).send(
            "POST", f"/api/v1/t/{plant.ctx.slug}/batches", json=body(plant)
        )
    ).json()["id"]
    client = await browser("admin")  # in alpha: tenant admin (batches: read)
    operator = await browser("operator")  # in alpha: may give commands
    assert (await client.get(f"/api/v1/t/alpha/batches/{made}")).status_code == 404
    assert (await client.get(f"/t/alpha/batches/{made}")).status_code == 404
    sent = await operator.send("POST", f"/api/v1/t/alpha/batches/{made}/commands/start", json={})
    assert sent.status_code == 404
    listed = (await client.get("/api/v1/t/alpha/batches")).json()["items"]
    assert made not in [b["id"] for b in listed]


async def test_pages_show_the_list_with_filters_and_the_batch(plant: Plant, browser: Any) -> None:
    client = await browser("admin")
    made = (
        await client.send("POST", f"/api/v1/t/{plant.ctx.slug}/batches", json=body(plant))
    ).json()
    listing = await client.get(f"/t/{plant.ctx.slug}/batches")
    assert listing.status_code == 200
    assert "S1-26-0001" in listing.text and 'name="sponsor"' in listing.text
    assert f'href="/t/{plant.ctx.slug}/batches"' in listing.text, "the navigation links it"
    empty = await client.get(f"/t/{plant.ctx.slug}/batches", params={"status": "complete"})
    assert "S1-26-0001" not in empty.text and "No batches match." in empty.text
    local = {"planned_from": "2026-05-04T08:00", "planned_to": "2026-05-04T08:00"}
    assert "S1-26-0001" not in (await client.get(f"/t/{plant.ctx.slug}/batches", params=local)).text
    detail = await client.get(f"/t/{plant.ctx.slug}/batches/{made['id']}")
    assert detail.status_code == 200
    assert made["control_recipe_hash"] in detail.text and "Idle" in detail.text
    assert "COI-7" in detail.text and "T-cell activation" in detail.text


async def test_the_audit_trail_reads_batch_events_as_sentences(plant: Plant, browser: Any) -> None:
    client = await browser("admin")
    url = f"/api/v1/t/{plant.ctx.slug}/batches"
    made = (await client.send("POST", url, json=body(plant))).json()
    await client.send("POST", f"{url}/{made['id']}/commands/start", json={})
    async with read_view(plant.ctx):
        rows, _ = await audit_queries.page(plant.ctx, AuditFilter(), limit=100, before=None)
        said = [s.text for s in await sentences.describe(plant.ctx, rows)]
    assert "Admin Person started batch S1-26-0001 (Idle to Running)" in said
    assert (
        "Admin Person created batch S1-26-0001 from revision 2 of CAR-T autologous, "
        "formula 1 L scale, at site S1" in said
    )
