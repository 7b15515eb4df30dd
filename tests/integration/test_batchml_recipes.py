"""Master recipes as BatchML both ways against the real database: the export of an effective
revision, the round trip into another tenant, refused documents that write nothing, the gap
report, tenant isolation, the audit trail and two imports at the same moment."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from lxml import etree

from opencdmo.b2mml.schema import problems, safe_parser
from opencdmo.errors import Conflict, NotFound, ValidationFailed
from opencdmo.recipes import service as recipes
from opencdmo.recipes.batchml_recipe import service as batchml
from opencdmo.recipes.batchml_recipe._document import MAX_BYTES, DocumentTooLarge
from opencdmo.recipes.content import normalised
from opencdmo.settings import Settings
from tests.conftest import World
from tests.integration.conftest import new_lab
from tests.integration.test_recipe_publication import _make_effective, _platform_item

NS = {"b": "http://www.mesa.org/xml/B2MML"}


@pytest.fixture
async def sender(
    lab: dict[str, Any], owner: asyncpg.Connection, settings: Settings
) -> dict[str, Any]:
    """A tenant with an effective master recipe made from the HUB's autologous CAR-T recipe,
    with a formula and an equipment class bound to a step."""
    hub_recipe = await _platform_item(owner, "autologous-car-t")
    author = lab["author"]
    recipe_id = await recipes.create_from_hub(author, hub_recipe, "1.1.0")
    state = await recipes.get(author, recipe_id)
    content = state.content
    first = content["unit_procedures"][0]["operations"][0]
    uo = (await recipes.library(author))[first["library_item_id"]].content
    first["equipment_class"] = uo.equipment_classes[0]
    first["notes"] = "Receive within 48 h of collection."
    param = next(p for p in uo.parameters().values() if p.type in ("number", "integer"))
    content["formulas"] = [
        {"name": "Full scale", "overrides": {f"{first['key']}.{param.key}": param.default}}
    ]
    await recipes.save(author, recipe_id, content, state.current_revision, "bound and formula")
    await _make_effective(settings, lab, recipe_id)
    return {**lab, "recipe": recipe_id}


def _tree(xml: bytes) -> Any:
    return etree.fromstring(xml, safe_parser())


def _structure(content: dict[str, Any]) -> Any:
    """What a round trip keeps: the steps, their unit operations, values and bindings."""
    body = normalised(content)
    for up in body["unit_procedures"]:
        for op in up["operations"]:
            op.pop("library_item_id")
    return body["unit_procedures"], body["formulas"], body["specification"]


async def _counts(owner: asyncpg.Connection, tenant: UUID) -> tuple[int, int, int]:
    return (
        await owner.fetchval("SELECT count(*) FROM master_recipes WHERE tenant_id = $1", tenant),
        await owner.fetchval("SELECT count(*) FROM batchml_imports WHERE tenant_id = $1", tenant),
        await owner.fetchval("SELECT count(*) FROM audit_events WHERE tenant_id = $1", tenant),
    )


async def test_the_effective_revision_exports_as_valid_batchml(
    sender: dict[str, Any], browser: Any
) -> None:
    client = await browser("author")
    slug, recipe = sender["ctx"].slug, sender["recipe"]
    answer = await client.get(f"/api/v1/t/{slug}/recipes/{recipe}/batchml")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/xml")
    assert "attachment" in answer.headers["content-disposition"]
    root = _tree(answer.content)
    assert problems(root, "BatchML-BatchInformation.xsd") == []
    state = await recipes.get(sender["author"], recipe)
    assert root.findtext("b:MasterRecipe/b:ID", namespaces=NS) == str(recipe)
    assert root.findtext("b:MasterRecipe/b:Version", namespaces=NS) == str(
        state.effective_revision
    )
    status = root.find("b:MasterRecipe/b:Header/b:Status", NS)
    assert (status.text, status.get("OtherValue")) == ("Other", "Effective")
    operations = root.findall(".//b:RecipeElement[b:RecipeElementType='Operation']", NS)
    steps = [op for up in state.content["unit_procedures"] for op in up["operations"]]
    assert len(operations) == len(steps)
    bound = steps[0]["equipment_class"]
    constraint = operations[0].find(f"b:EquipmentRequirement[b:ID='{bound}']/b:Constraint/b:ID", NS)
    assert constraint is not None and constraint.text == "bound"
    hashes = root.findall("b:MasterRecipe/b:OtherInformation[b:ID='content_hash']", NS)
    assert len(hashes) == 1
    page = await client.get(f"/t/{slug}/recipes/{recipe}")
    assert f"/recipes/{recipe}/batchml" in page.text
    download = await client.get(f"/t/{slug}/recipes/{recipe}/batchml?revision=1")
    assert download.status_code == 200
    assert _tree(download.content).findtext("b:MasterRecipe/b:Version", namespaces=NS) == "1"


async def test_a_draft_without_an_effective_revision_names_the_revision_to_export(
    lab: dict[str, Any],
) -> None:
    recipe = await recipes.create(lab["author"], "Draft only")
    with pytest.raises(Conflict, match=r"no effective revision: name the revision"):
        await batchml.master_recipe_batchml(lab["author"], recipe)
    exported = await batchml.master_recipe_batchml(lab["author"], recipe, 1)
    assert problems(_tree(exported.xml), "BatchML-BatchInformation.xsd") == []
    with pytest.raises(NotFound, match="No revision 7"):
        await batchml.master_recipe_batchml(lab["author"], recipe, 7)


async def test_round_trip_into_another_tenant_with_an_empty_gap_report(
    sender: dict[str, Any], world: World, owner: asyncpg.Connection
) -> None:
    """Exported from one tenant, imported into another whose library is empty: the unit
    operations come from the HUB at the pinned versions, and the draft has the same steps,
    phases, parameters and values; nothing is missing."""
    exported = await batchml.master_recipe_batchml(sender["author"], sender["recipe"])
    receiver = await new_lab(world)
    imported = await batchml.import_batchml(receiver["author"], exported.xml)
    assert imported.gaps == []
    original = await recipes.get(sender["author"], sender["recipe"])
    draft = await recipes.get(receiver["author"], imported.recipe_id)
    assert draft.status == "draft"
    assert (draft.name, draft.product) == (original.name, original.product)
    assert _structure(draft.content) == _structure(original.content)
    # The lineage: the import row, the revision's message and the audit event.
    row = await batchml.get_import(receiver["author"], imported.import_id)
    assert row.document_id == str(sender["recipe"])
    assert row.document_version == str(original.effective_revision)
    assert re.fullmatch("[0-9a-f]{64}", row.document_sha256)
    history = await recipes.history(receiver["author"], imported.recipe_id)
    assert row.document_sha256 in history[0].message
    event = await owner.fetchrow(
        "SELECT actor_id, new_values FROM audit_events WHERE tenant_id = $1 AND action = $2",
        receiver["ctx"].tenant_id,
        batchml.IMPORTED,
    )
    assert event["actor_id"] == world["author"].user_id
    assert json.loads(event["new_values"])["gaps"] == 0
    # The sender's tenant sees nothing of it.
    with pytest.raises(NotFound):
        await batchml.get_import(sender["author"], imported.import_id)
