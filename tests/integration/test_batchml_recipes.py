"""Master recipes as BatchML both ways against the real database: the export of an effective
revision, the round trip into another tenant, refused documents that write nothing, the gap
report, tenant isolation, the audit trail and two imports at the same moment."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from lxml import etree

from opencdmo.b2mml.schema import problems, safe_parser
from opencdmo.errors import Conflict, NotFound, ValidationFailed
from opencdmo.recipes import service as recipes
from opencdmo.recipes.batchml_recipe import service as batchml
from opencdmo.recipes.content import normalised
from opencdmo.settings import Settings
from tests.conftest import World
from tests.integration import test_cli
from tests.integration.conftest import new_lab
from tests.integration.test_recipe_publication import _make_effective, _platform_item

NS = {"b": "http://www.mesa.org/xml/B2MML"}
cli_env = test_cli.cli_env  # the fixture: the command's environment against the test database
run = test_cli.run


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
    for entry in body["sampling_points"] + body["release_specifications"]:
        entry.pop("library_item_id")
    return (
        body["unit_procedures"],
        body["formulas"],
        body["specification"],
        body["sampling_points"],
        body["release_specifications"],
    )


async def _counts(owner: asyncpg.Connection, tenant: UUID) -> tuple[int, int, int]:
    return (
        await owner.fetchval("SELECT count(*) FROM master_recipes WHERE tenant_id = $1", tenant),
        await owner.fetchval("SELECT count(*) FROM batchml_imports WHERE tenant_id = $1", tenant),
        # Sign-ins are recorded too, after their response: not counted.
        await owner.fetchval(
            "SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND action NOT LIKE 'user.%'",
            tenant,
        ),
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
    assert root.findtext("b:MasterRecipe/b:Version", namespaces=NS) == str(state.effective_revision)
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
    assert original.content["sampling_points"] and original.content["release_specifications"]
    assert original.content["formulas"][0]["overrides"]
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


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<BatchInformation xmlns="http://www.mesa.org/xml/B2MML"><MasterRecipe><ID>&lol3;</ID>
</MasterRecipe></BatchInformation>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<BatchInformation xmlns="http://www.mesa.org/xml/B2MML"><MasterRecipe><ID>&secret;</ID>
</MasterRecipe></BatchInformation>"""
MINIMAL = b"""<?xml version="1.0"?>
<BatchInformation xmlns="http://www.mesa.org/xml/B2MML"><MasterRecipe><ID>mr-1</ID>
<Version>4</Version><Description>Minimal</Description></MasterRecipe></BatchInformation>"""
REFUSED = {
    "schema error": (
        MINIMAL.replace(b"<Version>4</Version>", b"<Colour>red</Colour>"),
        422,
        r"The schema refuses the document: line 3: Element 'Colour': This element is not "
        r"expected\. Expected is one of \( Version, VersionDate",
    ),
    "billion laughs": (BILLION_LAUGHS, 422, "declares a DOCTYPE or entities"),
    "external entity": (EXTERNAL_ENTITY, 422, "declares a DOCTYPE or entities"),
    "not xml": (b"ID,Version\nmr-1,4\n", 422, "not well-formed XML .it does not start with"),
    "truncated": (MINIMAL[:-40], 422, "not well-formed XML"),
    "empty": (b"  ", 422, "The document is empty"),
    "wrong root": (
        b'<BatchProductionRecord xmlns="http://www.mesa.org/xml/B2MML"/>',
        422,
        "is a BatchProductionRecord in http://www.mesa.org/xml/B2MML, not a B2MML Batch",
    ),
    "no namespace": (b"<BatchInformation/>", 422, "in no namespace, not a B2MML"),
    "two recipes": (
        MINIMAL.replace(
            b"</BatchInformation>", b"<MasterRecipe><ID>x</ID></MasterRecipe></BatchInformation>"
        ),
        422,
        "holds 2 master recipes; it must hold exactly one",
    ),
    "too big": (
        MINIMAL.replace(b"<Description>", b"<Description>" + b"x" * 5_300_000),
        413,
        r"The document has 5,300,\d+ bytes; at most 5,242,880 are accepted",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_refused_documents_are_refused_with_the_reason_and_write_nothing(
    lab: dict[str, Any], browser: Any, owner: asyncpg.Connection, case: str
) -> None:
    document, status, message = REFUSED[case]
    client = await browser("author")
    before = await _counts(owner, lab["ctx"].tenant_id)
    answer = await client.send(
        "POST",
        f"/api/v1/t/{lab['ctx'].slug}/recipes/batchml",
        content=document,
        headers={"content-type": "application/xml"},
    )
    assert answer.status_code == status, answer.text
    assert re.search(message, answer.json()["error"]["message"]), answer.text
    assert await _counts(owner, lab["ctx"].tenant_id) == before


async def test_schema_errors_show_the_first_few_with_line_numbers(lab: dict[str, Any]) -> None:
    wrong = MINIMAL.replace(b"<Version>4</Version>", b"<A/><B/><C/><D/><E/><F/><G/>")
    with pytest.raises(ValidationFailed) as refused:
        await batchml.import_batchml(lab["author"], wrong)
    shown = refused.value.details["problems"]
    assert 1 <= len(shown) <= 5
    assert all(re.match(r"line \d+: ", p) for p in shown)


async def test_the_gap_report_lists_what_has_no_counterpart(
    sender: dict[str, Any], world: World, browser: Any
) -> None:
    """An unknown equipment class, material, parameter, unit operation, phase and foreign
    information: each listed with the document's id and why; the rest is imported."""
    exported = await batchml.master_recipe_batchml(sender["author"], sender["recipe"])
    root = _tree(exported.xml)
    first_op = root.find(".//b:RecipeElement[b:RecipeElementType='Operation']", NS)
    op_id = first_op.findtext("b:ID", namespaces=NS)
    first_op.find("b:EquipmentRequirement/b:ID", NS).text = "no-such-class"
    material = root.find("b:MasterRecipe/b:Formula/b:Parameter[b:ParameterType='ProcessInput']", NS)
    material_id = material.findtext("b:ID", namespaces=NS)
    material.find("b:ID", NS).text = material_id.rsplit("/", 1)[0] + "/unobtainium"
    parameter = root.find(
        "b:MasterRecipe/b:Formula/b:Parameter[b:ParameterType='ProcessParameter']", NS
    )
    parameter_id = parameter.findtext("b:ID", namespaces=NS)
    parameter.find("b:ID", NS).text = parameter_id.rsplit("/", 1)[0] + "/no_such_parameter"
    last_op = root.findall(".//b:RecipeElement[b:RecipeElementType='Operation']", NS)[-1]
    last_op.find("b:BuildingBlockElementID", NS).text = "no-such-unit-operation"
    last_op.find("b:Description", NS).text = "Something nobody has"
    last_id = last_op.findtext("b:ID", namespaces=NS)
    info = etree.SubElement(root.find("b:MasterRecipe", NS), f"{{{NS['b']}}}OtherInformation")
    etree.SubElement(info, f"{{{NS['b']}}}ID").text = "colour"
    document = etree.tostring(root)
    receiver = await new_lab(world)
    imported = await batchml.import_batchml(receiver["author"], document)
    gaps = {(g["kind"], g["ref"]): g for g in imported.gaps}
    assert gaps[("equipment_class", f"{op_id}: no-such-class")]["reason"] == (
        "no equipment class 'no-such-class' in the library or on the HUB"
    )
    unknown_material = material_id.rsplit("/", 1)[0] + "/unobtainium"
    assert "no material 'unobtainium'" in gaps[("material", unknown_material)]["reason"]
    unknown_parameter = parameter_id.rsplit("/", 1)[0] + "/no_such_parameter"
    assert (
        "has no parameter 'no_such_parameter'" in gaps[("parameter", unknown_parameter)]["reason"]
    )
    missing = gaps[("unit_operation", last_id)]
    assert missing["name"] == "Something nobody has"
    assert "not imported" in missing["reason"]
    assert ("other_information", "colour") in gaps
    # What maps is imported: every step but the unknown one.
    draft = await recipes.get(receiver["author"], imported.recipe_id)
    original = await recipes.get(sender["author"], sender["recipe"])
    count = sum(len(up["operations"]) for up in original.content["unit_procedures"])
    assert sum(len(up["operations"]) for up in draft.content["unit_procedures"]) == count - 1
    # The page (printable) and the CSV show the same gaps.
    client = await browser("author")
    slug = receiver["ctx"].slug
    page = await client.get(f"/t/{slug}/recipes/imports/{imported.import_id}")
    assert page.status_code == 200
    assert page.text.count('<tr class="gap">') == len(imported.gaps)
    assert "no-such-class" in page.text
    csv_answer = await client.get(f"/t/{slug}/recipes/imports/{imported.import_id}/gaps.csv")
    assert csv_answer.headers["content-type"].startswith("text/csv")
    lines = csv_answer.text.strip().splitlines()
    assert lines[0] == "Kind,Document id,Name,Why"
    assert len(lines) == 1 + len(imported.gaps)
    recipe_page = await client.get(f"/t/{slug}/recipes/{imported.recipe_id}")
    assert "Imported from BatchML" in recipe_page.text
    api = await client.get(f"/api/v1/t/{slug}/recipes/imports/{imported.import_id}")
    assert len(api.json()["gaps"]) == len(imported.gaps)


async def test_another_tenants_recipe_and_import_are_not_found(
    sender: dict[str, Any], world: World, browser: Any
) -> None:
    receiver = await new_lab(world)
    imported = await batchml.import_batchml(receiver["author"], MINIMAL)
    with pytest.raises(NotFound):
        await batchml.master_recipe_batchml(receiver["author"], sender["recipe"])
    with pytest.raises(NotFound):
        await batchml.get_import(sender["author"], imported.import_id)
    client = await browser("author")
    for path in (
        f"/api/v1/t/{receiver['ctx'].slug}/recipes/{sender['recipe']}/batchml",
        f"/t/{receiver['ctx'].slug}/recipes/{sender['recipe']}/batchml",
        f"/t/{sender['ctx'].slug}/recipes/imports/{imported.import_id}",
        f"/t/{sender['ctx'].slug}/recipes/imports/{imported.import_id}/gaps.csv",
        f"/api/v1/t/{sender['ctx'].slug}/recipes/imports/{imported.import_id}",
    ):
        assert (await client.get(path)).status_code == 404, path


async def test_two_imports_at_the_same_moment_make_two_drafts_and_one_copy_each(
    sender: dict[str, Any], world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    """Two people import the same document into an empty library at once: two drafts, each
    with its import and audit event, and each HUB item copied once (imports take turns)."""
    exported = await batchml.master_recipe_batchml(sender["author"], sender["recipe"])
    receiver = await new_lab(world)
    from opencdmo.tenancy import service as tenancy

    await tenancy.add_member(receiver["ctx"], world["admin"].user_id, ["process_engineer"])
    first, second = await browser("author"), await browser("admin")
    url = f"/api/v1/t/{receiver['ctx'].slug}/recipes/batchml"
    headers = {"content-type": "application/xml"}
    answers = await asyncio.gather(
        first.send("POST", url, content=exported.xml, headers=headers),
        second.send("POST", url, content=exported.xml, headers=headers),
    )
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    assert all(a.json()["gaps"] == [] for a in answers)
    tenant = receiver["ctx"].tenant_id
    assert len({a.json()["recipe_id"] for a in answers}) == 2
    copies = await owner.fetch(
        "SELECT slug, version, count(*) AS n FROM library_items WHERE tenant_id = $1 "
        "AND source = 'installed' GROUP BY slug, version",
        tenant,
    )
    assert copies and all(r["n"] == 1 for r in copies)
    events = await owner.fetchval(
        "SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND action = $2",
        tenant,
        batchml.IMPORTED,
    )
    assert events == 2
    assert (
        await owner.fetchval("SELECT count(*) FROM batchml_imports WHERE tenant_id = $1", tenant)
        == 2
    )


async def test_the_upload_page_imports_and_shows_the_gap_report(
    lab: dict[str, Any], browser: Any
) -> None:
    client = await browser("author")
    slug = lab["ctx"].slug
    page = await client.get(f"/t/{slug}/recipes/import")
    assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.text
    listed = await client.get(f"/t/{slug}/recipes")
    assert f"/t/{slug}/recipes/import" in listed.text
    refused = await client.send(
        "POST",
        f"/t/{slug}/recipes/import",
        files={"document": ("lol.xml", BILLION_LAUGHS, "application/xml")},
        data={"_csrf_token": client.csrf},
    )
    assert refused.status_code == 422
    assert "declares a DOCTYPE or entities" in refused.text
    done = await client.send(
        "POST",
        f"/t/{slug}/recipes/import",
        files={"document": ("minimal.xml", MINIMAL, "application/xml")},
        data={"_csrf_token": client.csrf},
    )
    assert done.status_code == 303, done.text
    report = await client.get(done.headers["location"])
    assert report.status_code == 200
    assert "mr-1" in report.text and "No gaps." in report.text
    listing = await client.get(f"/t/{slug}/recipes/import")
    assert "mr-1 version 4" in listing.text


async def test_the_cli_exports_and_imports(
    sender: dict[str, Any], world: World, cli_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "recipe.xml"
    slug, recipe = sender["ctx"].slug, str(sender["recipe"])
    code, _, err = await run(
        cli_env, "batchml", "export", "--tenant", slug, "--recipe", recipe, "--out", str(out)
    )
    assert code == 0, err
    assert "written to" in err
    assert problems(_tree(out.read_bytes()), "BatchML-BatchInformation.xsd") == []
    code, printed, _ = await run(
        cli_env, "batchml", "export", "--tenant", slug, "--recipe", recipe, "--revision", "1"
    )
    assert code == 0 and printed.startswith("<?xml")
    receiver = await new_lab(world)
    target, email = receiver["ctx"].slug, world["author"].email
    code, printed, err = await run(
        cli_env, "batchml", "import", "--tenant", target, "--email", email, str(out)
    )
    assert code == 0, err
    assert re.match(
        r"draft master recipe [0-9a-f-]{36} \(import [0-9a-f-]{36}\)\n0 gap\(s\)\n$", printed
    )
    drafted = UUID(printed.split()[3])
    assert (await recipes.get(receiver["author"], drafted)).status == "draft"
    bad = tmp_path / "laughs.xml"
    bad.write_bytes(BILLION_LAUGHS)
    code, _, err = await run(
        cli_env, "batchml", "import", "--tenant", target, "--email", email, str(bad)
    )
    assert code == 1
    assert "declares a DOCTYPE or entities" in err
    code, _, err = await run(
        cli_env,
        "batchml",
        "import",
        "--tenant",
        target,
        "--email",
        email,
        str(tmp_path / "none.xml"),
    )
    assert code == 2 and "cannot read" in err
    outsider = world["outsider"].email
    code, _, err = await run(
        cli_env, "batchml", "import", "--tenant", target, "--email", outsider, str(out)
    )
    assert code == 2 and "is not a member of" in err
    missing = "00000000-0000-0000-0000-000000000000"
    code, _, err = await run(cli_env, "batchml", "export", "--tenant", slug, "--recipe", missing)
    assert code == 1 and "No such recipe" in err
    code, _, err = await run(cli_env, "batchml", "export", "--tenant", slug, "--recipe", "nope")
    assert code == 2 and "is not a recipe id" in err
