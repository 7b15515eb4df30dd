"""Master recipes: validated revisions, the concurrency conflict, diffs, and the lifecycle."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import asyncpg
import pytest

from opencdmo.errors import Conflict, Forbidden, NotAuthenticated, ValidationFailed
from opencdmo.recipes import service as recipes
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, World, as_actor, member_as
from tests.integration.conftest import activation, reviewable, viability


def design(library_id: str, density: float = 1.0, **extra: Any) -> dict[str, Any]:
    operation = {
        "key": "activate",
        "library_item_id": library_id,
        "parameters": {"seeding_density": density},
        "equipment_class": "co2-incubator",
        "notes": "",
    }
    operation.update(extra)
    return {
        "unit_procedures": [
            {"key": "cell-processing", "name": "Cell processing", "operations": [operation]}
        ],
        "formulas": [{"name": "1 L scale", "overrides": {"activate.seeding_density": 1.1}}],
    }


async def test_revisions_are_validated_against_the_unit_operation(lab: dict[str, Any]) -> None:
    author = lab["author"]
    recipe = await recipes.create(author, "CAR-T master recipe", "Example CAR-T")
    revision = await recipes.save(author, recipe, design(lab["uo"]), 1, "first steps")
    assert revision == 2
    with pytest.raises(ValidationFailed, match="proven acceptable range"):
        await recipes.save(author, recipe, design(lab["uo"], density=9.0), 2)
    with pytest.raises(ValidationFailed, match="acknowledge it with a reason"):
        await recipes.save(author, recipe, design(lab["uo"], density=1.8), 2)
    acknowledged = design(
        lab["uo"], density=1.8, acknowledged={"seeding_density": "high-density pilot run"}
    )
    assert await recipes.save(author, recipe, acknowledged, 2) == 3
    with pytest.raises(ValidationFailed, match="no such parameter"):
        await recipes.save(author, recipe, design(lab["uo"], parameters={"warp_speed": 9}), 3)
    with pytest.raises(ValidationFailed, match="not an equipment class"):
        await recipes.save(author, recipe, design(lab["uo"], equipment_class="toaster"), 3)
    with pytest.raises(ValidationFailed, match="not a unit operation in this library"):
        await recipes.save(author, recipe, design(str(uuid.uuid4())), 3)
    assert (await recipes.get(author, recipe)).current_revision == 3


async def test_second_save_on_the_same_base_gets_409_with_their_changes(
    lab: dict[str, Any],
) -> None:
    author = lab["author"]
    recipe = await recipes.create(author, "Concurrent edits")
    await recipes.save(author, recipe, design(lab["uo"]), 1)
    await recipes.save(author, recipe, design(lab["uo"], density=1.1), 2, "engineer A")
    with pytest.raises(Conflict) as conflict:
        await recipes.save(author, recipe, design(lab["uo"], density=0.9), 2, "engineer B")
    assert conflict.value.details["current_revision"] == 3
    assert any("seeding_density" in c for c in conflict.value.details["their_changes"])
    changes = await recipes.compare(author, recipe, 2, 3)
    assert [(c.op, c.path) for c in changes] == [
        (
            "changed",
            "unit_procedures[cell-processing].operations[activate].parameters.seeding_density",
        )
    ]


async def test_lifecycle_with_signatures_and_reset_on_change(
    lab: dict[str, Any], settings: Settings, owner: asyncpg.Connection
) -> None:
    author, approver = lab["author"], lab["approver"]
    recipe = await recipes.create(author, "Lifecycle")
    await recipes.save(author, recipe, reviewable(design(lab["uo"]), lab["method"]), 1)
    with pytest.raises(Conflict):
        await recipes.approve(settings, approver, recipe, PASSWORD, "too early")
    await recipes.submit(settings, author, recipe, PASSWORD, "ready for review")
    with pytest.raises(Forbidden, match="may not do this"):
        await recipes.approve(settings, author, recipe, PASSWORD, "no approver role")
    with pytest.raises(NotAuthenticated):
        await recipes.approve(settings, approver, recipe, "wrong-password-42", "x")
    assert await recipes.approve(settings, approver, recipe, PASSWORD, "meets spec")
    assert (await recipes.get(author, recipe)).status == "approved"
    # A change after the signatures returns the recipe to Draft.
    await recipes.save(
        author, recipe, reviewable(design(lab["uo"], density=1.1), lab["method"]), 2, "late"
    )
    assert (await recipes.get(author, recipe)).status == "draft"
    await recipes.submit(settings, author, recipe, PASSWORD, "again")
    await recipes.approve(settings, approver, recipe, PASSWORD, "ok")
    await recipes.make_effective(settings, approver, recipe, PASSWORD, "in force")
    state = await recipes.get(author, recipe)
    assert (state.status, state.effective_revision) == ("effective", 3)
    # Editing an effective recipe starts a new draft; the effective revision stays in force.
    await recipes.save(
        author, recipe, reviewable(design(lab["uo"], density=0.9), lab["method"]), 3, "next"
    )
    state = await recipes.get(author, recipe)
    assert (state.status, state.effective_revision, state.current_revision) == (
        "draft",
        3,
        4,
    )
    await recipes.submit(settings, author, recipe, PASSWORD, "v4")
    await recipes.approve(settings, approver, recipe, PASSWORD, "v4 ok")
    await recipes.make_effective(settings, approver, recipe, PASSWORD, "in force")
    with pytest.raises(ValidationFailed):
        await recipes.retire(settings, approver, recipe, PASSWORD, " ")
    await recipes.retire(settings, approver, recipe, PASSWORD, "process transferred out")
    with pytest.raises(Conflict, match="retired"):
        await recipes.save(author, recipe, design(lab["uo"]), 4)
    actions = [
        r["action"]
        for r in await owner.fetch(
            "SELECT action FROM audit_events WHERE entity_type = 'master_recipe' AND entity_id = $1 "
            "ORDER BY seq",
            str(recipe),
        )
    ]
    assert actions.count("recipe.revised") == 3
    assert "recipe.superseded" in actions and actions[-1] == "recipe.retire"
    # The history says when each revision was in force and how that ended.
    periods = {
        h.revision: (h.effective_from is not None, h.ended)
        for h in await recipes.history(author, recipe)
    }
    assert periods == {
        4: (True, "retired"),
        3: (True, "superseded"),
        2: (False, None),
        1: (False, None),
    }
    meanings = [
        r["meaning"]
        for r in await owner.fetch(
            "SELECT meaning FROM signatures WHERE record_type = 'master_recipe' AND record_id = $1 "
            "ORDER BY signed_at",
            str(recipe),
        )
    ]
    assert meanings == [
        "authored",
        "approved",
        "authored",
        "approved",
        "approved for use",
        "authored",
        "approved",
        "approved for use",
        "retired",
    ]


async def test_two_approvers_when_required_and_no_double_signing(
    lab: dict[str, Any], settings: Settings, world: World
) -> None:
    author, approver = lab["author"], lab["approver"]
    recipe = await recipes.create(author, "Two approvers")
    await recipes.save(author, recipe, reviewable(design(lab["uo"]), lab["method"]), 1)
    await recipes.submit(settings, author, recipe, PASSWORD, "review")
    assert not await recipes.approve(
        settings, approver, recipe, PASSWORD, "first", approvers_required=2
    )
    with pytest.raises(Forbidden, match="already signed"):
        await recipes.approve(settings, approver, recipe, PASSWORD, "again", approvers_required=2)
    await tenancy.add_member(lab["ctx"], world["viewer"].user_id, ["qa_approver"])
    second = await member_as(lab["ctx"], world["viewer"])
    assert await recipes.approve(settings, second, recipe, PASSWORD, "second", approvers_required=2)


async def test_the_author_cannot_approve_even_with_the_approver_role(
    lab: dict[str, Any], settings: Settings, world: World, owner: asyncpg.Connection
) -> None:
    """Separation of duties holds for a person who has both roles; the refusal needs no
    password and leaves no signature."""
    await tenancy.add_member(
        lab["ctx"], world["admin"].user_id, ["qa_approver", "process_engineer"]
    )
    both = await member_as(lab["ctx"], world["admin"])
    recipe = await recipes.create(both, "My own")
    await recipes.save(both, recipe, reviewable(design(lab["uo"]), lab["method"]), 1)
    await recipes.submit(settings, both, recipe, PASSWORD, "mine, for review")
    with pytest.raises(Forbidden, match="Separation of duties"):
        await recipes.approve(settings, both, recipe, PASSWORD, "self approval")
    with pytest.raises(Forbidden, match="Separation of duties"):
        await recipes.approve(settings, both, recipe, "not-even-the-password", "self approval")
    meanings = await owner.fetch("SELECT meaning FROM signatures WHERE record_id = $1", str(recipe))
    assert [m["meaning"] for m in meanings] == ["authored"]


async def test_other_tenants_recipes_are_not_found(lab: dict[str, Any], world: World) -> None:
    from opencdmo.errors import NotFound

    recipe = await recipes.create(lab["author"], "Private process")
    with pytest.raises(NotFound):
        await recipes.get(world.alpha, recipe)
    with pytest.raises(NotFound):
        await recipes.save(world.alpha, recipe, {"unit_procedures": []}, 1)


async def test_revisions_are_append_only(lab: dict[str, Any], owner: asyncpg.Connection) -> None:
    recipe = await recipes.create(lab["author"], "Immutable history")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await owner.execute(
            "UPDATE recipe_revisions SET message = 'x' WHERE recipe_id = $1", recipe
        )
    content = json.loads(
        await owner.fetchval("SELECT content FROM recipe_revisions WHERE recipe_id = $1", recipe)
    )
    assert content["unit_procedures"] == [] and content["sampling_points"] == []


async def test_recipe_api_flow(
    synced: Any, world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    author = await browser("author")
    uo = await activation(owner, world.alpha)
    method = await viability(owner, world.alpha)
    created = await author.send("POST", "/api/v1/t/alpha/recipes", json={"name": "API recipe"})
    assert created.status_code == 201
    recipe = created.json()["id"]
    listed = (await author.get("/api/v1/t/alpha/recipes")).json()
    assert next(r for r in listed if r["name"] == "API recipe")["id"] == recipe
    url = f"/api/v1/t/alpha/recipes/{recipe}"
    saved = await author.send(
        "PUT", url + "/content", json={"base_revision": 1, "content": design(uo)}
    )
    assert saved.json() == {"revision": 2}
    stale = await author.send(
        "PUT", url + "/content", json={"base_revision": 1, "content": design(uo, density=1.1)}
    )
    assert stale.status_code == 409
    assert stale.json()["error"]["details"]["current_revision"] == 2
    bad = await author.send(
        "PUT", url + "/content", json={"base_revision": 2, "content": design(uo, density=99)}
    )
    assert bad.status_code == 422 and "proven acceptable range" in bad.json()["error"]["message"]
    diff = (await author.get(url + "/diff")).json()
    assert any(c["path"].startswith("unit_procedures[cell-processing]") for c in diff)
    assert len((await author.get(url + "/revisions")).json()) == 2
    viewer = await browser("viewer")
    assert (
        await viewer.send("PUT", url + "/content", json={"base_revision": 2, "content": design(uo)})
    ).status_code == 403
    unready = await author.send(
        "POST", url + "/submit", json={"password": PASSWORD, "reason": "ready"}
    )
    assert unready.status_code == 422
    assert "release specification" in unready.json()["error"]["message"]
    await author.send(
        "PUT",
        url + "/content",
        json={"base_revision": 2, "content": reviewable(design(uo), method)},
    )
    submitted = await author.send(
        "POST", url + "/submit", json={"password": PASSWORD, "reason": "ready"}
    )
    assert submitted.json() == {"moved": True, "status": "in_review"}
    assert (
        await author.send("POST", url + "/approve", json={"password": PASSWORD, "reason": "x"})
    ).status_code == 403
    approver = await browser("approver")
    approved = await approver.send(
        "POST", url + "/approve", json={"password": PASSWORD, "reason": "ok"}
    )
    assert approved.json() == {"moved": True, "status": "approved"}
    detail = (await approver.get(url)).json()
    assert detail["status"] == "approved"
    assert [(s["meaning"], s["valid"]) for s in detail["signatures"]] == [
        ("authored", True),
        ("approved", True),
    ]
    assert {s["signer"] for s in detail["signatures"]} == {
        world["author"].full_name,
        world["approver"].full_name,
    }


async def test_recipe_pages_show_the_manifestation(
    synced: Any, world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    author = await browser("author")
    created = await author.send(
        "POST",
        "/t/alpha/recipes",
        data={"_csrf_token": author.csrf, "name": "Page recipe", "product": "CAR-T"},
    )
    assert created.status_code == 303
    url = created.headers["location"]
    recipe_id = url.rsplit("/", 1)[1]
    uo = await activation(owner, world.alpha)
    method = await viability(owner, world.alpha)
    await recipes.save(
        as_actor(world.alpha, world["author"]),
        uuid.UUID(recipe_id),
        reviewable(design(uo), method),
        1,
    )
    page = await author.get(url)
    assert "Sign as author and submit for review" in page.text and "activate" in page.text
    wrong = await author.send(
        "POST",
        url + "/submit",
        data={"_csrf_token": author.csrf, "reason": "ready", "password": "not-my-password-9"},
    )
    assert wrong.status_code == 401 and "password is incorrect" in wrong.text
    submitted = await author.send(
        "POST",
        url + "/submit",
        data={"_csrf_token": author.csrf, "reason": "ready", "password": PASSWORD},
    )
    assert submitted.status_code == 303
    approver = await browser("approver")
    approved = await approver.send(
        "POST",
        url + "/approve",
        data={"_csrf_token": approver.csrf, "reason": "meets spec", "password": PASSWORD},
    )
    assert approved.status_code == 303
    detail = (await approver.get(url)).text
    assert world["approver"].full_name in detail and "<em>approved</em>" in detail
    assert "CET" in detail or "CEST" in detail, "signature times carry the site's zone"
    assert "Sign and make effective" in detail and "Sign and return to draft" in detail
    listing = (await approver.get("/t/alpha/recipes")).text
    assert "Page recipe" in listing


async def test_master_recipe_from_a_hub_recipe(
    lab: dict[str, Any], owner: asyncpg.Connection, browser: Any
) -> None:
    author = lab["author"]
    hub_recipe = await owner.fetchval(
        "SELECT i.id FROM hub_items i JOIN tenants t ON t.id = i.publisher_id "
        "WHERE i.slug = 'autologous-car-t' AND t.slug = 'opencdmo-hub'"
    )
    recipe_id = await recipes.create_from_hub(author, hub_recipe, "1.0.0")
    state = await recipes.get(author, recipe_id)
    assert state.current_revision == 2 and state.status == "draft"
    operations = [op for up in state.content["unit_procedures"] for op in up["operations"]]
    assert len(operations) >= 8
    hub_content = json.loads(
        await owner.fetchval(
            "SELECT content FROM hub_versions WHERE item_id = $1 AND version = '1.0.0'", hub_recipe
        )
    )
    pinned = {
        (op["unit_operation"], op["version"])
        for up in hub_content["unit_procedures"]
        for op in up["operations"]
    }
    library_rows = await owner.fetch(
        "SELECT id, slug, version, source FROM library_items WHERE tenant_id = $1",
        lab["ctx"].tenant_id,
    )
    by_id = {str(r["id"]): (r["slug"], r["version"]) for r in library_rows}
    assert {by_id[op["library_item_id"]] for op in operations} == pinned
    assert any(r["source"] == "forked" and r["slug"] == "autologous-car-t" for r in library_rows)
    # The specification, sampling points and release specifications come along.
    content = state.content
    assert content["specification"] == {
        "modality": hub_content["modality"],
        "batch_size": hub_content["batch_size"],
    }
    assert [
        (p["key"], p["after_operation"], p["sample_volume"]) for p in content["sampling_points"]
    ] == [
        (p["key"], p["after_operation"], p["sample_volume"]) for p in hub_content["sampling_points"]
    ]
    assert [
        (r["attribute"], r.get("limits"), r.get("unit")) for r in content["release_specifications"]
    ] == [
        (r["attribute"], r.get("limits"), r.get("unit"))
        for r in hub_content["release_specifications"]
    ]
    # Every content a revision pins is kept as the library stored it: its hash is the pin.
    from opencdmo.canonical import content_hash

    kept = {
        r["content_hash"]: json.loads(r["content"])
        for r in await owner.fetch(
            "SELECT content_hash, content FROM pinned_contents WHERE tenant_id = $1",
            lab["ctx"].tenant_id,
        )
    }
    entries = [*operations, *content["sampling_points"], *content["release_specifications"]]
    assert {e["content_hash"] for e in entries} <= set(kept)
    assert all(content_hash(body) == pin for pin, body in kept.items())
    source = await owner.fetchval(
        "SELECT source_hub_version_id FROM master_recipes WHERE id = $1", recipe_id
    )
    assert source is not None
    with pytest.raises(Exception, match="No such HUB recipe"):
        await recipes.create_from_hub(
            author,
            await owner.fetchval(
                "SELECT id FROM hub_items WHERE slug = 't-cell-activation' LIMIT 1"
            ),
        )


async def test_printable_master_batch_record(
    lab: dict[str, Any], owner: asyncpg.Connection, browser: Any, world: World
) -> None:
    from opencdmo.recipes import mbr
    from opencdmo.recipes.content import unit_operations_of

    author = lab["author"]
    hub_recipe = await owner.fetchval(
        "SELECT i.id FROM hub_items i JOIN tenants t ON t.id = i.publisher_id "
        "WHERE i.slug = 'autologous-car-t' AND t.slug = 'opencdmo-hub'"
    )
    recipe_id = await recipes.create_from_hub(author, hub_recipe)
    state = await recipes.get(author, recipe_id)
    library_content = await recipes.library(author)
    bom = mbr.bill_of_materials(state.content, library_content)
    # The roll-up equals the sum over the operations' own material lines.
    expected: dict[tuple[str, str], float] = {}
    steps = unit_operations_of(library_content)
    lines = [
        line
        for up in state.content["unit_procedures"]
        for op in up["operations"]
        for line in steps[op["library_item_id"]].materials
    ]
    for line in lines:
        key = (line.material, line.unit)
        expected[key] = expected.get(key, 0) + line.quantity
    assert {(m.material, m.unit): m.quantity for m in bom} == expected
    assert len(bom) < len(lines)
    layout = mbr.flow(state.content, library_content)
    operations = sum(len(up["operations"]) for up in state.content["unit_procedures"])
    assert len(layout.arrows) == operations - 1
    # The page: header with the content hash, approvals, SVG flow, BOM, equipment.
    await tenancy.add_member(lab["ctx"], world["viewer"].user_id, ["viewer"])
    viewer = await browser("viewer")
    slug = lab["ctx"].slug
    page = await viewer.get(f"/t/{slug}/recipes/{recipe_id}/print")
    assert page.status_code == 200
    from opencdmo.canonical import content_hash

    assert content_hash(state.content) in page.text
    assert "<svg" in page.text and "Bill of materials" in page.text
    assert (
        "Proven acceptable range" in page.text and "Class II biological safety cabinet" in page.text
    )
    # What a parameter lacks (a unit, a bound) prints as nothing.
    assert ">None<" not in page.text and "None –" not in page.text


async def test_designer_edits_save_revisions(
    lab: dict[str, Any], world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    from opencdmo.recipes import designer

    author = lab["author"]
    recipe = await recipes.create(author, "Designed")
    slug = lab["ctx"].slug
    client = await browser("author")
    base = f"/t/{slug}/recipes/{recipe}/design"
    page = await client.get(base)
    assert page.status_code == 200 and "Palette" in page.text

    async def act(action: str, **fields: Any) -> Any:
        state = await recipes.get(author, recipe)
        return await client.send(
            "POST",
            f"{base}/{action}",
            data={
                "_csrf_token": client.csrf,
                "base_revision": str(state.current_revision),
                **fields,
            },
        )

    assert (await act("procedure", name="Cell processing")).status_code == 200
    second = await owner.fetchval(
        "SELECT id FROM library_items WHERE tenant_id = $1 AND kind = "
        "'unit_operation' AND slug <> 't-cell-activation' LIMIT 1",
        lab["ctx"].tenant_id,
    )
    for item in (lab["uo"], str(second) if second else lab["uo"]):
        response = await act("step", procedure="cell_processing", library_item_id=item)
        assert response.status_code == 200, response.text
    keys = [
        op["key"]
        for op in (await recipes.get(author, recipe)).content["unit_procedures"][0]["operations"]
    ]
    assert len(keys) == 2
    await act("arrange", layout=json.dumps({"cell_processing": list(reversed(keys))}))
    after = [
        op["key"]
        for op in (await recipes.get(author, recipe)).content["unit_procedures"][0]["operations"]
    ]
    assert after == list(reversed(keys))
    refused = await act("configure", step="t_cell_activation", **{"param:seeding_density": "9"})
    assert refused.status_code == 422 and "proven acceptable range" in refused.text
    accepted = await act("configure", step="t_cell_activation", **{"param:seeding_density": "1.1"})
    assert accepted.status_code == 200 and "Saved as revision" in accepted.text
    stale = await client.send(
        "POST",
        f"{base}/move",
        data={
            "_csrf_token": client.csrf,
            "base_revision": "1",
            "step": keys[0],
            "direction": "down",
        },
    )
    assert stale.status_code == 409
    assert (await act("arrange", layout="{not json")).status_code == 422
    assert (
        await act("arrange", layout=json.dumps({"cell_processing": keys[:1]}))
    ).status_code == 422
    assert (await act("bogus")).status_code == 422
    # Pure designer functions keep every step exactly once.
    content = (await recipes.get(author, recipe)).content
    moved = designer.move(content, after[1], -1)
    assert [op["key"] for op in moved["unit_procedures"][0]["operations"]] == keys


async def test_tenant_manifest_sets_two_approvers(
    lab: dict[str, Any], settings: Settings, world: World, tmp_path: Any, owner: asyncpg.Connection
) -> None:
    from opencdmo.tenancy.provision import apply_path

    slug = lab["ctx"].slug
    folder = tmp_path / slug
    folder.mkdir()
    (folder / "tenant.yaml").write_text(
        "name: Recipe Lab\nkind: cdmo\nsignature_flow:\n  recipe_approvers: 2\n"
    )
    lines: list[str] = []
    await apply_path(tmp_path, lines.append)
    assert any("2 approval(s)" in line for line in lines)
    author, approver = lab["author"], lab["approver"]
    recipe = await recipes.create(author, "Needs two")
    await recipes.save(author, recipe, reviewable(design(lab["uo"]), lab["method"]), 1)
    await recipes.submit(settings, author, recipe, PASSWORD, "review")
    assert not await recipes.approve(settings, approver, recipe, PASSWORD, "one of two")
    await tenancy.add_member(lab["ctx"], world["viewer"].user_id, ["qa_approver"])
    assert await recipes.approve(
        settings, await member_as(lab["ctx"], world["viewer"]), recipe, PASSWORD, "two"
    )
    changed = await owner.fetchval(
        "SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND "
        "action = 'tenant.signature_flow_changed'",
        lab["ctx"].tenant_id,
    )
    assert changed == 1


async def test_unique_signers_in_the_signature_flow(
    lab: dict[str, Any], settings: Settings, world: World, tmp_path: Any
) -> None:
    """By default one person cannot sign two stages; a tenant may allow it in its manifest
    (never approving twice, and never the author approving)."""
    from opencdmo.tenancy.provision import apply_path

    author = lab["author"]
    # A QA approver who is also a process engineer, so that they may submit.
    await tenancy.add_member(
        lab["ctx"], world["admin"].user_id, ["qa_approver", "process_engineer"]
    )
    approver = await member_as(lab["ctx"], world["admin"])

    async def submitted_by_the_approver() -> Any:
        recipe = await recipes.create(author, f"Two stages {uuid.uuid4().hex[:4]}")
        await recipes.save(author, recipe, reviewable(design(lab["uo"]), lab["method"]), 1)
        # A QA approver submits someone else's revision: they sign "authored".
        await recipes.submit(settings, approver, recipe, PASSWORD, "send to review")
        return recipe

    recipe = await submitted_by_the_approver()
    with pytest.raises(Forbidden, match="already signed"):
        await recipes.approve(settings, approver, recipe, PASSWORD, "also approving")
    folder = tmp_path / lab["ctx"].slug
    folder.mkdir()
    (folder / "tenant.yaml").write_text(
        "name: Recipe Lab\nkind: cdmo\nsignature_flow:\n  recipe_approvers: 2\n"
        "  unique_signers: false\n"
    )
    lines: list[str] = []
    await apply_path(tmp_path, lines.append)
    assert any("one person may sign two stages" in line for line in lines)
    recipe = await submitted_by_the_approver()
    assert not await recipes.approve(settings, approver, recipe, PASSWORD, "first approval")
    with pytest.raises(Forbidden, match="already signed"):
        await recipes.approve(settings, approver, recipe, PASSWORD, "the same person again")
    with pytest.raises(Forbidden, match="may not do this"):
        await recipes.approve(settings, author, recipe, PASSWORD, "no approver role")
    await tenancy.add_member(lab["ctx"], world["viewer"].user_id, ["qa_approver"])
    assert await recipes.approve(
        settings, await member_as(lab["ctx"], world["viewer"]), recipe, PASSWORD, "second approval"
    )


async def test_designer_formulas(lab: dict[str, Any], browser: Any) -> None:
    from opencdmo.recipes import designer

    author = lab["author"]
    recipe = await recipes.create(author, "With formulas")
    await recipes.save(author, recipe, design(lab["uo"]), 1)
    client = await browser("author")
    url = f"/t/{lab['ctx'].slug}/recipes/{recipe}/design/formula"

    async def post(**fields: str) -> Any:
        state = await recipes.get(author, recipe)
        return await client.send(
            "POST",
            url,
            data={
                "_csrf_token": client.csrf,
                "base_revision": str(state.current_revision),
                **fields,
            },
        )

    ok = await post(formula="5 L scale", overrides="activate.seeding_density = 1.2 # larger vessel")
    assert ok.status_code == 200 and "5 L scale" in ok.text
    formulas = (await recipes.get(author, recipe)).content["formulas"]
    assert {f["name"] for f in formulas} == {"1 L scale", "5 L scale"}
    assert (await post(formula="Bad", overrides="activate.seeding_density = 9")).status_code == 422
    assert (await post(formula="Bad", overrides="nonsense")).status_code == 422
    assert (await post(formula="5 L scale", overrides="")).status_code == 200
    names = {f["name"] for f in (await recipes.get(author, recipe)).content["formulas"]}
    assert names == {"1 L scale"}
    with pytest.raises(ValidationFailed):
        designer.set_formula({"unit_procedures": [], "formulas": []}, " ", "")


async def test_compare_page_shows_moves_between_procedures(
    lab: dict[str, Any], browser: Any
) -> None:
    author = lab["author"]
    recipe = await recipes.create(author, "Two procedures")
    step = {"key": "activate", "library_item_id": lab["uo"], "parameters": {}}
    first = {
        "unit_procedures": [
            {"key": "upstream", "name": "Upstream", "operations": [step]},
            {"key": "downstream", "name": "Downstream", "operations": []},
        ],
        "formulas": [],
    }
    await recipes.save(author, recipe, first, 1)
    moved = {
        "unit_procedures": [
            {"key": "upstream", "name": "Upstream", "operations": []},
            {
                "key": "downstream",
                "name": "Downstream",
                "operations": [{**step, "parameters": {"seeding_density": 1.1}}],
            },
        ],
        "formulas": [],
    }
    await recipes.save(author, recipe, moved, 2)
    client = await browser("author")
    url = f"/t/{lab['ctx'].slug}/recipes/{recipe}"
    assert "Compare revisions" in (await client.get(url)).text
    page = await client.get(url + "/compare")
    assert page.status_code == 200 and "revision 2 → 3" in page.text
    assert 'data-op="moved" data-path="unit_procedures[downstream].operations[activate]"' in (
        page.text
    )
    # In process language: the step by name, the procedures by name, positions from 1, the
    # parameter by name with its value and unit as people write them.
    assert (
        "T-cell activation with anti-CD3/CD28 beads moved from Upstream to Downstream, "
        "position 1 to 1" in page.text
    )
    assert "Seeding density set to 1.1 × 10⁶ cells/mL" in page.text
    assert "unit_procedures[upstream]" not in page.text.replace('data-path="', "")
    assert (
        'data-path="unit_procedures[downstream].operations[activate].parameters.seeding_density"'
        in page.text
    )
    assert 'data-op="removed"' not in page.text
    older = await client.get(url + "/compare?left=1&right=3")
    assert older.status_code == 200 and 'data-op="added"' in older.text
    assert (await client.get(url + "/compare?left=1&right=9")).status_code == 404
    assert (await client.get(url + "/compare?left=0")).status_code == 400

    # The keyboard and form alternative to dragging a step to another procedure.
    async def relocate(procedure: str) -> Any:
        state = await recipes.get(author, recipe)
        return await client.send(
            "POST",
            url + "/design/relocate",
            data={
                "_csrf_token": client.csrf,
                "base_revision": str(state.current_revision),
                "step": "activate",
                "procedure": procedure,
            },
        )

    assert (await relocate("nowhere")).status_code == 422
    assert (await relocate("upstream")).status_code == 200
    back = (await recipes.get(author, recipe)).content["unit_procedures"]
    assert [len(up["operations"]) for up in back] == [1, 0]
    changes = await recipes.compare(author, recipe, 3, 4)
    assert [(c.op, c.path, c.old, c.new) for c in changes] == [
        (
            "moved",
            "unit_procedures[upstream].operations[activate]",
            "unit_procedures[downstream]",
            "unit_procedures[upstream]",
        )
    ]


async def test_one_sided_ranges_limit_on_their_one_side(
    lab: dict[str, Any], owner: asyncpg.Connection, browser: Any
) -> None:
    """A range may give one bound (the schema allows it): the fork's range rules and the
    recipe's value checks read the bound it has, and the pages print the one it lacks as
    nothing."""
    from opencdmo.hub import library

    author = lab["author"]
    item = await owner.fetchval(
        "SELECT i.id FROM hub_items i JOIN tenants t ON t.id = i.publisher_id "
        "WHERE i.slug = 't-cell-activation' AND t.slug = 'opencdmo-hub'"
    )
    fork = await library.fork(author, item, "1.1.0")
    content = (await library.get_library_item(author, fork)).content
    density = next(
        p
        for phase in content["phases"]
        for p in phase["parameters"]
        if p["key"] == "seeding_density"
    )
    # A normal range open above does not lie inside a proven acceptable range closed above.
    density["normal_range"] = {"low": 0.8}
    with pytest.raises(
        ValidationFailed, match=re.escape("normal range at least 0.8 must lie inside")
    ):
        await library.edit_fork(author, fork, content)
    density["normal_range"] = {"low": 0.8, "high": 1.2}
    density["proven_acceptable_range"] = {"low": 0.5}
    assert await library.edit_fork(author, fork, content)
    recipe = await recipes.create(author, "Open above")
    with pytest.raises(
        ValidationFailed, match=re.escape("outside the proven acceptable range at least 0.5")
    ):
        await recipes.save(author, recipe, design(str(fork), density=0.4), 1)
    with pytest.raises(
        ValidationFailed, match=re.escape("outside the normal range 0.8-1.2; acknowledge")
    ):
        await recipes.save(author, recipe, design(str(fork), density=40.0), 1)
    far = design(str(fork), density=40.0, acknowledged={"seeding_density": "dense pilot run"})
    far["formulas"] = []
    assert await recipes.save(author, recipe, far, 1) == 2
    client = await browser("author")
    slug = lab["ctx"].slug
    printed = await client.get(f"/t/{slug}/recipes/{recipe}/print")
    assert printed.status_code == 200 and "≥ 0.5 × 10⁶ cells/mL" in printed.text
    assert "None –" not in printed.text and "– None" not in printed.text
    designer = await client.get(f"/t/{slug}/recipes/{recipe}/design?step=activate")
    assert (
        designer.status_code == 200 and "proven acceptable ≥ 0.5 × 10⁶ cells/mL)" in designer.text
    )
    assert "None–" not in designer.text and "–None" not in designer.text
