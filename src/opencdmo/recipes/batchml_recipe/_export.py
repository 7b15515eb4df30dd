"""A master recipe revision as an ISA-88 BatchML ``BatchInformation`` with one
``MasterRecipe``, valid against the vendored MESA schema. Pure: a function of the revision,
the library content it pins and the export time, no database and no clock.

- ``MasterRecipe``: ``ID`` the recipe id, ``Version`` the revision, ``VersionDate`` when it
  was saved, ``Description`` its name; ``Header``: ``EffectiveDate``, ``ProductID`` (the
  product, a material definition), ``BatchSize``, ``Status`` (the revision's status, 'Other');
- ``Formula``: one ``Parameter`` per phase parameter (``ProcessParameter``, id
  'unit procedure/operation/phase/parameter', the step's value with its UCUM unit, the
  criticality and 'RecipeValue' for a step's own value as ``ParameterSubType``, the normal and
  proven acceptable ranges and each named formula's value as nested parameters), and one per
  material of each step (``ProcessInput``, 'MaterialDefinition', the quantity in its unit);
- the procedure as nested ``RecipeElement``s: Procedure > UnitProcedure > Operation (the unit
  operation as its building block, slug and version, each equipment class as an
  ``EquipmentRequirement``, bound or allowed) > Phase (its data-capture fields as parameters of
  type 'Other' 'DataCapture' with their limits);
- ``ProcedureLogic`` at every level: the children as a plain sequence (``_logic``);
- ``OtherInformation``: the revision's content hash, the export time, the modality and the
  names of the formulas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lxml import etree

from opencdmo.b2mml.xml import B2MML, coded, el, iso, typed
from opencdmo.hub.model import (
    DataCaptureField,
    LibraryContent,
    Parameter,
    Phase,
    Range,
    UnitOperation,
    decode,
)
from opencdmo.recipes.batchml_recipe import _logic as logic
from opencdmo.recipes.batchml_recipe import _vocabulary as v

Pinned = Mapping[str, LibraryContent | Mapping[str, Any]]


@dataclass(frozen=True)
class RecipeHead:
    """What identifies the revision exported (``status``: the revision's, e.g. effective)."""

    recipe_id: str
    name: str
    product: str
    revision: int
    status: str
    content_hash: str
    saved_at: datetime | None = None
    effective_at: datetime | None = None

    @classmethod
    def of(cls, revision: Mapping[str, Any]) -> RecipeHead:
        """From a revision as a mapping with these keys (``recipe_id``, ``name``, ``product``,
        ``revision``, ``status``, ``content_hash``; ``saved_at``, ``effective_at`` optional)."""
        return cls(
            str(revision["recipe_id"]),
            str(revision["name"]),
            str(revision.get("product") or ""),
            int(revision["revision"]),
            str(revision["status"]),
            str(revision["content_hash"]),
            revision.get("saved_at"),
            revision.get("effective_at"),
        )


def revision_to_batchml(
    head: RecipeHead,
    content: Mapping[str, Any],
    pinned: Pinned,
    *,
    exported_at: datetime,
    names: Mapping[str, str] | None = None,
) -> bytes:
    """The revision as BatchML (UTF-8 XML). ``content`` is the revision's stored content,
    ``pinned`` the library content each step pins by hash (typed or as stored JSON), ``names``
    the names of equipment classes and materials by slug (the slug is shown without it)."""
    steps = _Steps(content, pinned)
    root = etree.Element(f"{{{B2MML}}}BatchInformation", nsmap={None: B2MML})
    el(root, "Description", f"{head.name}: master recipe revision {head.revision}")
    recipe = el(root, "MasterRecipe")
    el(recipe, "ID", head.recipe_id)
    el(recipe, "Version", head.revision)
    if head.saved_at is not None:
        el(recipe, "VersionDate", head.saved_at)
    el(recipe, "Description", head.name)
    _header(recipe, head, content)
    _formula(recipe, content, steps, names or {})
    _procedure(recipe, head, content, steps, names or {})
    _information(recipe, v.CONTENT_HASH, head.content_hash, "SHA-256 of the revision's content")
    _information(recipe, v.EXPORTED_AT, iso(exported_at), "When this document was made")
    modality = (content.get("specification") or {}).get("modality")
    if modality:
        _information(recipe, v.MODALITY, modality, "The product's modality")
    for formula in content.get("formulas") or []:
        _information(recipe, v.FORMULA, formula["name"], "A named formula (parameter set)")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


class MissingPin(ValueError):
    """A step whose pinned unit operation content was not given."""


class _Steps:
    """The unit operation each step pins, by step key."""

    def __init__(self, content: Mapping[str, Any], pinned: Pinned) -> None:
        self.by_key: dict[str, UnitOperation] = {}
        for up in content.get("unit_procedures") or []:
            for op in up.get("operations") or []:
                held = pinned.get(str(op.get("content_hash")))
                typed_content = decode(held) if isinstance(held, Mapping) else held
                if not isinstance(typed_content, UnitOperation):
                    raise MissingPin(
                        f"step {op.get('key')}: the unit operation content it pins "
                        f"({op.get('content_hash')}) was not given"
                    )
                self.by_key[op["key"]] = typed_content


def _header(recipe: etree._Element, head: RecipeHead, content: Mapping[str, Any]) -> None:
    header = el(recipe, "Header")
    if head.effective_at is not None:
        el(header, "EffectiveDate", head.effective_at)
    if head.product:
        el(header, "ProductID", head.product, schemeName="MaterialDefinition")
    size = (content.get("specification") or {}).get("batch_size")
    if size:
        batch = el(header, "BatchSize")
        el(batch, "Nominal", typed(size["quantity"])[0])
        el(batch, "UnitOfMeasure", size["unit"], listID="UCUM")
    coded(header, "Status", v.STATUS_NAMES.get(head.status, head.status), frozenset())


def _value(parent: etree._Element, value: Any, unit: str | None) -> None:
    """A BatchML ``BatchValueType``: the value, constant, its data type and UCUM unit."""
    node = el(parent, "Value")
    text, data_type = typed(value)
    el(node, "ValueString", text)
    el(node, "DataInterpretation", "Constant")
    el(node, "DataType", data_type)
    if unit:
        el(node, "UnitOfMeasure", unit, listID="UCUM")
    else:
        el(node, "UnitOfMeasure", "")


def _parameter(
    parent: etree._Element,
    ident: str,
    name: str,
    kind: str,
    *,
    sub_types: tuple[str, ...] = (),
    value: Any = None,
    unit: str | None = None,
) -> etree._Element:
    node = el(parent, "Parameter")
    el(node, "ID", ident)
    el(node, "Description", name)
    coded(node, "ParameterType", kind, v.PARAMETER_TYPES)
    for sub_type in sub_types:
        el(node, "ParameterSubType", sub_type)
    if value is not None:
        _value(node, value, unit)
    return node


def _ranges(node: etree._Element, ident: str, parameter: Parameter) -> None:
    for (which, bound), slot in v.RANGE_SLOTS.items():
        span: Range | None = getattr(parameter, which)
        limit = None if span is None else getattr(span, bound)
        if limit is not None:
            name = v.SLOT_NAMES[slot]
            _parameter(node, f"{ident}/{slot}", name, slot, value=limit, unit=parameter.unit)


def _formula(
    recipe: etree._Element, content: Mapping[str, Any], steps: _Steps, names: Mapping[str, str]
) -> None:
    formula = el(recipe, "Formula")
    named = [(f["name"], f.get("overrides") or {}) for f in content.get("formulas") or []]
    for up in content.get("unit_procedures") or []:
        for op in up.get("operations") or []:
            unit_operation = steps.by_key[op["key"]]
            for phase in unit_operation.phases:
                for parameter in phase.parameters:
                    ident = v.path(up["key"], op["key"], phase.key, parameter.key)
                    _process_parameter(formula, ident, op, parameter, named)
            for line in unit_operation.materials:
                ident = v.path(up["key"], op["key"], v.MATERIAL, line.material)
                name = names.get(line.material, line.material)
                _parameter(
                    formula,
                    ident,
                    name,
                    v.PROCESS_INPUT,
                    sub_types=(v.MATERIAL_DEFINITION,),
                    value=line.quantity,
                    unit=line.unit,
                )
    _qc(formula, content)


def _qc(formula: etree._Element, content: Mapping[str, Any]) -> None:
    """The in-process samples and release specifications: each a parameter of type 'Other'
    with its fields as nested parameters (the QC method by slug, version and pinned hash)."""
    for point in content.get("sampling_points") or []:
        ident = v.path(v.SAMPLING, point["key"])
        about = f"In-process sample after step {point['after_operation']}"
        node = _parameter(formula, ident, about, v.SAMPLING_POINT)
        volume = point.get("sample_volume") or {}
        fields = {
            "after_operation": (point["after_operation"], None),
            "method": (point.get("method"), None),
            "method_version": (point.get("method_version"), None),
            "sample_volume": (volume.get("quantity"), volume.get("unit")),
            "note": (point.get("note") or None, None),
            v.METHOD_HASH: (point.get("content_hash"), None),
        }
        _fields(node, ident, fields)
    for spec in content.get("release_specifications") or []:
        ident = v.path(v.RELEASE, spec["attribute"])
        about = f"Release specification: {spec['acceptance_criterion']}"
        node = _parameter(formula, ident, about[:1000], v.RELEASE_SPECIFICATION)
        limits = spec.get("limits") or {}
        fields = {
            "method": (spec.get("method"), None),
            "method_version": (spec.get("method_version"), None),
            "acceptance_criterion": (spec["acceptance_criterion"], None),
            "low": (limits.get("low"), spec.get("unit")),
            "high": (limits.get("high"), spec.get("unit")),
            "unit": (spec.get("unit"), None),
            v.METHOD_HASH: (spec.get("content_hash"), None),
        }
        _fields(node, ident, fields)


def _fields(node: etree._Element, ident: str, fields: Mapping[str, tuple[Any, str | None]]) -> None:
    for name, (value, unit) in fields.items():
        if value is not None:
            _parameter(node, f"{ident}/{name}", name, v.FIELD, value=value, unit=unit)


def _process_parameter(
    formula: etree._Element,
    ident: str,
    op: Mapping[str, Any],
    parameter: Parameter,
    named: list[tuple[str, Mapping[str, Any]]],
) -> None:
    own = op.get("parameters") or {}
    sub_types: tuple[str, ...] = (parameter.criticality, parameter.type)
    if parameter.key in own:
        sub_types += (v.RECIPE_VALUE,)
    value = own.get(parameter.key, parameter.default)
    node = _parameter(
        formula,
        ident,
        parameter.name,
        v.PROCESS_PARAMETER,
        sub_types=sub_types,
        value=value,
        unit=parameter.unit,
    )
    _ranges(node, ident, parameter)
    reason = (op.get("acknowledged") or {}).get(parameter.key)
    if reason:
        _parameter(node, f"{ident}/{v.ACKNOWLEDGEMENT}", reason, v.ACKNOWLEDGEMENT, value=reason)
    for name, overrides in named:
        target = f"{op['key']}.{parameter.key}"
        if target in overrides:
            _parameter(
                node,
                f"{ident}@{name}",
                name,
                v.FORMULA_VALUE,
                value=overrides[target],
                unit=parameter.unit,
            )


def _element(
    parent: etree._Element, ident: str, version: str, name: str, kind: str
) -> etree._Element:
    node = el(parent, "RecipeElement")
    el(node, "ID", ident)
    el(node, "Version", version)
    el(node, "Description", name)
    el(node, "RecipeElementType", kind)
    return node


def _procedure(
    recipe: etree._Element,
    head: RecipeHead,
    content: Mapping[str, Any],
    steps: _Steps,
    names: Mapping[str, str],
) -> None:
    revision = str(head.revision)
    logic.write(recipe, [(v.PROCEDURE, revision)])
    procedure = _element(recipe, v.PROCEDURE, revision, head.name, "Procedure")
    ups = content.get("unit_procedures") or []
    logic.write(procedure, [(up["key"], revision) for up in ups])
    for up in ups:
        name = up.get("name") or up["key"]
        unit_procedure = _element(procedure, up["key"], revision, name, "UnitProcedure")
        ops = up.get("operations") or []
        logic.write(
            unit_procedure,
            [(v.path(up["key"], op["key"]), steps.by_key[op["key"]].version) for op in ops],
        )
        for op in ops:
            _operation(unit_procedure, up["key"], op, steps.by_key[op["key"]], names)


def _operation(
    parent: etree._Element,
    up_key: str,
    op: Mapping[str, Any],
    unit_operation: UnitOperation,
    names: Mapping[str, str],
) -> None:
    ident = v.path(up_key, op["key"])
    node = el(parent, "RecipeElement")
    el(node, "ID", ident)
    el(node, "Version", unit_operation.version)
    el(node, "Description", unit_operation.name)
    el(node, "RecipeElementType", "Operation")
    el(node, "BuildingBlockElementID", unit_operation.slug)
    el(node, "BuildingBlockElementVersion", unit_operation.version)
    bound = op.get("equipment_class")
    for slug in unit_operation.equipment_classes:
        requirement = el(node, "EquipmentRequirement")
        el(requirement, "ID", slug)
        el(el(requirement, "Constraint"), "ID", v.BOUND if slug == bound else v.ALLOWED)
        el(requirement, "Description", names.get(slug, slug))
    phases = unit_operation.phases
    logic.write(node, [(v.path(ident, p.key), unit_operation.version) for p in phases])
    for phase in phases:
        _phase(node, ident, phase, unit_operation.version)
    pin = op.get("content_hash")
    if pin:
        _information(node, v.PINNED_HASH, pin, "SHA-256 of the unit operation content pinned")
    if op.get("notes"):
        _information(node, v.NOTES, op["notes"], "The step's notes")


def _phase(parent: etree._Element, op_path: str, phase: Phase, version: str) -> None:
    ident = v.path(op_path, phase.key)
    node = el(parent, "RecipeElement")
    el(node, "ID", ident)
    el(node, "Version", version)
    el(node, "Description", phase.name)
    el(node, "Description", phase.instructions)
    el(node, "RecipeElementType", "Phase")
    for field in phase.data_capture:
        _data_capture(node, v.path(ident, field.key), field)


def _data_capture(parent: etree._Element, ident: str, field: DataCaptureField) -> None:
    sub_types: tuple[str, ...] = (field.type, "required" if field.required else "optional")
    if field.unit:
        sub_types += (f"{v.UCUM}{field.unit}",)
    node = _parameter(parent, ident, field.name, v.DATA_CAPTURE, sub_types=sub_types)
    limits = field.limits
    for bound, slot in v.LIMIT_SLOTS.items():
        limit = None if limits is None else getattr(limits, bound)
        if limit is not None:
            name = v.SLOT_NAMES[slot]
            _parameter(node, f"{ident}/{slot}", name, slot, value=limit, unit=field.unit)


def _information(parent: etree._Element, key: str, value: object, about: str) -> None:
    node = el(parent, "OtherInformation")
    el(node, "ID", key)
    _value(node, str(value), None)
    el(node, "Description", about)
