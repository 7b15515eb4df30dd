"""The B2MML building blocks: elements in the B2MML namespace, times with their offset,
coded values (a code outside the schema's list is 'Other' with an ``OtherValue``), typed
values and the header every record entry starts with."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from lxml import etree

from opencdmo.batches.batchml.model import Ref, Value

B2MML = "http://www.mesa.org/xml/B2MML"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

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

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: object) -> str:
    """Text XML 1.0 can carry: the control characters it cannot are shown as U+FFFD."""
    return _NOT_XML.sub("\ufffd", str(value))


def iso(value: datetime) -> str:
    """ISO 8601 with the offset; a time without one is refused (it would be ambiguous)."""
    if value.utcoffset() is None:
        raise ValueError(f"a record time must carry its offset, not {value.isoformat()}")
    return value.isoformat()


def state_name(state: str) -> str:
    """An ISA-88 state as BatchML spells it ('held' -> 'Held')."""
    return state.capitalize()


def el(parent: etree._Element, tag: str, text: object = None, **attrs: str) -> etree._Element:
    """A child element in the B2MML namespace; a datetime as ISO 8601 with its offset."""
    values = {name: xml_text(value) for name, value in attrs.items()}
    node = etree.SubElement(parent, f"{{{B2MML}}}{tag}", values)
    if text is not None:
        node.text = iso(text) if isinstance(text, datetime) else xml_text(text)
    return node


def coded(parent: etree._Element, tag: str, code: str, allowed: frozenset[str]) -> None:
    """A code from one of the schema's lists, or 'Other' naming it in ``OtherValue``."""
    if code in allowed:
        el(parent, tag, code)
    else:
        el(parent, tag, "Other", OtherValue=code)


def typed(value: Value | datetime) -> tuple[str, str]:
    """The value as text, and its B2MML data type."""
    if isinstance(value, bool):
        return ("true" if value else "false"), "boolean"
    if isinstance(value, int):
        return str(value), "integer"
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f"), "decimal"
    if isinstance(value, Decimal):
        return format(value, "f"), "decimal"
    if isinstance(value, datetime):
        return iso(value), "dateTime"
    return value, "string"


@dataclass(frozen=True)
class Val:
    """A B2MML ``ValueType``: a value with its data type, unit (UCUM) and key."""

    value: Value | datetime
    unit: str | None = None
    key: str | None = None

    def add(self, parent: etree._Element, tag: str) -> None:
        node = el(parent, tag)
        text, data_type = typed(self.value)
        el(node, "ValueString", text)
        el(node, "DataType", data_type)
        if self.unit:
            el(node, "UnitOfMeasure", self.unit, listID="UCUM")
        if self.key:
            el(node, "Key", self.key)


def add_nil(parent: etree._Element, tag: str) -> None:
    """An element present but nil (a required value the record does not have)."""
    el(parent, tag).set(f"{{{XSI}}}nil", "true")


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
