"""Receiving a tech-transfer package, against the real database, blob store and HUB: the gap
analysis in a tenant that has nothing, one with identical items, one with another version;
equipment coverage; materials mapped and not; mapping choices valid and refused (nothing
written); the import as a draft with lineage and remapped pins, its approval and a batch of
it (the round trip); a later package as a new revision with its diff; another tenant's
package; two imports at once; the audit events."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest
import yaml

from opencdmo.equipment import service as equipment
from opencdmo.errors import Conflict, NotFound, ValidationFailed
from opencdmo.inventory import service as inventory
from opencdmo.recipes import documents as recipe_document
from opencdmo.recipes import names as recipe_names
from opencdmo.recipes import service as recipes
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.storage.uploads import Upload
from opencdmo.tenancy import service as tenancy
from opencdmo.transfer import (
    _capability,
    _gap_model,
    export,
    gaps,
    importing,
    keys,
    mapping,
    names,
    receive,
)
from opencdmo.transfer.mapping import Given
from tests.conftest import PASSWORD, World, member_as
from tests.integration.batch_world import batch_of, effective, new_plant
from tests.integration.conftest import new_lab, reviewable
from tests.integration.job_worker import job_worker
from tests.integration.test_cli import cli_env, run
from tests.integration.test_recipes import design

__all__ = ["cli_env", "job_worker"]

HUB_CONTENT = Path(__file__).parents[2] / "hub_content"
MATERIALS = (
    "anti-cd3-cd28-activation-beads",
    "gas-permeable-culture-bag",
    "recombinant-human-il-2",
    "serum-free-t-cell-medium",
)


async def _stores(world: World, plant: Any) -> TenantContext:
    """A materials handler of the plant (who creates materials)."""
    ctx = plant.ctx if hasattr(plant, "ctx") else plant["ctx"]
    await tenancy.add_member(ctx, world["handler"].user_id, ["materials_handler"])
    return await member_as(ctx, world["handler"])


async def _send(settings: Settings, lab: dict[str, Any], recipe: UUID | None = None) -> Any:
    """Export the lab's recipe (made effective first when none is given)."""
    if recipe is None:
        recipe = await recipes.create(lab["author"], "Transferred process", "CAR-T")
        body = reviewable(design(lab["uo"]), lab["method"])
        await recipes.save(lab["author"], recipe, body, 1)
        await recipes.submit(settings, lab["author"], recipe, PASSWORD, "ready")
        await recipes.approve(
            settings, lab["approver"], recipe, PASSWORD, "ok", approvers_required=1
        )
        await recipes.make_effective(settings, lab["approver"], recipe, PASSWORD, "in force")
    return await export.export_package(settings, lab["approver"], recipe, PASSWORD, "to a CDMO")


async def _receive(
    settings: Settings, world: World, sender: TenantContext, made: Any, receiver: TenantContext
) -> UUID:
    """The package uploaded to the receiver as another installation's would be: its sender
    key trusted there by an administrator, then verified and kept (``receive.upload``)."""
    admin = await _receiver_admin(world, receiver)
    public = await keys.public_key(sender)
    assert public is not None
    if not await keys.trusted(admin, public.fingerprint):
        await keys.trust(admin, public.pem, public.fingerprint, sender.name)
    path = receive.temporary(settings)
    await asyncio.to_thread(path.write_bytes, await export.package_bytes(sender, made.package))
    row = await receive.upload(settings, admin, path, uuid.uuid4())
    return row.id


async def _receiver_admin(world: World, receiver: TenantContext) -> TenantContext:
    """Someone of the world who is no member of the receiver yet, made its administrator and
    engineer there (the receivers' own people have other roles)."""
    wanted = ["tenant_admin", "process_engineer"]
    members = {m.user_id: set(m.roles) for m in await tenancy.list_members(receiver)}
    candidates = ("bare", "outsider", "viewer", "handler")
    key = next((k for k in candidates if members.get(world[k].user_id) == set(wanted)), None)
    if key is None:
        key = next(k for k in candidates if world[k].user_id not in members)
        await tenancy.add_member(receiver, world[key].user_id, wanted)
    return await member_as(receiver, world[key])


async def _events(owner: asyncpg.Connection, tenant: UUID, action: str) -> list[dict[str, Any]]:
    rows = await owner.fetch(
        "SELECT new_values FROM audit_events WHERE tenant_id = $1 AND action = $2 ORDER BY seq",
        tenant,
        action,
    )
    return [json.loads(r["new_values"]) for r in rows]


async def _count(owner: asyncpg.Connection, table: str, tenant: UUID) -> int:
    found: int = await owner.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant)
    return found


async def _status(owner: asyncpg.Connection, package: UUID) -> str:
    found: str = await owner.fetchval(
        "SELECT status FROM transfer_packages WHERE id = $1 AND direction = 'received'", package
    )
    return found


async def _uncovered(owner: asyncpg.Connection, tenant: UUID) -> list[str]:
    """The imports and mapping choices with no audit event that vouches for them."""
    checks = [c for c in names.AUDIT_COVERAGE if c.label in ("transfer import", "transfer mapping")]
    assert len(checks) == 2
    return [f"{c.label} {r['id']}" for c in checks for r in await owner.fetch(c.sql, tenant)]


def _by_ref(report: gaps.GapReport) -> dict[str, Any]:
    return {g.ref: g for g in (*report.items, *report.equipment, *report.materials)}


async def test_gaps_in_a_tenant_with_nothing(
    lab: dict[str, Any], settings: Settings, world: World, owner: asyncpg.Connection
) -> None:
    made = await _send(settings, lab)
    empty = await new_lab(world)
    package = await _receive(settings, world, lab["ctx"], made, empty["ctx"])
    report = await gaps.analyse(settings, empty["author"], package)
    found = _by_ref(report)
    assert {i.ref: i.status for i in report.items} == {
        "method:cell-count-viability@1.1.0": "on_hub",
        "unit_operation:t-cell-activation@1.1.0": "on_hub",
    }
    assert "1.1.0" in found["unit_operation:t-cell-activation@1.1.0"].hub_versions
    incubator = found["co2-incubator"]
    assert incubator.units == [] and not incubator.resolved
    # The class states "Temperature control 30-40 °C"; the step's incubation temperature has
    # the proven acceptable range 36-38 °C.
    assert incubator.verdict == "covers"
    assert (
        "activate: Incubation temperature 36-38 Cel is inside the temperature range 30-40 Cel"
        in (incubator.compared)
    )
    assert sorted(m.slug for m in report.materials) == list(MATERIALS)
    assert all(m.material_id is None and not m.resolved for m in report.materials)
    assert not report.resolved and report.previous is None and report.changes == []
    # Read-only: nothing written, the package still verified.
    assert await _count(owner, "transfer_mappings", empty["ctx"].tenant_id) == 0
    assert await _status(owner, package) == "verified"
    csv = gaps.csv_of(report)
    assert csv.splitlines()[0] == "Kind,Reference,Name,Status,Why,Resolution"
    assert "unit_operation,unit_operation:t-cell-activation@1.1.0," in csv


async def test_gaps_with_identical_items_and_another_version(
    lab: dict[str, Any], settings: Settings, world: World, owner: asyncpg.Connection
) -> None:
    made = await _send(settings, lab)
    same = await new_plant(world, owner, settings)
    older = await new_plant(world, owner, settings, activation="1.0.0")
    await equipment.register(same.ctx, equipment.Registration("INC-1", "co2-incubator", "S1"))
    await inventory.create_material(
        await _stores(world, same), MATERIALS[0], "Beads", "reagent", "{vial}"
    )
    for plant in (same, older):
        package = await _receive(settings, world, lab["ctx"], made, plant.ctx)
        report = await gaps.analyse(settings, plant.author, package)
        found = _by_ref(report)
        assert found["method:cell-count-viability@1.1.0"].status == "identical"
        activation = found["unit_operation:t-cell-activation@1.1.0"]
        if plant is same:
            assert activation.status == "identical"
            assert str(activation.library_id) == plant.uo
            incubator = found["co2-incubator"]
            assert [(u.code, u.site, u.status) for u in incubator.units] == [
                ("INC-1", "S1", incubator.units[0].status)
            ]
            assert incubator.resolved
            assert found[MATERIALS[0]].material_code == MATERIALS[0]  # mapped by its code
            assert not found[MATERIALS[1]].resolved
        else:
            assert activation.status == "other_version"
            assert [v for _, v in activation.other_versions] == ["1.0.0"]
            assert activation.reason == "The library holds version 1.0.0"


def _class(slug: str) -> list[str]:
    document = yaml.safe_load((HUB_CONTENT / "equipment_classes" / slug / "1.0.0.yaml").read_text())
    return list(document["capabilities"])


def test_equipment_coverage_covers_does_not_or_is_unknown() -> None:
    activation = yaml.safe_load(
        (HUB_CONTENT / "unit_operations" / "t-cell-activation" / "1.1.0.yaml").read_text()
    )
    steps = [("activate", activation)]
    for slug, verdict in (
        ("co2-incubator", "covers"),  # 30-40 °C against 36-38 °C
        ("benchtop-centrifuge", "does_not_cover"),  # 4-25 °C against 36-38 °C
        ("biosafety-cabinet", "unknown"),  # states no temperature or working volume range
    ):
        compared = _capability.compare(steps, _capability.ranges(_class(slug)))
        assert _capability.verdict(compared) == verdict, slug
    # A class whose units here do not cover the steps' ranges is a gap until someone chooses.
    unit = _gap_model.Unit("CF-1", "Centrifuge", "S1", "available")
    short = _gap_model.EquipmentGap(
        "benchtop-centrifuge", "Benchtop centrifuge", ["activate"], [unit], "does_not_cover", []
    )
    assert not short.resolved
    assert replace(short, verdict="covers").resolved and replace(short, verdict="unknown").resolved
    assert not replace(short, units=[], verdict="covers").resolved
    volume = _capability.ranges(["Working volume 0.5-2 L"])
    assert volume == [_capability.Range("working volume", 500, 2000, "mL")]
    low = {
        "phases": [
            {
                "parameters": [
                    {
                        "key": "culture_volume",
                        "unit": "mL",
                        "proven_acceptable_range": {"low": 100, "high": 300},
                    }
                ]
            }
        ]
    }
    assert _capability.verdict(_capability.compare([("s", low)], volume)) == "does_not_cover"


async def test_mapping_choices_are_checked_and_nothing_is_written_when_refused(
    lab: dict[str, Any], settings: Settings, world: World, owner: asyncpg.Connection
) -> None:
    made = await _send(settings, lab)
    empty = await new_lab(world)
    tenant = empty["ctx"].tenant_id
    package = await _receive(settings, world, lab["ctx"], made, empty["ctx"])
    author = empty["author"]
    uo_ref = "unit_operation:t-cell-activation@1.1.0"
    refused = [
        (Given("item", uo_ref, "use", uuid.uuid4()), "no unit operation of that id"),
        (Given("item", "unit_operation:nothing@1.0.0", "use", uuid.uuid4()), "pins no item"),
        (Given("item", uo_ref, "burn"), "resolved by use, install or fork"),
        (Given("recipe", uo_ref, "use"), "gap_kind: must be one of"),
        (Given("item", uo_ref, "install", target="9.9.9"), "the HUB offers t-cell-activation"),
        (Given("equipment_class", "co2-incubator", "use", target="no-such"), "no equipment class"),
        (Given("material", MATERIALS[0], "use", uuid.uuid4()), "no material of that id"),
        (Given("material", "unobtainium", "use", uuid.uuid4()), "uses no material"),
    ]
    for given, message in refused:
        with pytest.raises(ValidationFailed, match=message):
            await mapping.choose(settings, author, package, given)
    assert await _count(owner, "transfer_mappings", tenant) == 0
    assert await _status(owner, package) == "verified"
    assert await _events(owner, tenant, "transfer.gap_mapped") == []
    # A method's library id for a unit operation gap: the wrong kind.
    await mapping.choose(settings, author, package, Given("item", uo_ref, "install"))
    report = await gaps.analyse(settings, author, package)
    installed = _by_ref(report)[uo_ref].mapping
    assert installed is not None and installed.resolution == "install"
    assert installed.target == "1.1.0"
    method_ref = "method:cell-count-viability@1.1.0"
    with pytest.raises(ValidationFailed, match="no method of that id"):
        await mapping.choose(
            settings, author, package, Given("item", method_ref, "use", installed.target_id)
        )
    assert await _status(owner, package) == "in_mapping"
    events = await _events(owner, tenant, "transfer.gap_mapped")
    assert [(e["ref"], e["resolution"], e["status"]) for e in events] == [
        (uo_ref, "install", "in_mapping")
    ]
    installs = await _events(owner, tenant, "library.installed")
    # Installed with its dependencies (its equipment classes and materials).
    assert [e["slug"] for e in installs if e["as_dependency_of"] is None] == ["t-cell-activation"]


async def _map_the_rest(settings: Settings, world: World, plant: Any, package: UUID) -> UUID:
    """Register an incubator, create the materials (three by the HUB slug as code, one
    mapped by choice)."""
    await equipment.register(plant.ctx, equipment.Registration("INC-1", "co2-incubator", "S1"))
    stores = await _stores(world, plant)
    for slug in MATERIALS[:3]:
        await inventory.create_material(stores, slug, slug, "reagent", "mL")
    medium = await inventory.create_material(stores, "MED-01", "T-cell medium", "reagent", "mL")
    given = Given("material", MATERIALS[3], "use", medium.id)
    await mapping.choose(settings, plant.author, package, given)
    return medium.id


async def test_round_trip_import_approve_batch_and_a_later_package(
    lab: dict[str, Any], settings: Settings, world: World, owner: asyncpg.Connection
) -> None:
    made = await _send(settings, lab)
    plant = await new_plant(world, owner, settings)
    tenant = plant.ctx.tenant_id
    package = await _receive(settings, world, lab["ctx"], made, plant.ctx)
    with pytest.raises(Conflict, match="not resolved yet"):
        await importing.import_package(settings, plant.author, package)
    medium = await _map_the_rest(settings, world, plant, package)
    done = await importing.import_package(settings, plant.author, package)
    assert done.new_recipe and done.revision == 2
    draft = await recipes.get(plant.author, done.recipe_id)
    assert draft.status == "draft" and draft.name == "Transferred process"
    sent = made.manifest.recipe
    sender = await recipes.get(lab["author"], UUID(sent.id))
    # The sender's content, the pins pointing at the receiver's own library items.
    expected = json.loads(json.dumps(sender.content))
    step = expected["unit_procedures"][0]["operations"][0]
    step["library_item_id"] = plant.uo
    expected["release_specifications"][0]["library_item_id"] = plant.method
    assert draft.content == expected
    lineage = await owner.fetchrow(
        "SELECT * FROM transfer_imports WHERE tenant_id = $1 AND package_id = $2", tenant, package
    )
    assert lineage["recipe_id"] == done.recipe_id and lineage["revision"] == 2
    assert str(lineage["sender_tenant_id"]) == str(lab["ctx"].tenant_id)
    assert (str(lineage["sender_recipe_id"]), lineage["sender_revision"]) == (
        sent.id,
        sent.revision,
    )
    assert lineage["content_hash"] == sent.content_hash
    assert [m["ref"] for m in json.loads(lineage["mapping"])] == [MATERIALS[3]]
    assert await _status(owner, package) == "imported"
    imported = await _events(owner, tenant, "transfer.package_imported")
    assert [(e["recipe_id"], e["new_recipe"], e["content_hash"]) for e in imported] == [
        (str(done.recipe_id), True, sent.content_hash)
    ]
    with pytest.raises(Conflict, match="imported already"):
        await importing.import_package(settings, plant.author, package)
    assert await _uncovered(owner, tenant) == []
    # The receiver's own lifecycle, then a batch of it.
    await effective(settings, plant, done.recipe_id)
    batch = await batch_of(plant, recipe=done.recipe_id)
    assert batch.id is not None
    # A later package of the same sender recipe: a diff, and a new revision of the import.
    revised = reviewable(design(lab["uo"], density=1.2), lab["method"])
    current = (await recipes.get(lab["author"], UUID(sent.id))).current_revision
    await recipes.save(lab["author"], UUID(sent.id), revised, current)
    await recipes.submit(settings, lab["author"], UUID(sent.id), PASSWORD, "ready")
    await recipes.approve(
        settings, lab["approver"], UUID(sent.id), PASSWORD, "ok", approvers_required=1
    )
    await recipes.make_effective(settings, lab["approver"], UUID(sent.id), PASSWORD, "in force")
    later = await _send(settings, lab, UUID(sent.id))
    second = await _receive(settings, world, lab["ctx"], later, plant.ctx)
    report = await gaps.analyse(settings, plant.author, second)
    assert report.previous is not None and report.previous.recipe_id == done.recipe_id
    assert report.changes == [
        "T-cell activation with anti-CD3/CD28 beads: Seeding density 1 × 10⁶ cells/mL → "
        "1.2 × 10⁶ cells/mL"
    ]
    given = Given("material", MATERIALS[3], "use", medium)
    await mapping.choose(settings, plant.author, second, given)
    again = await importing.import_package(settings, plant.author, second)
    assert (again.recipe_id, again.new_recipe) == (done.recipe_id, False)
    assert again.revision > done.revision
    newer = await recipes.get(plant.author, done.recipe_id)
    assert newer.content["unit_procedures"][0]["operations"][0]["parameters"] == {
        "seeding_density": 1.2
    }


async def test_two_imports_at_once_make_one_recipe(
    lab: dict[str, Any],
    settings: Settings,
    world: World,
    owner: asyncpg.Connection,
    browser: Any,
) -> None:
    """Two import requests at the same moment, through the app: one 201, one clear 409."""
    made = await _send(settings, lab)
    plant = await new_plant(world, owner, settings)
    package = await _receive(settings, world, lab["ctx"], made, plant.ctx)
    await _map_the_rest(settings, world, plant, package)
    before = await _count(owner, "master_recipes", plant.ctx.tenant_id)
    first, second = await browser("author"), await browser("author")
    url = f"/api/v1/t/{plant.ctx.slug}/transfer/packages/{package}/import"
    answers = await asyncio.gather(
        first.send("POST", url, json={}), second.send("POST", url, json={})
    )
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409)
    assert refused.json()["error"]["message"] == "This package was imported already."
    assert await _count(owner, "master_recipes", plant.ctx.tenant_id) == before + 1
    assert await _count(owner, "transfer_imports", plant.ctx.tenant_id) == 1
    assert len(await _events(owner, plant.ctx.tenant_id, "transfer.package_imported")) == 1


async def test_another_tenants_package_is_not_found(
    lab: dict[str, Any], settings: Settings, world: World, owner: asyncpg.Connection
) -> None:
    made = await _send(settings, lab)
    plant = await new_plant(world, owner, settings)
    package = await _receive(settings, world, lab["ctx"], made, plant.ctx)
    other = await new_lab(world)
    for call in (
        gaps.analyse(settings, other["author"], package),
        mapping.choose(settings, other["author"], package, Given("material", MATERIALS[0], "use")),
        importing.import_package(settings, other["author"], package),
        # The sender's own package id is a sent package, not one received.
        gaps.analyse(settings, lab["author"], made.package.id),
    ):
        with pytest.raises(NotFound, match="No such transfer package"):
            await call


async def test_the_report_through_the_api_the_page_and_csv(
    lab: dict[str, Any],
    settings: Settings,
    world: World,
    owner: asyncpg.Connection,
    browser: Any,
) -> None:
    made = await _send(settings, lab)
    plant = await new_plant(world, owner, settings)
    package = await _receive(settings, world, lab["ctx"], made, plant.ctx)
    author = await browser("author")
    api = f"/api/v1/t/{plant.ctx.slug}/transfer/packages/{package}"
    answer = await author.get(api + "/gaps")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "verified" and body["resolved"] is False
    assert {g["ref"]: g["status"] for g in body["gaps"]}["co2-incubator"] == "no_unit"
    # Bad input: a clear 4xx, nothing written.
    for data, status in (
        ({"gap_kind": "material", "ref": MATERIALS[0], "resolution": "use"}, 422),
        ({"gap_kind": "material", "ref": MATERIALS[0], "resolution": "burn"}, 422),
        ({"gap_kind": "material", "ref": MATERIALS[0], "resolution": "use", "x": 1}, 422),
        ({"gap_kind": "material"}, 422),
    ):
        refused = await author.send("POST", api + "/mappings", json=data)
        assert refused.status_code == status, refused.text
        assert refused.json()["error"]["message"]
    assert await _count(owner, "transfer_mappings", plant.ctx.tenant_id) == 0
    blocked = await author.send("POST", api + "/import", json={})
    assert blocked.status_code == 409 and "not resolved yet" in blocked.json()["error"]["message"]
    chosen = await author.send(
        "POST",
        api + "/mappings",
        json={
            "gap_kind": "equipment_class",
            "ref": "co2-incubator",
            "resolution": "use",
            "target": "co2-incubator",
        },
    )
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["status"] == "in_mapping"
    form = f"/t/{plant.ctx.slug}/transfer/packages/{package}"
    bad = {"gap_kind": "material", "ref": MATERIALS[1], "resolution": "use", "target_id": "x"}
    shown = await author.send("POST", form + "/mappings", data={**bad, "_csrf_token": author.csrf})
    assert shown.status_code == 422 and "target_id: not an id." in shown.text
    refused = await author.send("POST", form + "/import", data={"_csrf_token": author.csrf})
    assert refused.status_code == 409 and "gap(s) are not resolved yet" in refused.text
    assert await _count(owner, "transfer_mappings", plant.ctx.tenant_id) == 1
    page = await author.get(f"/t/{plant.ctx.slug}/transfer/packages/{package}/gaps")
    assert page.status_code == 200, page.text
    assert "Gap report: Transferred process" in page.text
    assert "36-38 Cel is inside the temperature range 30-40 Cel" in page.text
    csv = await author.get(f"/t/{plant.ctx.slug}/transfer/packages/{package}/gaps.csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "equipment_class,co2-incubator," in csv.text
    # A cell a spreadsheet would run is written as text.
    report = await gaps.analyse(settings, plant.author, package)
    hostile = replace(report, materials=[gaps.MaterialGap("=HYPERLINK(1)", None, None)])
    assert "'=HYPERLINK(1)" in gaps.csv_of(hostile)


async def test_forks_of_the_senders_content_keep_the_pins(
    lab: dict[str, Any], settings: Settings, world: World, owner: asyncpg.Connection
) -> None:
    made = await _send(settings, lab)
    empty = await new_lab(world)
    tenant, author = empty["ctx"].tenant_id, empty["author"]
    package = await _receive(settings, world, lab["ctx"], made, empty["ctx"])
    refs = ("unit_operation:t-cell-activation@1.1.0", "method:cell-count-viability@1.1.0")
    for ref in refs:
        await mapping.choose(settings, author, package, Given("item", ref, "fork"))
    await mapping.choose(
        settings,
        author,
        package,
        Given("equipment_class", "co2-incubator", "use", target="co2-incubator"),
    )
    stores = await _stores(world, empty)
    for slug in MATERIALS:
        await inventory.create_material(stores, slug, slug, "reagent", "mL")
    report = await gaps.analyse(settings, author, package)
    forks = {i.ref: i for i in report.items}
    assert all(forks[r].status == "identical" for r in refs)  # the forks hold the content
    assert report.resolved
    done = await importing.import_package(settings, author, package)
    draft = await recipes.get(author, done.recipe_id)
    sender = await recipes.get(lab["author"], UUID(made.manifest.recipe.id))
    expected = json.loads(json.dumps(sender.content))
    step = expected["unit_procedures"][0]["operations"][0]
    step["library_item_id"] = str(forks[refs[0]].mapping.target_id)
    expected["release_specifications"][0]["library_item_id"] = str(forks[refs[1]].mapping.target_id)
    assert draft.content == expected  # the same pins: the sender's content hashes
    forked = await _events(owner, tenant, "library.forked")
    assert sorted(e["content_hash"] for e in forked) == sorted(
        i["content_hash"] for i in (await gaps.analyse(settings, author, package)).contents.items
    )
    assert {(e["from_package"], e["sender_tenant_id"]) for e in forked} == {
        (str(package), str(lab["ctx"].tenant_id))
    }
    assert await _uncovered(owner, tenant) == []


async def test_the_packages_documents_come_with_the_import(
    lab: dict[str, Any], settings: Settings, world: World, owner: asyncpg.Connection
) -> None:
    """Each document of the package is stored at the receiver (the same bytes, checked
    against the signed SHA-256) and attached to the draft with its event naming the package;
    a later package attaches only what the recipe does not hold already."""
    sop = b"%PDF-1.7\n" + b"expansion steps " * 4096
    report = b"%PDF-1.7\n" + b"development report " * 512
    first = await _send(settings, lab)
    recipe = UUID(first.manifest.recipe.id)
    await recipe_document.add_document(
        lab["author"], recipe, Upload("sop.pdf", "application/pdf", sop), "Expansion SOP", "sop"
    )
    made = await _send(settings, lab, recipe)
    plant = await new_plant(world, owner, settings)
    tenant = plant.ctx.tenant_id
    package = await _receive(settings, world, lab["ctx"], made, plant.ctx)
    await _map_the_rest(settings, world, plant, package)
    stages: set[str] = set()
    done = await importing.import_package(
        settings, plant.author, package, lambda stage, _d, _t: stages.add(stage)
    )
    assert stages == {"verify", "documents"}
    held = await recipe_document.documents(plant.author, done.recipe_id)
    assert [(d.row.title, d.row.kind, d.file.filename) for d in held] == [
        ("Expansion SOP", "sop", "sop.pdf")
    ]
    _, stream = await recipe_document.open_document(plant.author, done.recipe_id, held[0].row.id)
    with stream:
        assert await asyncio.to_thread(stream.read) == sop
    added = await _events(owner, tenant, "recipe.document_added")
    assert [(e["title"], e["from_package"]) for e in added] == [("Expansion SOP", str(package))]
    imported = await _events(owner, tenant, "transfer.package_imported")
    assert [d["title"] for d in imported[0]["documents"]] == ["Expansion SOP"]
    # A later package: the SOP is held already, the report is new.
    await recipe_document.add_document(
        lab["author"],
        recipe,
        Upload("report.pdf", "application/pdf", report),
        "Development report",
        "development_report",
    )
    later = await _send(settings, lab, recipe)
    second = await _receive(settings, world, lab["ctx"], later, plant.ctx)
    await mapping.choose(
        settings,
        plant.author,
        second,
        Given("material", MATERIALS[3], "use", await _medium(owner, tenant)),
    )
    again = await importing.import_package(settings, plant.author, second)
    assert again.recipe_id == done.recipe_id
    titles = [d.row.title for d in await recipe_document.documents(plant.author, done.recipe_id)]
    assert sorted(titles) == ["Development report", "Expansion SOP"]
    added = await _events(owner, tenant, "recipe.document_added")
    assert [(e["title"], e["from_package"]) for e in added][1:] == [
        ("Development report", str(second))
    ]
    uncovered = [
        c.label for c in recipe_names.AUDIT_COVERAGE for _ in await owner.fetch(c.sql, tenant)
    ]
    assert uncovered == []


async def _medium(owner: asyncpg.Connection, tenant: UUID) -> UUID:
    found: UUID = await owner.fetchval(
        "SELECT id FROM materials WHERE tenant_id = $1 AND code = 'MED-01'", tenant
    )
    return found


async def test_cli_import_maps_and_imports(
    lab: dict[str, Any],
    settings: Settings,
    world: World,
    owner: asyncpg.Connection,
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """URS-TTIMP-03: ``transfer import`` from a file to a draft: the gaps left listed (exit
    3), a mapping file's choices saved, the import with its progress bars (exit 0); a
    malformed mapping file is usage (2), a refused choice 1, and neither changes anything."""
    made = await _send(settings, lab)
    plant = await new_plant(world, owner, settings)
    tenant = plant.ctx.tenant_id
    public = await keys.public_key(lab["ctx"])
    assert public is not None
    admin = await _receiver_admin(world, plant.ctx)
    await keys.trust(admin, public.pem, public.fingerprint, lab["ctx"].name)
    path = tmp_path / "package.zip"
    path.write_bytes(await export.package_bytes(lab["ctx"], made.package))
    await equipment.register(plant.ctx, equipment.Registration("INC-1", "co2-incubator", "S1"))
    stores = await _stores(world, plant)
    for slug in MATERIALS[:3]:
        await inventory.create_material(stores, slug, slug, "reagent", "mL")
    medium = await inventory.create_material(stores, "MED-01", "T-cell medium", "reagent", "mL")
    args = (
        "transfer",
        "import",
        "--progress",
        "--tenant",
        plant.ctx.slug,
        "--email",
        plant.author.actor.email,
    )
    code, said, err = await run(cli_env, *args, str(path))
    assert code == 3, err
    package = made.package.id
    assert f"material {MATERIALS[3]}: Not in the material master" in said
    bad = tmp_path / "bad.json"
    bad.write_text('[{"gap_kind": "material", "ref": 7}]')
    code, _, err = await run(cli_env, *args, "--package", str(package), "--mapping", str(bad))
    assert code == 2 and "--mapping" in err, err
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps([{"gap_kind": "material", "ref": "no-such", "resolution": "use"}]))
    code, said, _ = await run(cli_env, *args, "--package", str(package), "--mapping", str(wrong))
    assert code == 1 and said.startswith("REFUSED: --mapping: choice 1 (no-such)"), said
    assert await _count(owner, "transfer_mappings", tenant) == 0
    chosen = tmp_path / "mapping.json"
    choice = {"gap_kind": "material", "ref": MATERIALS[3], "resolution": "use"}
    chosen.write_text(json.dumps([{**choice, "target_id": str(medium.id)}]))
    code, said, err = await run(cli_env, *args, "--package", str(package), "--mapping", str(chosen))
    assert code == 0, said + err
    assert f"mapped {MATERIALS[3]}: use {medium.id}" in said
    assert "IMPORTED: new draft recipe Transferred process" in said
    assert "checking [" in err and "importing [" in err
    assert await _status(owner, package) == "imported"
    code, said, _ = await run(cli_env, *args, "--package", str(package))
    assert code == 0 and "IMPORTED already" in said


async def test_the_pages_import_runs_in_the_worker_with_its_progress(
    lab: dict[str, Any],
    settings: Settings,
    world: World,
    owner: asyncpg.Connection,
    browser: Any,
    job_worker: Any,
) -> None:
    """URS-TTIMP-03: Import on the gap report asks the job worker: the report shows the
    import's progress while it runs and the draft once done; a second Import at the same
    moment is one import; the progress is another tenant's 404."""
    made = await _send(settings, lab)
    plant = await new_plant(world, owner, settings)
    package = await _receive(settings, world, lab["ctx"], made, plant.ctx)
    await _map_the_rest(settings, world, plant, package)
    one, two = await browser("author"), await browser("author")
    form = f"/t/{plant.ctx.slug}/transfer/packages/{package}"
    answers = await asyncio.gather(
        one.send("POST", form + "/import", data={"_csrf_token": one.csrf}),
        two.send("POST", form + "/import", data={"_csrf_token": two.csrf}),
    )
    assert sorted(a.status_code for a in answers) in ([303, 303], [303, 409]), [
        a.text[:300] for a in answers
    ]
    job = await owner.fetchrow(
        "SELECT id FROM transfer_jobs WHERE package_id = $1 AND stage = 'import' "
        "ORDER BY started_at LIMIT 1",
        package,
    )
    progress = f"/t/{plant.ctx.slug}/transfer/jobs/{job['id']}/progress"
    for _ in range(300):
        if await _status(owner, package) == "imported":
            break
        await asyncio.sleep(0.1)
    assert await _status(owner, package) == "imported"
    for _ in range(100):
        shown = await one.get(progress, headers={"HX-Request": "true"})
        if "Import finished." in shown.text:
            break
        await asyncio.sleep(0.1)
    assert "Import finished." in shown.text and shown.headers.get("HX-Refresh") == "true"
    report = await one.get(form + "/gaps")
    assert "the draft recipe" in report.text
    assert await _count(owner, "transfer_imports", plant.ctx.tenant_id) == 1
    elsewhere = progress.replace(f"/t/{plant.ctx.slug}/", f"/t/{lab['ctx'].slug}/")
    assert (await one.get(elsewhere)).status_code == 404  # the same person, another tenant
