"""Batches: made only from an effective revision, numbered by the tenant's pattern, their
control recipe frozen and hashed; the ISA-88 commands by role, by state and at once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest

from opencdmo.batches import service as batches
from opencdmo.batches import states
from opencdmo.batches.queries import BatchFilter
from opencdmo.canonical import content_hash
from opencdmo.errors import Conflict, Forbidden, NotFound, ValidationFailed
from opencdmo.hub import library
from opencdmo.recipes import service as recipes
from opencdmo.settings import Settings
from opencdmo.tenancy.batch_numbering import set_batch_number_pattern
from opencdmo.tenancy.service import list_sites
from tests.conftest import PASSWORD, World, member_as
from tests.integration.batch_world import (
    CHAIN,
    Plant,
    batch_of,
    content,
    effective,
    effective_recipe,
    new_plant,
    phases_done,
)


@pytest.fixture
async def plant(synced: Any, world: World, owner: asyncpg.Connection, settings: Settings) -> Plant:
    return await new_plant(world, owner, settings)


async def _events(owner: asyncpg.Connection, plant: Plant, entity_id: Any) -> list[Any]:
    return list(
        await owner.fetch(
            "SELECT action, old_values, new_values, reason, actor_id FROM audit_events "
            "WHERE tenant_id = $1 AND entity_type = 'batch' AND entity_id = $2 "
            "ORDER BY entry",
            plant.ctx.tenant_id,
            str(entity_id),
        )
    )


async def test_a_batch_from_the_effective_revision_with_its_control_recipe(
    plant: Plant, owner: asyncpg.Connection
) -> None:
    created = await batch_of(plant)
    view = await batches.get_batch(plant.viewer, created.id)
    row = view.batch
    assert (row.status, row.revision, row.formula, row.sponsor) == (
        "idle",
        2,
        "1 L scale",
        "Quillon Therapeutics",
    )
    assert (row.donor_id, row.coi_label, row.apheresis_id) == ("D-0001", "COI-0001", "APH-0001")
    assert view.site_code == "S1" and view.recipe_name == "CAR-T autologous"
    document = view.control_recipe.document
    assert view.control_recipe.content_hash == created.control_recipe_hash
    assert content_hash(document) == created.control_recipe_hash
    op = document["unit_procedures"][0]["operations"][0]
    # The formula's override, the pinned ranges and the pinned unit operation's phases.
    assert op["values"]["seeding_density"]["value"] == 1.1
    assert op["values"]["seeding_density"]["value_from"] == "formula"
    assert op["values"]["seeding_density"]["proven_acceptable_range"] == {"low": 0.5, "high": 2.0}
    assert op["unit_operation_content"]["slug"] == "t-cell-activation"
    assert op["unit_operation_content"]["phases"]
    assert document["release_specifications"][0]["method_content"]["slug"] == (
        "cell-count-viability"
    )
    assert document["recipe"]["revision"] == 2 and document["formula"]["name"] == "1 L scale"
    (event,) = await _events(owner, plant, created.id)
    assert event["action"] == "batch.created"
    values = json.loads(event["new_values"])
    assert values["number"] == created.number
    assert values["control_recipe_hash"] == created.control_recipe_hash
    assert (values["recipe_id"], values["revision"]) == (str(plant.recipe), 2)
    assert event["actor_id"] == plant.supervisor.user_id


async def test_only_an_effective_revision_makes_a_batch(plant: Plant, settings: Settings) -> None:
    recipe = await recipes.create(plant.author, "Not yet")
    await recipes.save(plant.author, recipe, content(plant.uo, plant.method), 1)
    for state in ("Draft", "In Review", "Approved"):
        with pytest.raises(Conflict, match=f"This recipe is {state}: only an effective"):
            await batch_of(plant, recipe=recipe)
        if state == "Draft":
            await recipes.submit(settings, plant.author, recipe, PASSWORD, "ready")
        elif state == "In Review":
            await recipes.approve(
                settings, plant.approver, recipe, PASSWORD, "ok", approvers_required=1
            )
    await recipes.make_effective(settings, plant.approver, recipe, PASSWORD, "in force")
    assert (await batch_of(plant, recipe=recipe)).number
    await recipes.retire(settings, plant.approver, recipe, PASSWORD, "transferred out")
    with pytest.raises(Conflict, match="This recipe is Retired"):
        await batch_of(plant, recipe=recipe)


async def test_a_new_draft_does_not_stop_the_effective_revision(plant: Plant) -> None:
    """Editing an effective recipe starts a draft; batches are still made from the revision
    in force, never from the draft."""
    await recipes.save(
        plant.author, plant.recipe, content(plant.uo, plant.method, density=0.9), 2, "next"
    )
    assert (await recipes.get(plant.author, plant.recipe)).status == "draft"
    created = await batch_of(plant)
    assert (await batches.get_batch(plant.viewer, created.id)).batch.revision == 2


async def test_the_formula_must_exist_and_the_input_must_hold(plant: Plant) -> None:
    with pytest.raises(
        ValidationFailed, match=r"no formula 'large' \(its formulas: '1 L scale', 'pilot'\)"
    ):
        await batch_of(plant, formula="large")
    with pytest.raises(ValidationFailed, match="no site 'S9'"):
        await batch_of(plant, site="S9")
    with pytest.raises(ValidationFailed, match="sponsor"):
        await batch_of(plant, sponsor="   ")
    with pytest.raises(ValidationFailed, match="time zone"):
        await batch_of(plant, planned_start=__import__("datetime").datetime(2026, 5, 4, 8))
    with pytest.raises(NotFound):
        await batch_of(plant, recipe=__import__("uuid").uuid4())
    page = await batches.list_batches(plant.viewer, BatchFilter())
    assert page.total == 0, "nothing refused was written"


async def test_chain_of_identity_is_required_for_autologous_recipes(
    plant: Plant, settings: Settings
) -> None:
    with pytest.raises(
        ValidationFailed,
        match=r"autologous product: the chain of identity needs the donor id, COI label, apheresis",
    ):
        await batch_of(plant, chain=batches.ChainOfIdentity())
    with pytest.raises(ValidationFailed, match="needs the apheresis id"):
        await batch_of(plant, chain=batches.ChainOfIdentity("D-1", "COI-1", "  "))
    vector = await effective_recipe(settings, plant, "Vector", modality="lvv")
    created = await batch_of(plant, recipe=vector, chain=batches.ChainOfIdentity())
    row = (await batches.get_batch(plant.viewer, created.id)).batch
    assert (row.donor_id, row.coi_label, row.apheresis_id) == (None, None, None)


async def test_numbers_follow_the_tenants_pattern(plant: Plant) -> None:
    first, second = await batch_of(plant), await batch_of(plant)
    assert (first.number, second.number) == ("S1-26-0001", "S1-26-0002")
    assert (await batch_of(plant, site="S2")).number == "S2-26-0001"
    await set_batch_number_pattern(plant.ctx, "B{yyyy}-{seq:03}")
    assert (await batch_of(plant)).number == "B2026-001"
    assert (await batch_of(plant, site="S2")).number == "B2026-002"
    with pytest.raises(ValidationFailed, match="unknown placeholder"):
        await set_batch_number_pattern(plant.ctx, "{site}-{month}-{seq}")


async def test_two_creates_at_once_get_consecutive_numbers(plant: Plant) -> None:
    made = await asyncio.gather(*(batch_of(plant) for _ in range(4)))
    assert sorted(b.number for b in made) == [f"S1-26-000{i}" for i in range(1, 5)]


async def test_the_control_recipe_never_changes_with_the_master_recipe_or_library(
    synced: Any, world: World, owner: asyncpg.Connection, settings: Settings
) -> None:
    plant = await new_plant(world, owner, settings, activation="1.0.0")
    created = await batch_of(plant)
    before = await batches.get_batch(plant.viewer, created.id)
    # The library moves on, and a new revision that adopts it becomes effective.
    await library.upgrade(plant.author, __import__("uuid").UUID(plant.uo), "1.1.0", "newer")
    body = content(plant.uo, plant.method, density=1.2)
    body["unit_procedures"][0]["operations"][0]["parameters"]["seeding_density"] = 1.2
    await recipes.save(plant.author, plant.recipe, body, 2, "adopt 1.1.0")
    await effective(settings, plant, plant.recipe)
    assert (await recipes.get(plant.author, plant.recipe)).effective_revision == 3
    after = await batches.get_batch(plant.viewer, created.id)
    assert after.control_recipe == before.control_recipe
    assert after.batch.revision == 2
    frozen = after.control_recipe.document["unit_procedures"][0]["operations"][0]
    assert frozen["unit_operation_content"]["version"] == "1.0.0"
    assert content_hash(after.control_recipe.document) == created.control_recipe_hash
    newer = await batch_of(plant)
    newer_doc = (await batches.get_batch(plant.viewer, newer.id)).control_recipe.document
    assert newer_doc["unit_procedures"][0]["operations"][0]["unit_operation_content"][
        "version"
    ] == ("1.1.0")
    # The stored copy is append-only, for the owner too.
    with pytest.raises(asyncpg.PostgresError):
        await owner.execute(
            "UPDATE control_recipes SET content_hash = repeat('0', 64) WHERE batch_id = $1",
            created.id,
        )


async def test_create_is_refused_by_role_and_by_site(plant: Plant) -> None:
    for who in (plant.operator, plant.viewer, plant.author, plant.approver):
        with pytest.raises(Forbidden, match="batches: create"):
            await batches.create_batch(
                who,
                plant.recipe,
                "1 L scale",
                "S1",
                __import__("datetime").datetime.now(__import__("datetime").UTC),
                "Sponsor",
                CHAIN,
            )
    with pytest.raises(Forbidden, match="batches: create"):
        await batch_of(Plant(**{**plant.__dict__, "supervisor": plant.remote}), site="S1")
    made = await batch_of(Plant(**{**plant.__dict__, "supervisor": plant.remote}), site="S2")
    assert made.number == "S2-26-0001"


PATHS = {
    # state -> the commands that lead to it from Idle
    "idle": [],
    "running": ["start"],
    "held": ["start", "hold"],
    "paused": ["start", "pause"],
    "stopped": ["start", "stop"],
    "aborted": ["abort"],
    "complete": ["start", "complete"],
}


async def _in_state(plant: Plant, state: str) -> Any:
    created = await batch_of(plant)
    for command in PATHS[state]:
        if command == "complete":
            await phases_done(plant, created.id)
        await batches.command_batch(plant.supervisor, created.id, command, "test")
    return created


async def test_every_command_in_every_state(plant: Plant, owner: asyncpg.Connection) -> None:
    made = {state: await _in_state(plant, state) for state in PATHS}
    for command, step in states.COMMANDS.items():
        for state, created in made.items():
            if state in step.sources:
                continue
            with pytest.raises(Conflict) as refused:
                await batches.command_batch(plant.supervisor, created.id, command, "why")
            assert f"This batch is {state.capitalize()}" in refused.value.message
            assert (await batches.get_batch_row(plant.viewer, created.id)).status == state
    for command, step in states.COMMANDS.items():
        for state in step.sources:
            created = await _in_state(plant, state)
            if command == "complete":
                await phases_done(plant, created.id)
            row = await batches.command_batch(plant.supervisor, created.id, command, "why")
            assert row.status == step.target
            event = (await _events(owner, plant, created.id))[-1]
            event = next(
                e
                for e in reversed(await _events(owner, plant, created.id))
                if e["action"] == f"batch.{command}"
            )
            assert json.loads(event["old_values"]) == {"status": state}
            assert json.loads(event["new_values"])["status"] == step.target
            assert event["reason"] == "why"


async def test_commands_are_refused_by_role_by_site_and_without_a_reason(plant: Plant) -> None:
    created = await batch_of(plant)
    for who in (plant.viewer, plant.author, plant.approver, plant.remote, plant.operator):
        with pytest.raises(Forbidden, match="batches: start"):
            await batches.command_batch(who, created.id, "start")
    with pytest.raises(ValidationFailed, match="'hold' needs a reason"):
        await batches.command_batch(plant.operator, created.id, "hold", " ")
    with pytest.raises(ValidationFailed, match="not a batch command"):
        await batches.command_batch(plant.operator, created.id, "reset")
    assert (await batches.get_batch_row(plant.viewer, created.id)).status == "idle"
    at_s2 = await batch_of(plant, site="S2")
    assert (await batches.command_batch(plant.remote, at_s2.id, "start")).status == "running"


async def test_two_commands_at_once_one_wins(plant: Plant, owner: asyncpg.Connection) -> None:
    created = await batch_of(plant)
    await batches.command_batch(plant.supervisor, created.id, "start")
    await phases_done(plant, created.id)
    results = await asyncio.gather(
        batches.command_batch(plant.supervisor, created.id, "complete"),
        batches.command_batch(plant.supervisor, created.id, "complete"),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], Conflict)
    assert "This batch is Complete" in refused[0].message
    actions = [e["action"] for e in await _events(owner, plant, created.id)]
    assert actions.count("batch.complete") == 1
    assert actions[:2] == ["batch.created", "batch.start"]


async def test_another_tenants_batch_is_not_found(plant: Plant, world: World) -> None:
    created = await batch_of(plant)
    elsewhere = await member_as(world.alpha, world["operator"])
    with pytest.raises(NotFound):
        await batches.get_batch(elsewhere, created.id)
    with pytest.raises(NotFound):
        await batches.command_batch(elsewhere, created.id, "start")
    assert (await batches.get_batch_row(plant.viewer, created.id)).status == "idle"


async def test_list_filters_and_pages(plant: Plant, settings: Settings) -> None:
    from datetime import timedelta

    from tests.integration.batch_world import PLANNED

    vector = await effective_recipe(settings, plant, "Vector", modality="lvv")
    first = await batch_of(plant)
    await batch_of(plant, site="S2", planned_start=PLANNED + timedelta(days=3))
    await batch_of(plant, recipe=vector, sponsor="Other Bio", planned_start=PLANNED - timedelta(1))
    await batches.command_batch(plant.supervisor, first.id, "start")
    sites = {s.code: s.id for s in await list_sites(plant.ctx)}

    async def numbers(**kw: Any) -> list[str]:
        page = await batches.list_batches(plant.viewer, BatchFilter(**kw))
        return [r.batch.number for r in page.rows]

    assert await numbers() == ["S2-26-0001", "S1-26-0001", "S1-26-0002"]
    assert await numbers(status="running") == ["S1-26-0001"]
    assert await numbers(recipe_id=vector) == ["S1-26-0002"]
    assert await numbers(site_id=sites["S2"]) == ["S2-26-0001"]
    assert await numbers(sponsor="other") == ["S1-26-0002"]
    assert await numbers(planned_from=PLANNED, planned_to=PLANNED) == ["S1-26-0001"]
    page = await batches.list_batches(plant.viewer, BatchFilter(limit=2, offset=2))
    assert ([r.batch.number for r in page.rows], page.total) == (["S1-26-0002"], 3)
    with pytest.raises(ValidationFailed, match="not a batch state"):
        await batches.list_batches(plant.viewer, BatchFilter(status="done"))


async def test_a_member_who_reads_at_one_site_lists_that_sites_batches(
    plant: Plant, browser: Any
) -> None:
    await batch_of(plant, site="S1")
    at_s2 = await batch_of(plant, site="S2")
    page = await batches.list_batches(plant.remote, BatchFilter())
    assert [r.batch.id for r in page.rows] == [at_s2.id] and page.total == 1
    assert (await batches.list_batches(plant.viewer, BatchFilter())).total == 2
    client = await browser("bare")  # the remote supervisor through the API and the pages
    listed = await client.get(f"/api/v1/t/{plant.ctx.slug}/batches")
    assert listed.status_code == 200 and [b["site"] for b in listed.json()["items"]] == ["S2"]
    assert (await client.get(f"/t/{plant.ctx.slug}/batches/board")).status_code == 200


async def test_a_site_supervisor_sees_the_batches_menu(plant: Plant, browser: Any) -> None:
    client = await browser("bare")  # production supervisor at S2 only
    page = await client.get(f"/t/{plant.ctx.slug}/batches")
    assert page.status_code == 200
    assert f'href="/t/{plant.ctx.slug}/batches"' in page.text  # the menu entry
    assert "New batch" in page.text  # they create batches at their site, and there only
    form = page.text[page.text.index('id="new-site"') :]
    form = form[: form.index("</select>")]
    assert ">S2<" in form and ">S1<" not in form
