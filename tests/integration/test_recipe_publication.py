"""The recipe's specification, sampling points and release specifications, and publishing an
effective master recipe to the HUB with the publication signature."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from opencdmo.errors import Conflict, Forbidden, NotAuthenticated, NotFound, ValidationFailed
from opencdmo.hub import library
from opencdmo.recipes import service as recipes
from opencdmo.recipes.publication import Listing
from opencdmo.settings import Settings
from opencdmo.signatures.service import signatures_for
from tests.conftest import PASSWORD, World, as_actor
from tests.integration.conftest import new_lab, reviewable, viability


async def _platform_item(owner: asyncpg.Connection, slug: str) -> Any:
    return await owner.fetchval(
        "SELECT i.id FROM hub_items i JOIN tenants t ON t.id = i.publisher_id "
        "WHERE i.slug = $1 AND t.slug = 'opencdmo-hub'",
        slug,
    )


async def _make_effective(settings: Settings, lab: dict[str, Any], recipe_id: Any) -> None:
    await recipes.submit(settings, lab["author"], recipe_id, PASSWORD, "ready for review")
    assert await recipes.approve(
        settings, lab["approver"], recipe_id, PASSWORD, "reviewed", approvers_required=1
    )
    await recipes.make_effective(settings, lab["approver"], recipe_id, PASSWORD, "approved for use")


def _listing(**changes: Any) -> Listing:
    values: dict[str, Any] = {
        "slug": f"site-car-t-{uuid.uuid4().hex[:6]}",
        "version": "1.0.0",
        "summary": "Autologous CAR-T process as run at our site",
        "description": "Example defaults to adapt and validate at the receiving site.",
        "changelog": "Initial release.",
        "tags": ["car-t"],
        "visibility": "private",
    }
    values.update(changes)
    return Listing(**values)


@pytest.fixture
async def effective(
    lab: dict[str, Any],
    owner: asyncpg.Connection,
    settings: Settings,
) -> dict[str, Any]:
    hub_recipe = await _platform_item(owner, "autologous-car-t")
    recipe_id = await recipes.create_from_hub(lab["author"], hub_recipe, "1.1.0")
    await _make_effective(settings, lab, recipe_id)
    return {**lab, "recipe": recipe_id, "hub_recipe": hub_recipe}


async def test_hub_recipe_brings_its_specification(
    effective: dict[str, Any], owner: asyncpg.Connection
) -> None:
    source = json.loads(
        await owner.fetchval(
            "SELECT content FROM hub_versions WHERE item_id = $1 AND version = '1.1.0'",
            effective["hub_recipe"],
        )
    )
    content = (await recipes.get(effective["author"], effective["recipe"])).content
    assert content["specification"] == {
        "modality": source["modality"],
        "batch_size": source["batch_size"],
    }
    assert [p["key"] for p in content["sampling_points"]] == [
        p["key"] for p in source["sampling_points"]
    ]
    assert [(r["method"], r["attribute"]) for r in content["release_specifications"]] == [
        (r["method"], r["attribute"]) for r in source["release_specifications"]
    ]
    methods = {
        str(r["id"]): (r["slug"], r["version"])
        for r in await owner.fetch(
            "SELECT id, slug, version FROM library_items WHERE tenant_id = $1 AND kind = 'method'",
            effective["ctx"].tenant_id,
        )
    }
    for point in content["sampling_points"]:
        assert methods[point["library_item_id"]] == (point["method"], point["method_version"])


async def test_publish_an_effective_recipe_and_create_from_it(
    effective: dict[str, Any], owner: asyncpg.Connection, settings: Settings, world: World
) -> None:
    recipe_id, listing = effective["recipe"], _listing()
    with pytest.raises(Forbidden, match="may not do this"):
        await recipes.publish_to_hub(
            settings, effective["author"], recipe_id, listing, PASSWORD, "share it"
        )
    with pytest.raises(NotAuthenticated):
        await recipes.publish_to_hub(
            settings, effective["approver"], recipe_id, listing, "wrong password!", "share it"
        )
    assert await owner.fetchval("SELECT count(*) FROM hub_items WHERE slug = $1", listing.slug) == 0

    item_id = await recipes.publish_to_hub(
        settings, effective["approver"], recipe_id, listing, PASSWORD, "share with sponsors"
    )
    item = await owner.fetchrow("SELECT * FROM hub_items WHERE id = $1", item_id)
    assert item["publisher_id"] == effective["ctx"].tenant_id
    assert item["visibility"] == "private" and item["slug"] == listing.slug
    source_version = await owner.fetchval(
        "SELECT id FROM hub_versions WHERE item_id = $1 AND version = '1.1.0'",
        effective["hub_recipe"],
    )
    assert item["forked_from_version_id"] == source_version
    published = json.loads(
        await owner.fetchval("SELECT content FROM hub_versions WHERE item_id = $1", item_id)
    )
    source = json.loads(
        await owner.fetchval("SELECT content FROM hub_versions WHERE id = $1", source_version)
    )

    def steps(doc: dict[str, Any]) -> list[Any]:
        return [
            (up["key"], op["key"], op["unit_operation"], op["version"], op["parameter_overrides"])
            for up in doc["unit_procedures"]
            for op in up["operations"]
        ]

    assert steps(published) == steps(source)
    for section in ("sampling_points", "release_specifications", "modality", "batch_size"):
        assert published[section] == source[section], section
    assert published["authors"] == [effective["ctx"].name]
    dependencies = await owner.fetchval(
        "SELECT count(*) FROM hub_dependencies d JOIN hub_versions v ON v.id = d.version_id "
        "WHERE v.item_id = $1",
        item_id,
    )
    assert dependencies > 0

    # Signed "approved for publication" on the effective revision, and audited.
    state = await recipes.get(effective["approver"], recipe_id)
    record = recipes.RecipeRecord(
        str(recipe_id), str(state.effective_revision), None, state.content
    )
    signatures = await signatures_for(effective["approver"], record)
    publication = [s for s in signatures if s.meaning == "approved for publication"]
    assert len(publication) == 1 and publication[0].valid
    event = await owner.fetchrow(
        "SELECT new_values, reason FROM audit_events WHERE tenant_id = $1 "
        "AND action = 'recipe.published' AND entity_id = $2",
        effective["ctx"].tenant_id,
        str(recipe_id),
    )
    values = json.loads(event["new_values"])
    assert values["version"] == "1.0.0" and values["signature_id"] == str(publication[0].id)
    assert event["reason"] == "share with sponsors"
    assert await owner.fetchval(
        "SELECT count(*) FROM audit_events WHERE tenant_id = $1 "
        "AND action = 'hub.version_published' AND entity_id = $2",
        effective["ctx"].tenant_id,
        str(item_id),
    )
    assert [p.version for p in await recipes.publications(effective["approver"], recipe_id)] == [
        "1.0.0"
    ]

    # A published version is immutable: the same version again is refused before signing.
    signed = await owner.fetchval("SELECT count(*) FROM signatures")
    with pytest.raises(Conflict, match="already published"):
        await recipes.publish_to_hub(
            settings, effective["approver"], recipe_id, listing, PASSWORD, "again"
        )
    assert await owner.fetchval("SELECT count(*) FROM signatures") == signed

    # Round trip: a master recipe created from the publication has the same procedure.
    again = await recipes.create_from_hub(effective["author"], item_id)
    copy = (await recipes.get(effective["author"], again)).content
    original = state.content
    for key in ("unit_procedures", "sampling_points", "release_specifications"):
        assert [
            {k: v for k, v in e.items() if k not in ("library_item_id", "acknowledged")}
            for e in copy[key]
        ] == [
            {k: v for k, v in e.items() if k not in ("library_item_id", "acknowledged")}
            for e in original[key]
        ] or key == "unit_procedures"
    assert steps(
        {
            "unit_procedures": [
                {
                    "key": up["key"],
                    "operations": [
                        {
                            "key": op["key"],
                            "unit_operation": op["unit_operation"],
                            "version": op["version"],
                            "parameter_overrides": op["parameters"],
                        }
                        for op in up["operations"]
                    ],
                }
                for up in copy["unit_procedures"]
            ]
        }
    ) == steps(source)

    # Private: another tenant cannot see it, let alone build on it.
    with pytest.raises(NotFound):
        await recipes.create_from_hub(as_actor(world.alpha, world["author"]), item_id)


async def test_publication_refusals(
    lab: dict[str, Any],
    owner: asyncpg.Connection,
    settings: Settings,
) -> None:
    author, approver = lab["author"], lab["approver"]
    draft = await recipes.create(author, "Never effective")
    with pytest.raises(Conflict, match="Only an effective recipe"):
        await recipes.publish_to_hub(settings, approver, draft, _listing(), PASSWORD, "x")

    # From scratch, effective, but without a modality or batch size.
    recipe = await recipes.create(author, "Bare recipe", "Example product")
    content = {
        "unit_procedures": [
            {
                "key": "cell_processing",
                "name": "Cell processing",
                "operations": [{"key": "activate", "library_item_id": lab["uo"], "parameters": {}}],
            }
        ],
        "formulas": [],
    }
    await recipes.save(author, recipe, content, 1)
    # Without a modality, batch size and release specification it never reaches review.
    with pytest.raises(ValidationFailed, match="not ready for review") as refused:
        await recipes.submit(settings, author, recipe, PASSWORD, "x")
    assert "modality" in refused.value.message and "batch size" in refused.value.message

    # The step uses an edited fork: publish the fork first, then the recipe refers to it.
    activation = await _platform_item(owner, "t-cell-activation")
    fork_id = await library.fork(author, activation, "1.1.0")
    fork = await library.get_library_item(author, fork_id)
    await library.edit_fork(
        author, fork_id, {**fork.content, "summary": "Our site's activation step"}
    )
    specified = reviewable(
        {
            **content,
            "unit_procedures": [
                {
                    **content["unit_procedures"][0],
                    "operations": [{"key": "activate", "library_item_id": str(fork_id)}],
                }
            ],
        },
        lab["method"],
    )
    await recipes.save(author, recipe, specified, 2)
    await _make_effective(settings, lab, recipe)
    with pytest.raises(ValidationFailed, match="not a HUB slug"):
        await recipes.publish_to_hub(
            settings, approver, recipe, _listing(slug="Not A Slug"), PASSWORD, "x"
        )
    with pytest.raises(ValidationFailed, match="publish the fork first"):
        await recipes.publish_to_hub(settings, approver, recipe, _listing(), PASSWORD, "x")
    await library.publish_fork(
        settings,
        approver,
        fork_id,
        version="7.0.0",
        changelog="Site variant",
        visibility="private",
        password=PASSWORD,
        reason="our variant",
    )
    with pytest.raises(ValidationFailed, match="not visible to its audience"):
        await recipes.publish_to_hub(
            settings, approver, recipe, _listing(visibility="public"), PASSWORD, "x"
        )
    item_id = await recipes.publish_to_hub(settings, approver, recipe, _listing(), PASSWORD, "x")
    published = json.loads(
        await owner.fetchval("SELECT content FROM hub_versions WHERE item_id = $1", item_id)
    )
    operation = published["unit_procedures"][0]["operations"][0]
    assert (operation["unit_operation"], operation["version"]) == ("t-cell-activation", "7.0.0")
    resolved = await owner.fetchval(
        "SELECT i.publisher_id FROM hub_dependencies d JOIN hub_versions v "
        "ON v.id = d.depends_on_id JOIN hub_items i ON i.id = v.item_id "
        "JOIN hub_versions mine ON mine.id = d.version_id "
        "WHERE mine.item_id = $1 AND i.kind = 'unit_operation'",
        item_id,
    )
    assert resolved == lab["ctx"].tenant_id, "the tenant's own fork, not the platform's item"


async def test_specification_in_the_designer(
    lab: dict[str, Any],
    owner: asyncpg.Connection,
    browser: Any,
) -> None:
    author = lab["author"]
    method = lab["method"]
    recipe = await recipes.create(author, "Specified")
    content = {
        "unit_procedures": [
            {
                "key": "cell_processing",
                "name": "Cell processing",
                "operations": [{"key": "activate", "library_item_id": lab["uo"], "parameters": {}}],
            }
        ],
        "formulas": [],
    }
    await recipes.save(author, recipe, content, 1)
    client = await browser("author")
    base = f"/t/{lab['ctx'].slug}/recipes/{recipe}/design"

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

    async def current() -> dict[str, Any]:
        return dict((await recipes.get(author, recipe)).content)

    page = await client.get(base)
    assert "Release specifications" in page.text and "Cell count and viability" in page.text
    ok = await act("specification", modality="car-t", batch_quantity="1", batch_unit="{dose}")
    assert ok.status_code == 200 and "Saved as revision" in ok.text
    assert (await current())["specification"] == {
        "modality": "car-t",
        "batch_size": {"quantity": 1, "unit": "{dose}"},
    }
    assert (await act("specification", modality="plasmid")).status_code == 422
    bad_size = await act("specification", modality="car-t", batch_quantity="-2", batch_unit="mL")
    assert bad_size.status_code == 422 and "above zero" in bad_size.text

    sampled = await act(
        "sample", after_operation="activate", method=str(method), volume="0.5", unit="mL"
    )
    assert sampled.status_code == 200
    [point] = (await current())["sampling_points"]
    assert point["after_operation"] == "activate" and point["method"] == "cell-count-viability"
    assert point["sample_volume"] == {"quantity": 0.5, "unit": "mL"}
    assert (
        await act("sample", after_operation="nowhere", method=str(method), volume="1", unit="mL")
    ).status_code == 422
    assert (
        await act("sample", after_operation="activate", method=lab["uo"], volume="1", unit="mL")
    ).status_code == 422
    assert (
        await act("sample", after_operation="activate", method=str(method), volume="x", unit="mL")
    ).status_code == 422

    released = await act(
        "release", result=f"{method}:viability", criterion="At least 70 %", low="70"
    )
    assert released.status_code == 200
    [spec] = (await current())["release_specifications"]
    assert spec["limits"] == {"low": 70} and spec["unit"] == "%"
    assert (await act("release", result=f"{method}:nothing", criterion="x")).status_code == 422
    inverted = await act(
        "release", result=f"{method}:viability", criterion="x", low="90", high="80"
    )
    assert inverted.status_code == 422 and "low limit is above the high limit" in inverted.text
    assert (await act("release", result=f"{method}:viability", criterion=" ")).status_code == 422
    # Replacing the same attribute keeps one line.
    await act("release", result=f"{method}:viability", criterion="At least 80 %", low="80")
    assert [s["acceptance_criterion"] for s in (await current())["release_specifications"]] == [
        "At least 80 %"
    ]
    changes = await recipes.compare(
        author, recipe, 3, (await recipes.get(author, recipe)).current_revision
    )
    assert {c.path for c in changes} == {
        "sampling_points[activate_cell_count_viability]",
        "release_specifications[viability]",
    }

    # The sampling point goes with its step; removals are revisions too.
    assert (await act("unrelease", attribute="viability")).status_code == 200
    assert (await act("unrelease", attribute="viability")).status_code == 422
    await act("remove", step="activate")
    after = await current()
    assert after["sampling_points"] == [] and after["release_specifications"] == []

    # The same checks hold for content saved through the API.
    state = await recipes.get(author, recipe)
    for bad in (
        {"specification": {"modality": "car-t", "batch_size": {"quantity": 1, "unit": "litre"}}},
        {"release_specifications": [{"attribute": "viability", "library_item_id": str(method)}]},
        {
            "release_specifications": [
                {
                    "attribute": "viability",
                    "library_item_id": str(method),
                    "acceptance_criterion": "x",
                    "limits": {"low": "high"},
                }
            ]
        },
        {
            "sampling_points": [
                {
                    "key": "s",
                    "after_operation": "none",
                    "library_item_id": str(method),
                    "sample_volume": {"quantity": 1, "unit": "mL"},
                }
            ]
        },
    ):
        with pytest.raises(ValidationFailed):
            await recipes.save(author, recipe, {**content, **bad}, state.current_revision)


async def test_publish_form_on_the_recipe_page(
    effective: dict[str, Any], browser: Any, owner: asyncpg.Connection
) -> None:
    slug, recipe_id = effective["ctx"].slug, effective["recipe"]
    approver = await browser("approver")
    page = (await approver.get(f"/t/{slug}/recipes/{recipe_id}")).text
    assert "Publish effective revision 2 to the HUB" in page
    assert '<svg class="flow"' in page and "T-cell activation" in page, "the flow diagram"
    assert "effective since" in page
    form = {
        "_csrf_token": approver.csrf,
        "slug": f"form-car-t-{uuid.uuid4().hex[:6]}",
        "version": "1.0.0",
        "summary": "Our CAR-T process",
        "description": "Example defaults to adapt and validate.",
        "changelog": "Initial release.",
        "tags": "car-t, autologous",
        "licence": "CC-BY-4.0",
        "visibility": "private",
        "reason": "share with a sponsor",
    }
    wrong = await approver.send(
        "POST", f"/t/{slug}/recipes/{recipe_id}/publish", data={**form, "password": "nope-nope"}
    )
    assert wrong.status_code == 401 and "password is incorrect" in wrong.text
    assert f'value="{form["slug"]}"' in wrong.text, "the form keeps what was typed"
    done = await approver.send(
        "POST", f"/t/{slug}/recipes/{recipe_id}/publish", data={**form, "password": PASSWORD}
    )
    assert done.status_code == 303
    item_id = done.headers["location"].rsplit("/", 1)[-1]
    assert (
        await owner.fetchval("SELECT slug FROM hub_items WHERE id = $1", uuid.UUID(item_id))
        == form["slug"]
    )
    listed = (await approver.get(f"/t/{slug}/recipes/{recipe_id}")).text
    assert f"{form['slug']} 1.0.0" in listed and 'value="1.1.0"' in listed
    author = await browser("author")
    assert (
        await author.send(
            "POST", f"/t/{slug}/recipes/{recipe_id}/publish", data={**form, "password": PASSWORD}
        )
    ).status_code == 403


@pytest.mark.parametrize(
    "bad",
    [
        {"unit_procedures": [{"key": ["x"], "name": "x", "operations": []}]},
        {"unit_procedures": [{"key": "up", "name": "x", "operations": {"a": 1}}]},
        {"unit_procedures": [{"key": "up", "operations": [{"key": {"k": 1}}]}]},
        {"unit_procedures": [{"key": "up", "operations": [{"key": "s", "parameters": [1]}]}]},
        {"unit_procedures": [], "formulas": {"name": "x"}},
        {"unit_procedures": [], "formulas": [{"name": "x", "overrides": ["a.b"]}]},
        {"unit_procedures": [], "specification": ["car-t"]},
        {"unit_procedures": [], "sampling_points": [{"key": "s", "after_operation": ["a"]}]},
        {"unit_procedures": [], "release_specifications": [{"attribute": ["viability"]}]},
        {"unit_procedures": [], "release_specifications": {"viability": 1}},
    ],
)
async def test_malformed_content_is_a_clear_422(
    bad: dict[str, Any], world: World, browser: Any
) -> None:
    author = await browser("author")
    created = await author.send("POST", "/api/v1/t/alpha/recipes", json={"name": "Malformed"})
    url = f"/api/v1/t/alpha/recipes/{created.json()['id']}"
    response = await author.send("PUT", url + "/content", json={"base_revision": 1, "content": bad})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"]
    assert len((await author.get(url + "/revisions")).json()) == 1, "nothing was saved"


async def test_revisions_keep_the_unit_operation_content_they_pinned(
    synced: Any, owner: asyncpg.Connection, settings: Settings, world: World, browser: Any
) -> None:
    """An upgrade in the library does not change what a saved (even effective) revision
    means; adopting it is an explicit edit whose diff shows the new ranges."""
    lab = await new_lab(world)
    author, ctx = lab["author"], lab["ctx"]
    item = await _platform_item(owner, "t-cell-activation")
    await library.install(author, item, "1.0.0")
    entry = next(e for e in await library.list_library(author) if e.hub_item_id == item)
    step = {
        "key": "activate",
        "library_item_id": str(entry.id),
        "parameters": {"activation_duration": 28},
        "acknowledged": {"activation_duration": "site data"},
    }
    content = reviewable(
        {"unit_procedures": [{"key": "up", "name": "Cell processing", "operations": [step]}]},
        await viability(owner, ctx),
    )
    recipe = await recipes.create(author, "Pinned")
    await recipes.save(author, recipe, content, 1)
    saved = (await recipes.get(author, recipe)).content
    pin = saved["unit_procedures"][0]["operations"][0]["content_hash"]
    assert (
        pin == entry.content_hash
        and saved["unit_procedures"][0]["operations"][0]["version"] == "1.0.0"
    )
    await _make_effective(settings, lab, recipe)

    await library.upgrade(author, entry.id, "1.1.0", "wider activation window")
    state = await recipes.get(author, recipe)
    assert state.content == saved, "the revision still pins 1.0.0"
    kept = await recipes.pinned_contents(author, state.content)
    assert kept[pin].version == "1.0.0"
    # Values are checked against the pinned ranges (1.0.0: PAR 20-30 h), not the library's.
    longer = json.loads(json.dumps(saved))
    longer["unit_procedures"][0]["operations"][0]["parameters"]["activation_duration"] = 40
    with pytest.raises(ValidationFailed, match="proven acceptable range 20-30"):
        await recipes.save(author, recipe, longer, 2)
    # The printable record and the designer show the pinned version and the change waiting.
    client = await browser("author")
    printed = (await client.get(f"/t/{ctx.slug}/recipes/{recipe}/print")).text
    assert "t-cell-activation v1.0.0" in printed
    designer = await client.get(f"/t/{ctx.slug}/recipes/{recipe}/design")
    assert "library: v1.1.0" in designer.text and "Adopt all library changes" in designer.text
    # Publishing an effective revision that pins content the library no longer holds is
    # refused: its HUB references would not mean what was approved.
    with pytest.raises(ValidationFailed, match="adopt the library"):
        await recipes.publish_to_hub(settings, lab["approver"], recipe, _listing(), PASSWORD, "x")

    adopted = await client.send(
        "POST",
        f"/t/{ctx.slug}/recipes/{recipe}/design/adopt",
        data={"_csrf_token": client.csrf, "base_revision": "2", "step": "activate"},
    )
    assert adopted.status_code == 200 and "Saved as revision 3" in adopted.text
    after = (await recipes.get(author, recipe)).content["unit_procedures"][0]["operations"][0]
    assert after["version"] == "1.1.0" and after["content_hash"] != pin
    changes = {c.path: (c.old, c.new) for c in await recipes.compare(author, recipe, 2, 3)}
    where = "unit_procedures[up].operations[activate]"
    assert changes[f"{where}.version"] == ("1.0.0", "1.1.0")
    assert changes[f"{where}.ranges.activation_duration.proven_acceptable_range.high"] == (30, 48)
    # Now 40 h is inside the adopted ranges (outside the normal range: with a reason).
    after_content = (await recipes.get(author, recipe)).content
    after_content["unit_procedures"][0]["operations"][0]["parameters"]["activation_duration"] = 40
    assert await recipes.save(author, recipe, after_content, 3) == 4
    again = await client.send(
        "POST",
        f"/t/{ctx.slug}/recipes/{recipe}/design/adopt",
        data={"_csrf_token": client.csrf, "base_revision": "4"},
    )
    assert again.status_code == 422 and "Nothing to adopt" in again.text


async def test_a_pin_must_be_content_the_library_item_had(
    lab: dict[str, Any], owner: asyncpg.Connection
) -> None:
    author = lab["author"]
    recipe = await recipes.create(author, "Forged pin")
    for forged in ("0" * 64, "not-a-hash"):
        content = {
            "unit_procedures": [
                {
                    "key": "up",
                    "name": "x",
                    "operations": [
                        {"key": "a", "library_item_id": lab["uo"], "content_hash": forged}
                    ],
                }
            ]
        }
        with pytest.raises(ValidationFailed, match="is not a content its library item"):
            await recipes.save(author, recipe, content, 1)
    # Pinned contents are kept for ever.
    await recipes.save(
        author,
        recipe,
        {
            "unit_procedures": [
                {
                    "key": "up",
                    "name": "x",
                    "operations": [{"key": "a", "library_item_id": lab["uo"]}],
                }
            ]
        },
        1,
    )
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await owner.execute(
            "UPDATE pinned_contents SET version = 'x' WHERE tenant_id = $1", lab["ctx"].tenant_id
        )
