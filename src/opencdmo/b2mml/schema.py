"""Validation against the vendored MESA B2MML/BatchML schemas (``xsd/``).

Every document, the schemas' own files included, is read with a parser that loads nothing
from the network, resolves no entities and loads no DTD. Each schema is compiled once; lxml
keeps a validator's errors on the validator, so validations take turns.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path

from lxml import etree

XSD_DIR = Path(__file__).parent / "xsd"

_turn = threading.Lock()


def safe_parser() -> etree.XMLParser:
    """No network, no entities, no DTD: a document can only be what it says."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@cache
def compiled(file_name: str) -> etree.XMLSchema:
    """The schema of that vendored file (``BatchML-BatchInformation.xsd``...), compiled once."""
    return etree.XMLSchema(etree.parse(str(XSD_DIR / file_name), safe_parser()))


def problems(document: etree._Element, file_name: str, *, limit: int | None = None) -> list[str]:
    """The schema's complaints about a parsed document, one line each with its line number
    (none when it is valid); at most ``limit`` of them."""
    schema = compiled(file_name)
    with _turn:
        try:
            if schema.validate(document):
                return []
        except etree.XMLSchemaValidateError as error:
            return [f"cannot be validated: {error}"]
        found = [f"line {e.line}: {e.message}" for e in schema.error_log]
    return found if limit is None else found[:limit]
