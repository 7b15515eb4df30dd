"""Another system's BatchML master recipe, read safely and validated before anything else.

The parser loads no DTD, resolves no entity and fetches nothing; a document that declares a
DOCTYPE (and so could declare entities: a billion laughs, an external entity) is refused
outright, as is one larger than ``MAX_BYTES``, one that is not XML, one whose root is not a
B2MML ``BatchInformation`` holding exactly one ``MasterRecipe``, and one the schema refuses
(its first messages, with line numbers). What passes is read into plain values
(``MasterRecipeDoc``), which the mapping works on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from lxml import etree

from opencdmo.b2mml.schema import problems, safe_parser
from opencdmo.errors import AppError, ValidationFailed
from opencdmo.recipes.batchml_recipe import _vocabulary as v
from opencdmo.recipes.batchml_recipe._logic import Logic
from opencdmo.recipes.batchml_recipe._logic import read as read_logic

MAX_BYTES = 5 * 1024 * 1024
SHOWN_PROBLEMS = 5
_B = "{http://www.mesa.org/xml/B2MML}"


class DocumentTooLarge(AppError):
    status_code = 413
    title = "Too large"


@dataclass(frozen=True)
class DocValue:
    text: str
    data_type: str
    unit: str


@dataclass(frozen=True)
class DocParameter:
    """A ``Parameter``: its id, name, type ('Other' types by their ``OtherValue``), sub types,
    first value and nested parameters."""

    id: str
    name: str
    kind: str
    sub_types: tuple[str, ...]
    value: DocValue | None
    children: tuple[DocParameter, ...] = ()

    def child(self, kind: str) -> DocParameter | None:
        return next((c for c in self.children if c.kind == kind), None)


@dataclass(frozen=True)
class Requirement:
    id: str
    constraints: tuple[str, ...]
    name: str


@dataclass(frozen=True)
class DocElement:
    """A ``RecipeElement`` and what it holds."""

    id: str
    kind: str
    names: tuple[str, ...]
    version: str
    building_block: str
    building_block_version: str
    requirements: tuple[Requirement, ...]
    parameters: tuple[DocParameter, ...]
    children: tuple[DocElement, ...]
    information: tuple[tuple[str, str], ...]
    logic: Logic | None = None

    @property
    def name(self) -> str:
        return self.names[0] if self.names else self.id


@dataclass(frozen=True)
class MasterRecipeDoc:
    """The document's one master recipe, and the document's SHA-256 and size."""

    sha256: str
    size: int
    id: str
    version: str
    name: str
    product: str
    batch_size: tuple[str, str] | None
    status: str
    formula: tuple[DocParameter, ...]
    elements: tuple[DocElement, ...]
    information: tuple[tuple[str, str], ...]
    requirements: tuple[Requirement, ...] = ()
    logic: Logic | None = None


def _refused(message: str, found: list[str] | None = None) -> ValidationFailed:
    return ValidationFailed(message, details={"problems": found or [message]})


def read_document(data: bytes) -> MasterRecipeDoc:
    """The document's master recipe; a 413 or 422 with a message that names the problem."""
    if len(data) > MAX_BYTES:
        raise DocumentTooLarge(
            f"The document has {len(data):,} bytes; at most {MAX_BYTES:,} are accepted."
        )
    if not data.strip():
        raise _refused("The document is empty.")
    head = data[:4096].lstrip()
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise _refused(
            "The document declares a DOCTYPE or entities; BatchML has neither, and they are "
            "refused (they can expand without bound or read other files)."
        )
    try:
        root = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as error:
        start = "" if head.startswith(b"<") else " (it does not start with '<')"
        raise _refused(f"The document is not well-formed XML{start}: {error}") from None
    if root.getroottree().docinfo.doctype:
        raise _refused("The document declares a DOCTYPE; it is refused.")
    if root.tag != v.ROOT:
        raise _refused(
            f"The document is a {etree.QName(root).localname} "
            f"in {etree.QName(root).namespace or 'no namespace'}, not a B2MML BatchInformation."
        )
    recipes = root.findall(f"{_B}MasterRecipe")
    if len(recipes) != 1:
        raise _refused(
            f"The document holds {len(recipes)} master recipes; it must hold exactly one."
        )
    # The schema's messages name every element with its namespace: shown without it.
    found = [p.replace(_B, "") for p in problems(root, v.SCHEMA_FILE)]
    if found:
        shown = found[:SHOWN_PROBLEMS]
        more = f" (and {len(found) - len(shown)} more)" if len(found) > len(shown) else ""
        raise _refused(f"The schema refuses the document: {'; '.join(shown)}{more}", shown)
    return _master_recipe(recipes[0], hashlib.sha256(data).hexdigest(), len(data))


def _text(node: etree._Element, tag: str) -> str:
    found = node.find(f"{_B}{tag}")
    return " ".join((found.text or "").split()) if found is not None else ""


def _texts(node: etree._Element, tag: str) -> tuple[str, ...]:
    return tuple((n.text or "").strip() for n in node.findall(f"{_B}{tag}"))


def _code(node: etree._Element, tag: str) -> str:
    """A coded value; 'Other' by the name in its ``OtherValue``."""
    found = node.find(f"{_B}{tag}")
    if found is None:
        return ""
    code = (found.text or "").strip()
    return str(found.get("OtherValue") or code) if code == "Other" else code


def _value(node: etree._Element) -> DocValue | None:
    found = node.find(f"{_B}Value")
    if found is None:
        return None
    return DocValue(
        (found.findtext(f"{_B}ValueString") or "").strip(),
        _code(found, "DataType"),
        (found.findtext(f"{_B}UnitOfMeasure") or "").strip(),
    )


def _parameter(node: etree._Element) -> DocParameter:
    return DocParameter(
        _text(node, "ID"),
        _text(node, "Description"),
        _code(node, "ParameterType"),
        _texts(node, "ParameterSubType"),
        _value(node),
        tuple(_parameter(p) for p in node.findall(f"{_B}Parameter")),
    )


def _requirement(node: etree._Element) -> Requirement:
    constraints = tuple(
        (c.findtext(f"{_B}ID") or "").strip() for c in node.findall(f"{_B}Constraint")
    )
    return Requirement(_text(node, "ID"), constraints, _text(node, "Description"))


def _information(node: etree._Element) -> tuple[tuple[str, str], ...]:
    found = []
    for info in node.findall(f"{_B}OtherInformation"):
        value = info.find(f"{_B}Value")
        text = (value.findtext(f"{_B}ValueString") or "") if value is not None else ""
        found.append((_text(info, "ID"), text.strip()))
    return tuple(found)


def _element(node: etree._Element) -> DocElement:
    return DocElement(
        id=_text(node, "ID"),
        kind=_code(node, "RecipeElementType"),
        names=tuple(" ".join(t.split()) for t in _texts(node, "Description")),
        version=_text(node, "Version"),
        building_block=_text(node, "BuildingBlockElementID"),
        building_block_version=_text(node, "BuildingBlockElementVersion"),
        requirements=tuple(_requirement(r) for r in node.findall(f"{_B}EquipmentRequirement")),
        parameters=tuple(_parameter(p) for p in node.findall(f"{_B}Parameter")),
        children=tuple(_element(e) for e in node.findall(f"{_B}RecipeElement")),
        information=_information(node),
        logic=read_logic(node),
    )


def _master_recipe(node: etree._Element, sha256: str, size: int) -> MasterRecipeDoc:
    header = node.find(f"{_B}Header")
    product, size_of, status = "", None, ""
    if header is not None:
        product = _text(header, "ProductID") or _text(header, "ProductName")
        batch = header.find(f"{_B}BatchSize")
        if batch is not None and _text(batch, "Nominal"):
            size_of = (_text(batch, "Nominal"), _text(batch, "UnitOfMeasure"))
        status = _code(header, "Status")
    formula = node.find(f"{_B}Formula")
    parameters = formula.findall(f"{_B}Parameter") if formula is not None else []
    return MasterRecipeDoc(
        sha256=sha256,
        size=size,
        id=_text(node, "ID"),
        version=_text(node, "Version"),
        name=_text(node, "Description") or _text(node, "ID"),
        product=product,
        batch_size=size_of,
        status=status,
        formula=tuple(_parameter(p) for p in parameters),
        elements=tuple(_element(e) for e in node.findall(f"{_B}RecipeElement")),
        information=_information(node),
        requirements=tuple(_requirement(r) for r in node.findall(f"{_B}EquipmentRequirement")),
        logic=read_logic(node),
    )
