"""The B2MML building blocks: elements in the B2MML namespace, times with their offset,
coded values (a code outside the schema's list is 'Other' with an ``OtherValue``) and typed
values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from lxml import etree

B2MML = "http://www.mesa.org/xml/B2MML"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

Value = str | int | float | Decimal | bool

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: object) -> str:
    """Text XML 1.0 can carry: the control characters it cannot are shown as U+FFFD."""
    return _NOT_XML.sub("\ufffd", str(value))


def iso(value: datetime) -> str:
    """ISO 8601 with the offset; a time without one is refused (it would be ambiguous)."""
    if value.utcoffset() is None:
        raise ValueError(f"a record time must carry its offset, not {value.isoformat()}")
    return value.isoformat()


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
