"""Validation of a batch production record against the vendored MESA BatchML schema.

Every document, the schema's own files included, is read with a parser that loads nothing
from the network and resolves no entities. The schema is compiled once; lxml keeps a
validator's errors on the validator, so validations take turns.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path

from lxml import etree

ROOT = "{http://www.mesa.org/xml/B2MML}BatchProductionRecord"
XSD_DIR = Path(__file__).parent.parent / "batchml_xsd"
SCHEMA_FILE = XSD_DIR / "BatchML-BatchProductionRecord.xsd"

_turn = threading.Lock()


def safe_parser() -> etree.XMLParser:
    """No network, no entities, no DTD: a document can only be what it says."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@cache
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_FILE), safe_parser()))


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
    schema = _schema()
    with _turn:
        try:
            if schema.validate(document):
                return []
        except etree.XMLSchemaValidateError as error:
            return [f"cannot be validated: {error}"]
        return [f"line {e.line}: {e.message}" for e in schema.error_log]
