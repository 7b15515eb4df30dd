"""Master recipes as BatchML, pure: every shipped HUB recipe, as a master recipe revision,
exports valid against the vendored MESA schema with each part where the standard puts it,
and reads back (with the same unit operations) as the same content with no gap; the reader
refuses what is not a BatchML master recipe; the mapping names what has no counterpart."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from opencdmo.b2mml.schema import problems, safe_parser
from opencdmo.canonical import content_hash
from opencdmo.errors import ValidationFailed
from opencdmo.hub.content import Document, load_tree
from opencdmo.hub.model import LibraryContent, Method, UnitOperation
from opencdmo.recipes.batchml_queries import ImportRow
from opencdmo.recipes.batchml_recipe import RecipeHead, revision_to_batchml
from opencdmo.recipes.batchml_recipe._document import DocumentTooLarge, read_document
from opencdmo.recipes.batchml_recipe._export import MissingPin
from opencdmo.recipes.batchml_recipe._mapping import Known, map_document, steps_of
from opencdmo.recipes.batchml_recipe._quality import methods_of
from opencdmo.recipes.batchml_recipe._tree import Resolved
from opencdmo.recipes.batchml_recipe.service import gaps_csv
from opencdmo.recipes.content import normalised

HUB = Path(__file__).resolve().parents[2] / "hub_content"
NS = {"b": "http://www.mesa.org/xml/B2MML"}
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@cache
def _documents() -> tuple[Document, ...]:
    return tuple(load_tree(HUB))


def _items(kind: str) -> dict[tuple[str, str], Document]:
    return {(d.slug, d.version): d for d in _documents() if d.kind == kind}


RECIPES = sorted((d.slug, d.version) for d in _documents() if d.kind == "recipe")


def revision(slug: str, version: str) -> tuple[dict[str, Any], dict[str, LibraryContent]]:
    """The content a master recipe made from the HUB recipe holds, and its pinned contents."""
    recipe = _items("recipe")[(slug, version)].content
    uos, methods = _items("unit_operation"), _items("method")
    pinned: dict[str, LibraryContent] = {}

    def pin(document: Document) -> str:
        pinned[content_hash(document.data)] = document.content
        return content_hash(document.data)

    def step(op: Any) -> dict[str, Any]:
        overrides = dict(op.parameter_overrides)
        return {
            "key": op.key,
            "library_item_id": f"lib-{op.unit_operation}",
            "unit_operation": op.unit_operation,
            "version": op.version,
            "content_hash": pin(uos[(op.unit_operation, op.version)]),
            "parameters": overrides,
            "acknowledged": dict.fromkeys(overrides, "value from the HUB recipe"),
            "equipment_class": None,
            "notes": op.note or "",
        }

    def method(slug: str, version: str) -> dict[str, Any]:
        return {
            "library_item_id": f"lib-{slug}",
            "method": slug,
            "method_version": version,
            "content_hash": pin(methods[(slug, version)]),
        }

    content = {
        "unit_procedures": [
            {"key": up.key, "name": up.name, "operations": [step(op) for op in up.operations]}
            for up in recipe.unit_procedures
        ],
        "formulas": [],
        "specification": {
            "modality": recipe.modality,
            "batch_size": {"quantity": recipe.batch_size.quantity, "unit": recipe.batch_size.unit},
        },
        "sampling_points": [
            {
                "key": p.key,
                "after_operation": p.after_operation,
                **method(p.method, p.method_version),
                "sample_volume": {
                    "quantity": p.sample_volume.quantity,
                    "unit": p.sample_volume.unit,
                },
                "note": p.note or "",
            }
            for p in recipe.sampling_points
        ],
        "release_specifications": [
            {
                "attribute": r.attribute,
                **method(r.method, r.method_version),
                "acceptance_criterion": r.acceptance_criterion,
                **(
                    {
                        "limits": {
                            k: v
                            for k, v in (("low", r.limits.low), ("high", r.limits.high))
                            if v is not None
                        }
                    }
                    if r.limits
                    else {}
                ),
                **({"unit": r.unit} if r.unit else {}),
            }
            for r in recipe.release_specifications
        ],
    }
    first = content["unit_procedures"][0]["operations"][0]
    first_uo = uos[(first["unit_operation"], first["version"])].content
    assert isinstance(first_uo, UnitOperation)
    if first_uo.equipment_classes:
        first["equipment_class"] = first_uo.equipment_classes[0]
    return content, pinned


def export(slug: str, version: str, content: dict[str, Any], pinned: Any) -> bytes:
    recipe = _items("recipe")[(slug, version)].content
    head = RecipeHead("recipe-1", recipe.name, recipe.product, 3, "effective", "ab" * 32, T0, T0)
    return revision_to_batchml(head, content, pinned, exported_at=T0)


def _tree(xml: bytes) -> Any:
    return etree.fromstring(xml, safe_parser())


@pytest.mark.parametrize(("slug", "version"), RECIPES)
def test_every_demo_recipe_exports_valid_batchml(slug: str, version: str) -> None:
    content, pinned = revision(slug, version)
    xml = export(slug, version, content, pinned)
    root = _tree(xml)
    assert problems(root, "BatchML-BatchInformation.xsd") == []
    recipe = root.find("b:MasterRecipe", NS)
    assert recipe.findtext("b:ID", namespaces=NS) == "recipe-1"
    assert recipe.findtext("b:Version", namespaces=NS) == "3"
    # The procedure: Procedure > UnitProcedure > Operation > Phase, ids their paths.
    procedure = recipe.find("b:RecipeElement", NS)
    assert procedure.findtext("b:RecipeElementType", namespaces=NS) == "Procedure"
    ups = procedure.findall("b:RecipeElement", NS)
    assert [u.findtext("b:ID", namespaces=NS) for u in ups] == [
        up["key"] for up in content["unit_procedures"]
    ]
    first = content["unit_procedures"][0]
    operation = ups[0].find("b:RecipeElement", NS)
    op_id = f"{first['key']}/{first['operations'][0]['key']}"
    assert operation.findtext("b:ID", namespaces=NS) == op_id
    assert (
        operation.findtext("b:BuildingBlockElementID", namespaces=NS)
        == (first["operations"][0]["unit_operation"])
    )
    phases = operation.findall("b:RecipeElement", NS)
    assert phases and all(p.findtext("b:ID", namespaces=NS).startswith(op_id + "/") for p in phases)
    # Every phase parameter in the formula, with its value, unit and ranges.
    uo = pinned[first["operations"][0]["content_hash"]]
    assert isinstance(uo, UnitOperation)
    phase = uo.phases[0]
    if phase.parameters:
        parameter = phase.parameters[0]
        ident = f"{op_id}/{phase.key}/{parameter.key}"
        found = recipe.find(f"b:Formula/b:Parameter[b:ID='{ident}']", NS)
        assert found.findtext("b:ParameterType", namespaces=NS) == "ProcessParameter"
        value = first["operations"][0]["parameters"].get(parameter.key, parameter.default)
        assert found.findtext("b:Value/b:ValueString", namespaces=NS) == (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
        if parameter.unit:
            assert found.findtext("b:Value/b:UnitOfMeasure", namespaces=NS) == parameter.unit
        if parameter.proven_acceptable_range and parameter.proven_acceptable_range.low is not None:
            assert (
                found.find("b:Parameter[b:ID='" + ident + "/ProvenAcceptableLow']", NS) is not None
            )
    hashes = recipe.findall("b:OtherInformation[b:ID='content_hash']/b:Value/b:ValueString", NS)
    assert [h.text for h in hashes] == ["ab" * 32]


def _resolved(doc: Any) -> tuple[dict[str, Resolved], dict[tuple[str, str], Resolved]]:
    uos, methods = _items("unit_operation"), _items("method")
    steps = {}
    for step in steps_of(doc):
        key = (step.element.building_block, step.element.building_block_version)
        if key in uos:
            d = uos[key]
            steps[step.element.id] = Resolved(f"lib-{key[0]}", content_hash(d.data), d.content)
    found = {}
    for key in methods_of(doc):
        if key in methods:
            d = methods[key]
            found[key] = Resolved(f"lib-{key[0]}", content_hash(d.data), d.content)
    return steps, found


KNOWN = Known(
    frozenset(d.slug for d in _documents() if d.kind == "equipment_class"),
    frozenset(d.slug for d in _documents() if d.kind == "material"),
)


@pytest.mark.parametrize(("slug", "version"), RECIPES)
def test_every_demo_recipe_reads_back_as_the_same_content(slug: str, version: str) -> None:
    content, pinned = revision(slug, version)
    doc = read_document(export(slug, version, content, pinned))
    steps, methods = _resolved(doc)
    mapped = map_document(doc, steps, KNOWN, methods)
    assert mapped.gaps == []
    assert normalised(mapped.content) == normalised(content)


def test_what_has_no_counterpart_is_listed_with_why() -> None:
    content, pinned = revision(*RECIPES[0])
    doc = read_document(export(*RECIPES[0], content, pinned))
    steps, methods = _resolved(doc)
    first = next(iter(steps))
    del steps[first]
    some_method = next(iter(methods))
    del methods[some_method]
    bare = Known(frozenset(), frozenset())
    mapped = map_document(doc, steps, bare, methods)
    kinds = {g.kind for g in mapped.gaps}
    assert {"unit_operation", "equipment_class", "material"} <= kinds
    missing = next(g for g in mapped.gaps if g.ref == first)
    assert "not imported" in missing.reason
    assert any(some_method[0] in g.reason for g in mapped.gaps)
    assert all(g.reason for g in mapped.gaps)


def test_a_value_outside_the_proven_acceptable_range_keeps_the_default() -> None:
    content, pinned = revision(*RECIPES[0])
    xml = export(*RECIPES[0], content, pinned)
    root = _tree(xml)
    target = root.xpath(
        "//b:Formula/b:Parameter[b:Parameter/b:ParameterType/@OtherValue='ProvenAcceptableHigh']",
        namespaces=NS,
    )[0]
    high = target.xpath(
        "b:Parameter[b:ParameterType/@OtherValue='ProvenAcceptableHigh']/b:Value/b:ValueString",
        namespaces=NS,
    )[0]
    target.find("b:Value/b:ValueString", NS).text = str(float(high.text) + 1000)
    doc = read_document(etree.tostring(root))
    steps, methods = _resolved(doc)
    mapped = map_document(doc, steps, KNOWN, methods)
    ident = target.findtext("b:ID", namespaces=NS)
    gap = next(g for g in mapped.gaps if g.ref == ident)
    assert "outside the proven acceptable range" in gap.reason
    assert gap.reason.endswith("the step keeps its default")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"<!DOCTYPE x><BatchInformation/>", "declares a DOCTYPE"),
        (b"\xff\xfe<", "not well-formed XML"),
        (b"{}", "not well-formed XML (it does not start with '<')"),
        (b'<BatchInformation xmlns="http://www.mesa.org/xml/B2MML"/>', "holds 0 master recipes"),
    ],
)
def test_the_reader_refuses_what_is_not_one_master_recipe(document: bytes, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_document(document)


def test_the_reader_refuses_a_document_too_large_before_parsing_it() -> None:
    with pytest.raises(DocumentTooLarge, match="at most 5,242,880"):
        read_document(b"<" * (5 * 1024 * 1024 + 1))


def test_the_csv_never_starts_a_cell_with_a_formula() -> None:
    row = ImportRow(
        id=None,  # type: ignore[arg-type]
        recipe_id=None,  # type: ignore[arg-type]
        document_sha256="0" * 64,
        document_id="x",
        document_version="1",
        document_name="x",
        size_bytes=1,
        gaps=[{"kind": "parameter", "ref": "=HYPERLINK(1)", "name": "+1", "reason": 'why, "so"'}],
        imported_by=None,
        imported_at=T0,
        recipe_name="x",
    )
    lines = gaps_csv(row).splitlines()
    assert lines == ["Kind,Document id,Name,Why", 'parameter,\'=HYPERLINK(1),\'+1,"why, ""so"""']


def test_unit_operations_and_methods_of_the_demo_are_typed() -> None:
    assert all(isinstance(d.content, UnitOperation) for d in _items("unit_operation").values())
    assert all(isinstance(d.content, Method) for d in _items("method").values())


def test_the_export_takes_a_revision_mapping_and_stored_json_pins() -> None:
    """As the transfer package calls it: the revision as a mapping, the pinned contents as
    the stored JSON documents; the same document as with typed ones."""
    slug, version = RECIPES[0]
    content, pinned = revision(slug, version)
    stored = {h: d.data for d in _documents() if (h := content_hash(d.data)) in pinned}
    recipe = _items("recipe")[(slug, version)].content
    head = RecipeHead.of(
        {
            "recipe_id": "recipe-1",
            "name": recipe.name,
            "product": recipe.product,
            "revision": 3,
            "status": "effective",
            "content_hash": "ab" * 32,
            "saved_at": T0,
            "effective_at": T0,
        }
    )
    assert revision_to_batchml(head, content, stored, exported_at=T0) == export(
        slug, version, content, pinned
    )


def test_a_step_whose_pin_is_not_given_is_named() -> None:
    slug, version = RECIPES[0]
    content, _ = revision(slug, version)
    key = content["unit_procedures"][0]["operations"][0]["key"]
    with pytest.raises(MissingPin, match=f"step {key}: the unit operation content it pins"):
        export(slug, version, content, {})


def _round(xml: bytes) -> Any:
    doc = read_document(xml)
    steps, methods = _resolved(doc)
    return map_document(doc, steps, KNOWN, methods)


def test_procedure_logic_sequences_every_level() -> None:
    content, pinned = revision(*RECIPES[0])
    root = _tree(export(*RECIPES[0], content, pinned))
    recipe = root.find("b:MasterRecipe", NS)
    top = recipe.findall("b:ProcedureLogic/b:Step/b:RecipeElementID", NS)
    assert [s.text for s in top] == ["procedure"]
    procedure = recipe.find("b:RecipeElement", NS)
    ups = procedure.findall("b:ProcedureLogic/b:Step/b:RecipeElementID", NS)
    assert [s.text for s in ups] == [up["key"] for up in content["unit_procedures"]]
    first = procedure.find("b:RecipeElement", NS)
    ops = [s.text for s in first.findall("b:ProcedureLogic/b:Step/b:RecipeElementID", NS)]
    up = content["unit_procedures"][0]
    assert ops == [f"{up['key']}/{op['key']}" for op in up["operations"]]
    transitions = first.findall("b:ProcedureLogic/b:Transition/b:Condition", NS)
    assert [t.text for t in transitions] == [f"S{n}.State = Complete" for n in range(1, len(ops))]


def _up_logic(root: Any, index: int) -> Any:
    return root.findall("b:MasterRecipe/b:RecipeElement/b:RecipeElement", NS)[index].find(
        "b:ProcedureLogic", NS
    )


def test_the_logic_orders_the_steps_it_runs() -> None:
    content, pinned = revision(*RECIPES[0])
    up_index = next(
        i for i, up in enumerate(content["unit_procedures"]) if len(up["operations"]) > 1
    )
    root = _tree(export(*RECIPES[0], content, pinned))
    ids = _up_logic(root, up_index).findall("b:Step/b:RecipeElementID", NS)
    texts = [i.text for i in ids]
    for node, text in zip(ids, reversed(texts), strict=True):
        node.text = text
    mapped = _round(etree.tostring(root))
    assert mapped.gaps == []
    keys = [op["key"] for op in mapped.content["unit_procedures"][up_index]["operations"]]
    assert keys == [
        op["key"] for op in reversed(content["unit_procedures"][up_index]["operations"])
    ]


def test_a_logic_with_branches_keeps_the_document_order_and_says_why() -> None:
    content, pinned = revision(*RECIPES[0])
    up_index = next(
        i for i, up in enumerate(content["unit_procedures"]) if len(up["operations"]) > 1
    )
    root = _tree(export(*RECIPES[0], content, pinned))
    link = _up_logic(root, up_index).find("b:Link", NS)
    extra = etree.SubElement(link, f"{{{NS['b']}}}ToID")
    link.insert(list(link).index(link.find("b:ToID", NS)) + 1, extra)
    etree.SubElement(extra, f"{{{NS['b']}}}ToIDValue").text = "S2"
    etree.SubElement(extra, f"{{{NS['b']}}}ToType").text = "Step"
    etree.SubElement(extra, f"{{{NS['b']}}}IDScope").text = "Internal"
    mapped = _round(etree.tostring(root))
    up_key = content["unit_procedures"][up_index]["key"]
    gap = next(g for g in mapped.gaps if g.kind == "procedure_logic")
    assert gap.ref == up_key
    assert gap.reason == (
        "it has parallel or alternative paths: the steps are imported in the document's order"
    )
    keys = [op["key"] for op in mapped.content["unit_procedures"][up_index]["operations"]]
    assert keys == [op["key"] for op in content["unit_procedures"][up_index]["operations"]]


def test_phases_in_another_order_are_told_and_the_unit_operation_order_kept() -> None:
    content, pinned = revision(*RECIPES[0])
    root = _tree(export(*RECIPES[0], content, pinned))
    operation = next(
        op
        for op in root.iterfind(".//b:RecipeElement[b:RecipeElementType='Operation']", NS)
        if len(op.findall("b:ProcedureLogic/b:Step", NS)) > 1
    )
    ids = operation.findall("b:ProcedureLogic/b:Step/b:RecipeElementID", NS)
    ids[0].text, ids[1].text = ids[1].text, ids[0].text
    mapped = _round(etree.tostring(root))
    gap = next(g for g in mapped.gaps if g.kind == "procedure_logic")
    assert gap.ref == operation.findtext("b:ID", namespaces=NS)
    assert "and that order is used" in gap.reason
