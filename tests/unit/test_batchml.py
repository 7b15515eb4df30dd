"""The BatchML batch production record export: valid against the vendored MESA schema for a
rich record and for a batch just created, every part where the standard puts it, and a
validator that does fail when the document is wrong."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from opencdmo.batches.batchml import (
    BatchHeader,
    BatchRecordDoc,
    CustodyEvent,
    Deviation,
    Entry,
    ExceptionRecord,
    Operation,
    Phase,
    Signature,
    UnitProcedure,
    to_batchml,
    validate,
)
from opencdmo.batches.batchml.model import Value
from opencdmo.batches.batchml.schema import SCHEMA_FILE, XSD_DIR, safe_parser

NS = {"b": "http://www.mesa.org/xml/B2MML"}
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
HASH = "3f" * 32
TRICKY = 'Clump <2 mm> & "fine" — l\'opérateur a noté ✓ 細胞'


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def header(**changes: Any) -> BatchHeader:
    base = BatchHeader(
        batch_id="5b0c8a9e-1111-4c1e-9a57-0d6c1e0b7f01",
        number="CT-2025-0007",
        recipe_id="0a7f0c2e-2222-4d55-8f43-5b9d4b1d9e02",
        recipe_name="Autologous CAR-T <v2>",
        revision=3,
        product="CAR-T anti-CD19",
        formula="standard",
        site_code="BOS",
        sponsor="Acme & Sons Bio",
        status="idle",
        planned_start=at(0),
        control_recipe_hash=HASH,
        created_at=at(-120),
        donor_id="DON-0042",
        coi_label="COI-0042-A",
        apheresis_id="APH-77",
    )
    return replace(base, **changes)


def procedure() -> tuple[UnitProcedure, ...]:
    seed = Operation(
        "seed",
        "Seed culture",
        "complete",
        at(5),
        at(40),
        (
            Phase("thaw", "Thaw", "complete", at(5), at(15)),
            Phase("count", "Cell count", "complete", at(16), at(40)),
        ),
    )
    grow = Operation(
        "grow", "Expand", "running", at(41), None, (Phase("feed", "Feed", "held", at(41)),)
    )
    harvest = Operation("harvest", "Harvest", "idle", phases=(Phase("wash", "Wash", "idle"),))
    return (
        UnitProcedure("expansion", "Expansion", "running", at(5), None, (seed, grow)),
        UnitProcedure("fill", "Fill and finish", "idle", operations=(harvest,)),
    )


def entry(entry_id: str, value: Value, minute: int, **changes: Any) -> Entry:
    """An entry for the cell count of the seed step, with ``changes``."""
    count = Entry(
        entry_id,
        "seed",
        "count",
        "vcd",
        "Viable cell density",
        value,
        "manual",
        "Ann Operator",
        at(minute),
        "in_limits",
    )
    return replace(count, **changes)


def entries() -> tuple[Entry, ...]:
    offset_two = timezone(timedelta(hours=2))
    return (
        entry("e-1", 1.25e6, 20, unit="10*6/mL"),
        entry(
            "e-2",
            Decimal("1.32"),
            25,
            unit="10*6/mL",
            check="outside_normal",
            supersedes="e-1",
            reason="Transcription error: 1.25 read as 1.25e6 & fixed",
        ),
        entry(
            "e-3",
            94,
            26,
            field_key="viability",
            field_name="Viability",
            unit="%",
            source="equipment",
            entered_by="Counter NC-200",
            device_time=datetime(2025, 3, 1, 10, 25, 58, tzinfo=offset_two),
        ),
        entry(
            "e-4",
            True,
            14,
            phase="thaw",
            field_key="clear",
            field_name="Thawed fully",
            entered_by="Bo Tech",
        ),
        entry("e-5", TRICKY, 30, field_key="note", field_name="Observation", entered_by="Zoë Ünal"),
        entry(
            "e-6",
            6.6e8,
            31,
            field_key="total",
            field_name="Total cells",
            unit="{cells}",
            source="calculated",
            entered_by="system",
            check="outside_par",
        ),
    )


def rich_doc() -> BatchRecordDoc:
    return BatchRecordDoc(
        header=header(status="held", actual_start=at(5)),
        exported_at=at(300),
        unit_procedures=procedure(),
        entries=entries(),
        exceptions=(
            ExceptionRecord(
                "x-1",
                "outside_normal",
                "minor",
                "VCD 1.32 outside normal 1.4-2.0",
                at(25),
                step="seed",
                phase="count",
                disposition="accepted",
                disposition_comment="Within PAR; no impact",
                disposed_by="Quinn QA",
                disposed_at=at(200),
            ),
            ExceptionRecord("x-2", "hold", "major", "Batch held: incubator alarm", at(60), "grow"),
        ),
        deviations=(
            Deviation(
                "d-1", "DEV-2025-014", "major", "Incubator CO₂ excursion > 30 min", "open", at(61)
            ),
        ),
        signatures=(
            Signature(
                "s-1",
                "Reviewed",
                "Quinn QA",
                at(201),
                "Exception review",
                "batch_entry",
                "e-2",
                "ab" * 32,
            ),
            Signature(
                "s-2", "Verified", "Bo Tech", at(27), "Second-person check", "batch_entry", "e-2"
            ),
        ),
        custody=(
            CustodyEvent("World Courier", "Dock 2", at(-60), at(-10)),
            CustodyEvent("Ann Operator", "Suite 3, BSC 2", at(-10)),
        ),
    )


def just_created() -> BatchRecordDoc:
    return BatchRecordDoc(header=header(), exported_at=at(-100))


def parse(xml: bytes) -> etree._Element:
    return etree.fromstring(xml, safe_parser())


def one(root: etree._Element, path: str) -> etree._Element:
    found = root.xpath(path, namespaces=NS)
    assert isinstance(found, list) and len(found) == 1, f"{path}: {found}"
    node = found[0]
    assert isinstance(node, etree._Element)
    return node


def texts(root: etree._Element, path: str) -> list[str]:
    found = root.xpath(path, namespaces=NS)
    assert isinstance(found, list)
    return [str(x) for x in found]


def event(root: etree._Element, entry_id: str) -> etree._Element:
    return one(root, f"b:Events/b:Event[b:EntryID='{entry_id}']")


# -- valid ------------------------------------------------------------------------------------


def test_a_rich_record_is_valid() -> None:
    assert validate(to_batchml(rich_doc())) == []


@pytest.mark.parametrize(
    "doc",
    [
        just_created(),
        replace(just_created(), unit_procedures=procedure()[1:]),
        BatchRecordDoc(
            header=BatchHeader("b", "N-1", "r", "R", 1, "", "f", "S", "", "idle", T0, HASH),
            exported_at=T0,
        ),
    ],
    ids=["no-procedure", "procedure-not-started", "only-required-fields"],
)
def test_a_batch_just_created_is_valid(doc: BatchRecordDoc) -> None:
    xml = to_batchml(doc)
    assert validate(xml) == []
    assert one(parse(xml), "b:RecordStatus").text == "Pending"


def test_the_vendored_schema_is_complete_and_stands_alone() -> None:
    """CI has no shared folder: every file the schema reaches is vendored, and only those."""
    reached, todo = set(), [SCHEMA_FILE.name]
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        schema = etree.parse(str(XSD_DIR / name), safe_parser())
        todo += texts(
            schema.getroot(), "//*[local-name()='include' or local-name()='import']/@schemaLocation"
        )
    assert reached == {p.name for p in XSD_DIR.glob("*.xsd")}
    assert (XSD_DIR / "LICENSE").is_file()
    assert Path(SCHEMA_FILE).is_relative_to(Path(__file__).parents[2] / "src")


# -- the validator fails when it should -------------------------------------------------------


def _remove(path: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        node = one(root, path)
        parent = node.getparent()
        assert parent is not None
        parent.remove(node)

    return mutate


def _set(path: str, text: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        one(root, path).text = text

    return mutate


@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        (_remove("b:EntryID"), "EntryID"),
        (_remove("b:ControlRecipes/b:ControlRecipeRecord/b:ControlRecipe/b:ID"), "ID"),
        (_remove("b:Events/b:Event[b:EntryID='e-2']/b:EventSubType"), "EventSubType"),
        (_set("b:PublishedDate", "yesterday"), "dateTime"),
        (_set("b:Events/b:Event[b:EntryID='e-1']/b:TimeStamp", "2025-03-01 08:20"), "dateTime"),
        (_set("b:ControlRecipes//b:ControlRecipe/b:Header/b:Status", "Sleeping"), "enumeration"),
        (_set("b:Events/b:Event[b:EntryID='e-1']/b:EventType", "Gossip"), "enumeration"),
    ],
    ids=[
        "no-entry-id",
        "no-control-recipe-id",
        "no-event-subtype",
        "bad-date",
        "bad-time",
        "bad-status",
        "bad-event-type",
    ],
)
def test_a_broken_record_is_reported(
    mutate: Callable[[etree._Element], None], complaint: str
) -> None:
    root = parse(to_batchml(rich_doc()))
    mutate(root)
    errors = validate(etree.tostring(root))
    assert errors and complaint in errors[0], errors


def test_other_documents_are_refused() -> None:
    assert validate(b"<BatchProductionRecord><ID>") != []
    recipe = b'<ControlRecipe xmlns="http://www.mesa.org/xml/B2MML"><ID>c</ID></ControlRecipe>'
    assert "not a B2MML BatchProductionRecord" in validate(recipe)[0]


def test_no_entity_is_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xml = (
        f'<!DOCTYPE r [<!ENTITY e SYSTEM "{secret.as_uri()}">]>'
        '<BatchProductionRecord xmlns="http://www.mesa.org/xml/B2MML"><ID>&e;</ID>'
        "</BatchProductionRecord>"
    ).encode()
    assert b"TOP-SECRET" not in etree.tostring(parse(xml))
    assert "DOCTYPE" in validate(xml)[0]


# -- where things are -------------------------------------------------------------------------


def test_the_header_names_the_batch() -> None:
    root = parse(to_batchml(replace(rich_doc(), header=header(disposition="released"))))
    assert one(root, "b:ID").text == "5b0c8a9e-1111-4c1e-9a57-0d6c1e0b7f01"
    assert one(root, "b:BatchID").text == "CT-2025-0007"
    assert one(root, "b:EquipmentScope").text == "BOS"
    assert one(root, "b:MaterialDefinitionID").text == "CAR-T anti-CD19"
    assert one(root, "b:PublishedDate").text == "2025-03-01T13:00:00+00:00"
    assert one(root, "b:CreationDate").text == "2025-03-01T06:00:00+00:00"
    assert one(root, "b:RecordStatus").text == "Released"
    master = one(root, "b:MasterRecipes/b:MasterRecipeRecord/b:MasterRecipe")
    assert texts(master, "b:ID/text() | b:Version/text() | b:Description/text()") == [
        "0a7f0c2e-2222-4d55-8f43-5b9d4b1d9e02",
        "3",
        "Autologous CAR-T <v2>",
    ]


def test_the_control_recipe_carries_its_hash_state_and_chain_of_identity() -> None:
    recipe = one(
        parse(to_batchml(rich_doc())), "b:ControlRecipes/b:ControlRecipeRecord/b:ControlRecipe"
    )
    info = "b:OtherInformation[b:ID='{}']/b:Value/b:ValueString"
    assert one(recipe, info.format("content_hash")).text == HASH
    assert one(recipe, info.format("formula")).text == "standard"
    assert one(recipe, info.format("sponsor")).text == "Acme & Sons Bio"
    assert one(recipe, info.format("donor_id")).text == "DON-0042"
    assert one(recipe, info.format("coi_label")).text == "COI-0042-A"
    assert one(recipe, info.format("apheresis_id")).text == "APH-77"
    assert one(recipe, "b:Header/b:Status").text == "Held"
    assert one(recipe, "b:Version").text == "3"


def test_the_procedure_is_a_tree_of_elements_with_their_states() -> None:
    recipe = one(parse(to_batchml(rich_doc())), "b:ControlRecipes//b:ControlRecipe")
    procedure_element = one(recipe, "b:RecipeElement")
    assert one(procedure_element, "b:RecipeElementType").text == "Procedure"
    phase = one(procedure_element, ".//b:RecipeElement[b:ID='expansion/grow/feed']")
    assert one(phase, "b:RecipeElementType").text == "Phase"
    assert one(phase, "b:Description").text == "Feed"
    assert one(phase, "b:Header/b:Status").text == "Held"
    kinds = texts(procedure_element, "b:RecipeElement/b:RecipeElementType/text()")
    assert kinds == ["UnitProcedure", "UnitProcedure"]
    operations = texts(
        procedure_element, "b:RecipeElement[b:ID='expansion']/b:RecipeElement/b:ID/text()"
    )
    assert operations == ["expansion/seed", "expansion/grow"]


def test_state_changes_are_procedural_execution_events() -> None:
    root = parse(to_batchml(rich_doc()))
    ended = event(root, "expansion/seed/count:ended")
    assert one(ended, "b:EventType").text == "Procedural Execution"
    assert one(ended, "b:EventSubType").text == "State Change"
    assert one(ended, "b:Value/b:ValueString").text == "Complete"
    assert one(ended, "b:ProceduralElementReference").text == "expansion/seed/count"
    assert one(event(root, "procedure:started"), "b:TimeStamp").text == "2025-03-01T08:05:00+00:00"
    planned = event(root, "procedure:target-start")
    assert one(planned, "b:EventSubType").text == "Target Start Time"
    assert one(planned, "b:Value/b:ValueString").text == "2025-03-01T08:00:00+00:00"
    assert texts(root, "b:Events/b:Event[starts-with(b:EntryID, 'fill')]") == [], "not started"


@pytest.mark.parametrize(
    ("entry_id", "text", "data_type", "unit"),
    [
        ("e-1", "1250000.0", "decimal", "10*6/mL"),
        ("e-2", "1.32", "decimal", "10*6/mL"),
        ("e-3", "94", "integer", "%"),
        ("e-4", "true", "boolean", None),
        ("e-5", TRICKY, "string", None),
        ("e-6", "660000000.0", "decimal", "{cells}"),
    ],
)
def test_each_entry_is_an_event_with_its_value(
    entry_id: str, text: str, data_type: str, unit: str | None
) -> None:
    found = event(parse(to_batchml(rich_doc())), entry_id)
    assert one(found, "b:Value/b:ValueString").text == text
    assert one(found, "b:Value/b:DataType").text == data_type
    assert texts(found, "b:Value/b:UnitOfMeasure/text()") == ([unit] if unit else [])


def test_an_entry_says_who_where_how_and_its_check() -> None:
    found = event(parse(to_batchml(rich_doc())), "e-3")
    assert one(found, "b:EventType").text == "Equipment"
    assert one(found, "b:Description").text == "Viability"
    assert one(found, "b:Value/b:Key").text == "viability"
    assert one(found, "b:PersonID").text == "Counter NC-200"
    assert one(found, "b:ProceduralElementReference").text == "expansion/seed/count"
    assert one(found, "b:Category").text == "equipment"
    attribute = "b:UserAttribute[b:AttributeID='{}']/b:Value/b:ValueString"
    assert one(found, attribute.format("check")).text == "in_limits"
    assert one(found, attribute.format("device_time")).text == "2025-03-01T10:25:58+02:00"


def test_a_correction_keeps_the_entry_it_supersedes() -> None:
    root = parse(to_batchml(rich_doc()))
    first, second = event(root, "e-1"), event(root, "e-2")
    assert one(first, "b:Value/b:ValueString").text == "1250000.0"
    superseded = "b:UserAttribute[b:AttributeID='superseded_by']/b:Value/b:ValueString"
    assert one(first, superseded).text == "e-2"
    assert one(second, "b:PreviousValue/b:ValueString").text == "1250000.0"
    assert one(second, "b:AssociatedEventID").text == "e-1"
    change = one(root, "b:ChangeHistory/b:Change")
    assert one(change, "b:RecordReference").text == "e-1"
    assert one(change, "b:PrechangeData/b:ValueString").text == "1250000.0"
    assert one(change, "b:Reason").text == "Transcription error: 1.25 read as 1.25e6 & fixed"


def test_text_is_escaped_and_read_back_unchanged() -> None:
    xml = to_batchml(rich_doc())
    assert TRICKY.encode() not in xml, "the raw < and & never reach the document"
    assert b"Clump &lt;2 mm&gt; &amp;" in xml
    assert one(event(parse(xml), "e-5"), "b:Value/b:ValueString").text == TRICKY
    assert one(parse(xml), "b:Description").text == (
        "Batch CT-2025-0007: Autologous CAR-T <v2> revision 3 for Acme & Sons Bio"
    )


def test_characters_xml_cannot_carry_are_replaced_not_fatal() -> None:
    doc = replace(rich_doc(), entries=(replace(entries()[4], value="bell\x07 and nul\x00"),))
    xml = to_batchml(doc)
    assert validate(xml) == []
    assert one(parse(xml), "b:Events/b:Event[b:EntryID='e-5']/b:Value/b:ValueString").text == (
        "bell\ufffd and nul\ufffd"
    )


def test_exceptions_are_alarms_and_a_disposition_is_a_comment_on_one() -> None:
    root = parse(to_batchml(rich_doc()))
    raised = event(root, "x-1")
    assert one(raised, "b:EventType").text == "Alarm"
    assert one(raised, "b:EventSubType").get("OtherValue") == "Exception"
    assert one(raised, "b:MessageText").text == "VCD 1.32 outside normal 1.4-2.0"
    assert texts(raised, "b:AlarmData/b:AlarmType/text() | b:AlarmData/b:Priority/text()") == [
        "outside_normal",
        "minor",
    ]
    assert one(event(root, "x-2"), "b:ProceduralElementReference").text == "expansion/grow"
    comment = one(root, "b:Comments/b:Comment")
    assert one(comment, "b:RecordReference").text == "x-1"
    assert texts(comment, "b:CommentText/text()") == ["accepted", "Within PAR; no impact"]
    assert one(comment, "b:PersonID").text == "Quinn QA"
    assert one(comment, "b:TimeStamp").text == "2025-03-01T11:20:00+00:00"


def test_a_deviation_is_an_event_referring_to_its_number() -> None:
    found = event(parse(to_batchml(rich_doc())), "d-1")
    assert one(found, "b:EventType").get("OtherValue") == "Deviation"
    assert one(found, "b:ExternalReference").text == "DEV-2025-014"
    assert one(found, "b:Category").text == "major"
    assert one(found, "b:Value/b:ValueString").text == "open"
    assert one(found, "b:Description").text == "Incubator CO₂ excursion > 30 min"


def test_signatures_show_name_time_and_meaning() -> None:
    root = parse(to_batchml(rich_doc()))
    manifest = one(
        root, "b:PersonnelIdentification/b:PersonnelIdentificationManifest[b:EntryID='s-1']"
    )
    assert one(manifest, "b:Name").text == "Quinn QA"
    assert one(manifest, "b:ChangeIndication").text == "Reviewed"
    assert one(manifest, "b:TimeStamp").text == "2025-03-01T11:21:00+00:00"
    assert one(manifest, "b:Reason").text == "Exception review"
    reference = one(manifest, "b:RecordReference")
    assert (reference.text, reference.get("schemeName")) == ("e-2", "batch_entry")
    assert texts(manifest, "b:Description/text()")[0] == (
        "Quinn QA signed at 2025-03-01T11:21:00+00:00: Reviewed"
    )


def test_the_chain_of_custody_is_a_series_of_movements() -> None:
    root = parse(to_batchml(rich_doc()))
    holders = texts(root, "b:Events/b:Event[b:EventSubType='Movement']/b:PersonID/text()")
    assert holders == ["World Courier", "Ann Operator"]
    first = event(root, "custody-1")
    assert one(first, "b:Value/b:ValueString").text == "Dock 2"
    until = "b:UserAttribute[b:AttributeID='held_until']/b:Value/b:ValueString"
    assert one(first, until).text == "2025-03-01T07:50:00+00:00"
    assert texts(event(root, "custody-2"), until) == [], "still held"


def test_events_are_in_time_order_and_every_time_has_its_offset() -> None:
    root = parse(to_batchml(rich_doc()))
    stamps = texts(root, "b:Events/b:Event/b:TimeStamp/text()")
    assert stamps == sorted(stamps, key=datetime.fromisoformat)
    every = texts(root, "//b:TimeStamp/text() | //b:ValueString[../b:DataType='dateTime']/text()")
    assert every and all(re.search(r"[+-]\d\d:\d\d$", t) for t in every), every


def test_a_time_without_offset_is_refused() -> None:
    with pytest.raises(ValueError, match="offset"):
        to_batchml(replace(just_created(), exported_at=datetime(2025, 3, 1, 8, 0)))
