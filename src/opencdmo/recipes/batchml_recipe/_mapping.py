"""What of a BatchML master recipe maps onto the tenant, as draft recipe content, and the gap
report of what does not: every element with no counterpart (never dropped in silence).

Pure: the service resolves each operation's unit operation first (``Resolved``: the library
item, or why there is none) and says which equipment classes and materials the tenant's
library or the HUB know; this module does the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opencdmo.hub.content import common_enum
from opencdmo.hub.model import Parameter, Phase, Scalar, UnitOperation
from opencdmo.recipes.batchml_recipe import _vocabulary as v
from opencdmo.recipes.batchml_recipe._document import DocElement, DocParameter, MasterRecipeDoc
from opencdmo.recipes.batchml_recipe._quality import QC_KINDS, Quality
from opencdmo.recipes.batchml_recipe._tree import (
    Gap,
    Resolved,
    Step,
    UnitProcedure,
    number,
    one_line,
    ordered,
    procedure,
)


@dataclass(frozen=True)
class Known:
    """The equipment classes and materials the tenant's library or the HUB hold, by slug."""

    equipment_classes: frozenset[str]
    materials: frozenset[str]


@dataclass
class Mapped:
    content: dict[str, Any]
    gaps: list[Gap] = field(default_factory=list)


def steps_of(doc: MasterRecipeDoc) -> list[Step]:
    """Every operation the draft could hold, for the service to resolve."""
    ups, _ = procedure(doc)
    return [step for up in ups for step in up.steps]


def map_document(
    doc: MasterRecipeDoc,
    resolved: Mapping[str, Resolved],
    known: Known,
    methods: Mapping[tuple[str, str], Resolved] | None = None,
) -> Mapped:
    """The draft's content and the gap report. ``resolved``: by operation element id;
    ``methods``: the library QC methods by the (slug, version) the document names."""
    ups, gaps = procedure(doc)
    mapper = _Mapper(doc, resolved, known, gaps)
    content: dict[str, Any] = {
        "unit_procedures": [mapper.unit_procedure(up) for up in ups],
        "formulas": [],
        "specification": mapper.specification(),
        "sampling_points": [],
        "release_specifications": [],
    }
    mapper.formula_parameters()
    content["formulas"] = mapper.formulas()
    qc = Quality(mapper.gap, mapper.step_keys, methods or {})
    for raw in doc.formula:
        if raw.kind == v.SAMPLING_POINT:
            content["sampling_points"] += qc.sampling_point(raw)
        elif raw.kind == v.RELEASE_SPECIFICATION:
            content["release_specifications"] += qc.release(raw)
    mapper.information()
    return Mapped(content, mapper.gaps)


def convert(parameter: Parameter, raw: DocParameter) -> tuple[Scalar | None, str | None]:
    """The document's value as the parameter's type, or why it cannot be."""
    value = raw.value
    if value is None or value.text == "":
        return None, "the document gives no value"
    if value.unit and parameter.unit and value.unit != parameter.unit:
        return None, f"the unit {value.unit} is not the parameter's unit {parameter.unit}"
    if parameter.type in ("number", "integer", "duration"):
        amount = number(value.text, value.data_type)
        if amount is None or (parameter.type == "integer" and not float(amount).is_integer()):
            return None, f"'{value.text}' is not a {parameter.type}"
        return (int(amount) if parameter.type == "integer" else amount), None
    if parameter.type == "boolean":
        if value.text not in ("true", "false"):
            return None, f"'{value.text}' is not true or false"
        return value.text == "true", None
    if parameter.choices is not None and value.text not in parameter.choices:
        return None, f"'{value.text}' is not one of {', '.join(parameter.choices)}"
    return value.text, None


class _Mapper:
    def __init__(
        self,
        doc: MasterRecipeDoc,
        resolved: Mapping[str, Resolved],
        known: Known,
        gaps: list[Gap],
    ) -> None:
        self.doc = doc
        self.resolved = resolved
        self.known = known
        self.gaps = gaps
        self.ops: dict[str, tuple[str, dict[str, Any], UnitOperation]] = {}  # element id ->
        self.named: dict[str, dict[str, Any]] = {}
        self.step_keys: dict[str, str] = {}  # the document's step key -> the draft's
        self.source = f"value from BatchML master recipe {doc.id} version {doc.version}"

    def gap(self, kind: str, ref: str, name: str, reason: str) -> None:
        self.gaps.append(Gap(kind, ref, one_line(name, 500), reason))

    # --- the procedure --------------------------------------------------------------------

    def unit_procedure(self, up: UnitProcedure) -> dict[str, Any]:
        operations = [op for step in up.steps if (op := self.operation(step)) is not None]
        return {"key": up.key, "name": up.name, "operations": operations}

    def operation(self, step: Step) -> dict[str, Any] | None:
        element = step.element
        found = self.resolved.get(element.id) or Resolved(None, note="no unit operation named")
        if found.library_item_id is None or found.content is None:
            inside = sum(1 for e in element.children if e.kind == "Phase")
            self.gap(
                "unit_operation",
                element.id,
                element.name,
                f"{found.note}; the step and its {inside} phase(s) are not imported",
            )
            return None
        unit_operation = found.content
        assert isinstance(unit_operation, UnitOperation)
        if found.note:
            self.gap("unit_operation", element.id, element.name, found.note)
        op: dict[str, Any] = {
            "key": step.key,
            "library_item_id": found.library_item_id,
            "unit_operation": unit_operation.slug,
            "version": unit_operation.version,
            "content_hash": found.content_hash,
            "parameters": {},
            "acknowledged": {},
            "equipment_class": None,
            "notes": "",
        }
        self.ops[element.id] = (step.key, op, unit_operation)
        self.step_keys[element.id.rstrip("/").rsplit("/", 1)[-1]] = step.key
        self.equipment(element, op, unit_operation)
        self.step_information(element, op, found)
        for parameter in element.parameters:
            self.parameter(element.id, parameter, parameter.id)
        for child in element.children:
            self.phase(element, child, unit_operation)
        self.phase_order(element, unit_operation)
        return op

    def phase_order(self, element: DocElement, uo: UnitOperation) -> None:
        """The phases run in the unit operation's order: a document that orders them
        otherwise is told so."""
        children = ordered(
            element.id, element.name, element.logic, list(element.children), self.gaps
        )
        keys = {p.key for p in uo.phases}
        theirs = [k for c in children if (k := c.id.rstrip("/").rsplit("/", 1)[-1]) in keys]
        ours = [p.key for p in uo.phases if p.key in theirs]
        if theirs != ours:
            self.gap(
                "procedure_logic",
                element.id,
                element.name,
                f"the document runs the phases as {', '.join(theirs)}; the unit operation "
                f"{uo.slug} {uo.version} runs them as {', '.join(ours)}, and that order is used",
            )

    def equipment(self, element: DocElement, op: dict[str, Any], uo: UnitOperation) -> None:
        for requirement in element.requirements:
            slug = requirement.id
            name = requirement.name or slug
            if slug not in self.known.equipment_classes:
                reason = f"no equipment class '{slug}' in the library or on the HUB"
                self.gap("equipment_class", f"{element.id}: {slug}", name, reason)
            elif slug not in uo.equipment_classes:
                reason = f"not an equipment class of unit operation {uo.slug} {uo.version}"
                self.gap("equipment_class", f"{element.id}: {slug}", name, reason)
            elif v.BOUND in requirement.constraints:
                op["equipment_class"] = slug

    def step_information(self, element: DocElement, op: dict[str, Any], found: Resolved) -> None:
        for key, value in element.information:
            if key == v.NOTES:
                op["notes"] = value[:10_000]
            elif key == v.PINNED_HASH:
                if value != found.content_hash:
                    self.gap(
                        "unit_operation",
                        element.id,
                        element.name,
                        f"the library's content (SHA-256 {str(found.content_hash)[:12]}...) is "
                        f"not the content the document pinned ({value[:12]}...)",
                    )
            else:
                self.gap("other_information", f"{element.id}: {key}", key, "no place for it")

    def phase(self, op_element: DocElement, element: DocElement, uo: UnitOperation) -> None:
        if element.kind != "Phase":
            self.gap(
                "recipe_element",
                element.id,
                element.name,
                f"a {element.kind or 'untyped'} element in an operation: no place for it",
            )
            return
        key = element.id.rstrip("/").rsplit("/", 1)[-1]
        phase = next((p for p in uo.phases if p.key == key), None)
        if phase is None:
            wanted = element.name.casefold()
            phase = next((p for p in uo.phases if p.name.casefold() == wanted), None)
        if phase is None:
            reason = f"unit operation {uo.slug} {uo.version} has no phase '{key}'"
            self.gap("phase", element.id, element.name, reason)
            return
        for parameter in element.parameters:
            if parameter.kind == v.DATA_CAPTURE:
                self.data_capture(parameter, phase, uo)
            else:
                self.parameter(op_element.id, parameter, parameter.id)

    def data_capture(self, raw: DocParameter, phase: Phase, uo: UnitOperation) -> None:
        key = raw.id.rstrip("/").rsplit("/", 1)[-1]
        if not any(f.key == key for f in phase.data_capture):
            reason = f"phase {phase.key} of {uo.slug} {uo.version} records no field '{key}'"
            self.gap("data_capture_field", raw.id, raw.name, reason)

    # --- parameters and materials ---------------------------------------------------------

    def formula_parameters(self) -> None:
        for raw in self.doc.formula:
            if raw.kind in QC_KINDS:
                continue
            owner = self.owner(raw.id)
            if owner is None:
                reason = "it names no imported step"
                self.gap(self.kind_of(raw), raw.id, raw.name, reason)
                continue
            self.parameter(owner, raw, raw.id)

    def owner(self, ident: str) -> str | None:
        """The imported operation whose id path the parameter's id extends."""
        matches = [op for op in self.ops if ident.startswith(op + "/")]
        return max(matches, key=len) if matches else None

    @staticmethod
    def kind_of(raw: DocParameter) -> str:
        material = raw.kind == v.PROCESS_INPUT or v.MATERIAL_DEFINITION in raw.sub_types
        return "material" if material else "parameter"

    def parameter(self, owner: str, raw: DocParameter, ident: str) -> None:
        if owner not in self.ops:
            self.gap(self.kind_of(raw), ident, raw.name, "it names no imported step")
            return
        step_key, op, uo = self.ops[owner]
        key = ident.rstrip("/").rsplit("/", 1)[-1]
        if self.kind_of(raw) == "material":
            self.material(raw, key, uo)
            return
        parameter = uo.parameters().get(key)
        if parameter is None:
            reason = f"unit operation {uo.slug} {uo.version} has no parameter '{key}'"
            self.gap("parameter", ident, raw.name, reason)
            return
        self.ranges(raw, parameter)
        value, problem = convert(parameter, raw)
        if problem is None and value is not None:
            problem = self.outside_par(parameter, value)
        if problem is not None:
            self.gap("parameter", ident, raw.name, f"{problem}: the step keeps its default")
        elif value is not None and (value != parameter.default or v.RECIPE_VALUE in raw.sub_types):
            op["parameters"][key] = value
            reason = self.acknowledgement(raw, parameter, value)
            if reason:
                op["acknowledged"][key] = reason
        for child in raw.children:
            if child.kind == v.FORMULA_VALUE:
                self.formula_value(step_key, key, parameter, child)

    def outside_par(self, parameter: Parameter, value: Scalar) -> str | None:
        par = parameter.proven_acceptable_range
        if par is not None and isinstance(value, int | float) and not par.holds(value):
            return f"{value} is outside the proven acceptable range {par.span()}"
        return None

    def acknowledgement(self, raw: DocParameter, parameter: Parameter, value: Scalar) -> str:
        given = raw.child(v.ACKNOWLEDGEMENT)
        if given is not None and given.value is not None and given.value.text:
            return given.value.text[:10_000]
        normal = parameter.normal_range
        outside = normal is not None and isinstance(value, int | float) and not normal.holds(value)
        return self.source if outside else ""

    def ranges(self, raw: DocParameter, parameter: Parameter) -> None:
        for (which, bound), slot in v.RANGE_SLOTS.items():
            given = raw.child(slot)
            if given is None or given.value is None:
                continue
            span = getattr(parameter, which)
            ours = None if span is None else getattr(span, bound)
            theirs = number(given.value.text, given.value.data_type)
            if ours is None or theirs is None or float(theirs) != float(ours):
                self.gap(
                    "parameter_range",
                    given.id,
                    f"{raw.name}: {v.SLOT_NAMES[slot]}",
                    f"the document says {given.value.text}, the unit operation "
                    f"{'has none' if ours is None else f'says {ours}'}",
                )

    def formula_value(
        self, step_key: str, key: str, parameter: Parameter, raw: DocParameter
    ) -> None:
        name = one_line(raw.name) or "Formula"
        value, problem = convert(parameter, raw)
        if problem is None and value is not None:
            problem = self.outside_par(parameter, value)
        if problem is not None or value is None:
            self.gap("formula", raw.id, f"{name}: {parameter.name}", f"{problem}: not imported")
            return
        formula = self.named.setdefault(name, {"name": name, "overrides": {}, "acknowledged": {}})
        formula["overrides"][f"{step_key}.{key}"] = value
        normal = parameter.normal_range
        if normal is not None and isinstance(value, int | float) and not normal.holds(value):
            formula["acknowledged"][f"{step_key}.{key}"] = self.source

    def material(self, raw: DocParameter, slug: str, uo: UnitOperation) -> None:
        line = next((m for m in uo.materials if m.material == slug), None)
        if slug not in self.known.materials:
            reason = f"no material '{slug}' in the library or on the HUB"
            self.gap("material", raw.id, raw.name or slug, reason)
        elif line is None:
            reason = f"not a material of unit operation {uo.slug} {uo.version}"
            self.gap("material", raw.id, raw.name or slug, reason)
        elif raw.value is not None:
            quantity = number(raw.value.text, raw.value.data_type)
            same = quantity is not None and float(quantity) == float(line.quantity)
            if not same or (raw.value.unit and raw.value.unit != line.unit):
                self.gap(
                    "material",
                    raw.id,
                    raw.name or slug,
                    f"the document uses {raw.value.text} {raw.value.unit}, unit operation "
                    f"{uo.slug} {uo.version} {line.quantity} {line.unit}: its quantity is used",
                )

    # --- the recipe -----------------------------------------------------------------------

    def specification(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"modality": None, "batch_size": None}
        if self.doc.batch_size is not None:
            text, unit = self.doc.batch_size
            quantity = number(text, "")
            if quantity is None or quantity <= 0 or unit not in common_enum("ucum_unit"):
                reason = "the batch size needs a quantity above zero and a UCUM unit"
                self.gap("batch_size", "Header/BatchSize", f"{text} {unit}", reason)
            else:
                spec["batch_size"] = {"quantity": quantity, "unit": unit}
        modality = dict(self.doc.information).get(v.MODALITY)
        if modality is not None:
            if modality in common_enum("modality"):
                spec["modality"] = modality
            else:
                reason = f"not one of {', '.join(common_enum('modality'))}"
                self.gap("other_information", v.MODALITY, modality, reason)
        return spec

    def formulas(self) -> list[dict[str, Any]]:
        listed = [value for key, value in self.doc.information if key == v.FORMULA]
        names = [one_line(n) for n in listed if one_line(n)] + list(self.named)
        empty: dict[str, Any] = {"overrides": {}, "acknowledged": {}}
        return [{"name": n, **self.named.get(n, empty)} for n in dict.fromkeys(names)]

    def information(self) -> None:
        for key, value in self.doc.information:
            if key not in v.KNOWN_INFORMATION:
                self.gap("other_information", key, value[:200], "no place for it in the recipe")
        for requirement in self.doc.requirements:
            self.gap(
                "equipment_class",
                requirement.id,
                requirement.name or requirement.id,
                "an equipment requirement of the whole recipe: the recipe binds classes per step",
            )
