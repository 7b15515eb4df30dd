"""The batch production record's B2MML vocabulary: the schema's codes it uses and the header
every record entry starts with (the shared building blocks are in ``opencdmo.b2mml.xml``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from lxml import etree

from opencdmo.b2mml.xml import B2MML, XSI, Val, add_nil, coded, el, iso, typed, xml_text
from opencdmo.batches.batchml.model import Ref

__all__ = [
    "B2MML",
    "BATCH_STATUSES",
    "EVENT_SUB_TYPES",
    "EVENT_TYPES",
    "XSI",
    "Val",
    "add_nil",
    "coded",
    "el",
    "iso",
    "record_head",
    "state_name",
    "typed",
    "xml_text",
]

# The schema's enumerations this export uses (BatchML-BatchInformation.xsd, BatchStatus1Type;
# BatchML-BatchProductionRecord.xsd, EventType1Type and EventSubType1Type).
BATCH_STATUSES = frozenset(
    {"Idle", "Running", "Complete", "Pausing", "Paused", "Holding", "Held", "Restarting"}
    | {"Stopping", "Stopped", "Aborting", "Aborted"}
)
EVENT_TYPES = frozenset(
    {"Alarm", "Control Recipe", "Equipment", "General", "Material", "Message", "Operator"}
    | {"Procedural Execution"}
)
EVENT_SUB_TYPES = frozenset(
    {"Allocation", "Application", "Consume", "Deallocation", "Equipment", "Message"}
    | {"Mode Change", "Mode Command", "Modification", "Movement", "Parameter Data", "Process"}
    | {"Process Data", "Produce", "Prompt", "Prompt Response", "Property Value Change"}
    | {"Reconciliation", "Security", "State Change", "State Command", "Status Change"}
    | {"System", "Target End Time", "Target Start Time"}
)


def state_name(state: str) -> str:
    """An ISA-88 state as BatchML spells it ('held' -> 'Held')."""
    return state.capitalize()


def record_head(
    parent: etree._Element,
    entry_id: Ref,
    object_type: str,
    time: datetime | None = None,
    reference: str | None = None,
    descriptions: Iterable[str] = (),
) -> None:
    """The elements every batch production record entry starts with, in the schema's order."""
    el(parent, "EntryID", entry_id)
    el(parent, "ObjectType", object_type)
    if time is not None:
        el(parent, "TimeStamp", time)
    if reference is not None:
        el(parent, "ExternalReference", reference)
    for text in descriptions:
        el(parent, "Description", text)
