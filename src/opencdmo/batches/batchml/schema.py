"""Validation of a batch production record against the vendored MESA BatchML schema
(``opencdmo.b2mml``: a parser that loads nothing and expands nothing, schemas compiled once)."""

from __future__ import annotations

from lxml import etree

from opencdmo.b2mml.schema import XSD_DIR, problems, safe_parser

ROOT = "{http://www.mesa.org/xml/B2MML}BatchProductionRecord"
SCHEMA_FILE = XSD_DIR / "BatchML-BatchProductionRecord.xsd"

__all__ = ["ROOT", "SCHEMA_FILE", "XSD_DIR", "safe_parser", "validate"]


def validate(xml: bytes) -> list[str]:
    """The schema's complaints about the document, one line each (none when it is valid).
    The document must be a batch production record, with no DOCTYPE (so no entities)."""
    try:
        document = etree.fromstring(xml, safe_parser())
    except etree.XMLSyntaxError as error:
        return [f"not well-formed XML: {error}"]
    if document.getroottree().docinfo.doctype:
        return ["a batch production record has no DOCTYPE (and so no entities)"]
    if (name := etree.QName(document).text) != ROOT:
        return [f"the document is a {name}, not a B2MML BatchProductionRecord"]
    return problems(document, SCHEMA_FILE.name)
