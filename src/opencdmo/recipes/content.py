"""The designer's recipe content and its checks against the unit operations it uses.

A recipe holds unit procedures of ordered operations; each operation refers to a unit
operation in the tenant library (``library_item_id``) and may override its parameters, bind
an equipment class and carry notes. Formulas are named parameter sets chosen at batch
creation. Overrides outside the normal range need an acknowledgement with a reason; outside
the proven acceptable range they are refused.

The specification (modality and batch size), the in-process sampling points (a QC method
after a step) and the release specifications (a result field of a QC method with its
acceptance criterion) complete the recipe, so that it can be executed, released and
published to the HUB. Methods are library items too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from opencdmo.errors import ValidationFailed
from opencdmo.hub.content import common_enum
from opencdmo.hub.model import LibraryContent, Method, Parameter, UnitOperation, is_number
from opencdmo.recipes.model import (
    Formula,
    Limits,
    Operation,
    Quantity,
    RecipeContent,
    ReleaseSpecification,
    SamplingPoint,
    Specification,
    content_to_dict,
    parse_content,
)

NUMERIC = ("number", "integer", "duration")


@dataclass(frozen=True)
class LibraryEntry:
    """A unit operation or QC method of the tenant's library, its content decoded once where
    it is read; ``content_hash`` is the hash of the stored content (what a step pins)."""

    id: str
    source: str  # installed or forked
    content_hash: str
    content: UnitOperation | Method


# Library item id -> entry; content hash -> the content a revision pinned.
Library = dict[str, LibraryEntry]
Pinned = dict[str, LibraryContent]
_Kind = TypeVar("_Kind", UnitOperation, Method)


def empty() -> dict[str, Any]:
    return {
        "unit_procedures": [],
        "formulas": [],
        "specification": {"modality": None, "batch_size": None},
        "sampling_points": [],
        "release_specifications": [],
    }


def normalised(content: dict[str, Any]) -> dict[str, Any]:
    """Content with every section and field present (revisions saved before a section existed
    lack it), mapped through the typed records, so that diffs show what changed, not what was
    filled in. Content stored before the records existed that they refuse is left as it is,
    but for sections stored as null, which read as empty."""
    filled = {**empty(), **{k: v for k, v in content.items() if v is not None}}
    try:
        return content_to_dict(parse_content(filled))
    except ValidationFailed:
        return filled


def methods_of(library: Library) -> dict[str, Method]:
    return {k: e.content for k, e in library.items() if isinstance(e.content, Method)}


def unit_operations_of(library: Library) -> dict[str, UnitOperation]:
    return {k: e.content for k, e in library.items() if isinstance(e.content, UnitOperation)}


def _fail(problems: list[str]) -> None:
    if problems:
        raise ValidationFailed("; ".join(problems), details={"problems": problems})


def parameters_of(unit_operation: UnitOperation | None) -> dict[str, Parameter]:
    return unit_operation.parameters() if unit_operation is not None else {}


def _check_value(
    where: str, parameter: Parameter, value: object, reason: str | None, problems: list[str]
) -> None:
    if parameter.type not in NUMERIC:
        return
    if not is_number(value):
        problems.append(f"{where}: must be a number")
        return
    par, nor = parameter.proven_acceptable_range, parameter.normal_range
    if par is not None and not par.holds(value):
        problems.append(
            f"{where}: {value} is outside the proven acceptable range "
            f"{par.span()} {parameter.unit or ''}".rstrip()
        )
    elif nor is not None and not nor.holds(value) and not str(reason or "").strip():
        problems.append(
            f"{where}: {value} is outside the normal range {nor.span()}"
            "; acknowledge it with a reason"
        )


def step_content(
    entry: Mapping[str, Any], library: Library, pinned: Pinned | None = None
) -> UnitOperation | None:
    """The unit operation a step refers to: the content its revision pinned
    (``content_hash``), else its library item's current content; None when the library item
    is not a unit operation in ``library``."""
    return _resolve(
        UnitOperation, entry.get("library_item_id"), entry.get("content_hash"), library, pinned
    )


def _resolve(
    kind: type[_Kind],
    library_item_id: object,
    pin: object,
    library: Library,
    pinned: Pinned | None,
) -> _Kind | None:
    entry = library.get(str(library_item_id))
    if entry is None or not isinstance(entry.content, kind):
        return None
    held = (pinned or {}).get(str(pin)) if pin is not None else None
    return held if isinstance(held, kind) else entry.content


def check(content: Any, library: Library, pinned: Pinned | None = None) -> dict[str, Any]:
    """Validate designer content: its shape (the typed records), then against the library:
    ``library`` holds the tenant's unit operations and methods by library item id, ``pinned``
    the contents a revision pinned by hash (values and ranges are checked against what is
    pinned)."""
    record = parse_content(content)
    assert isinstance(content, dict)
    _fail(_Checks(library, pinned or {}).problems(record))
    return content


class _Checks:
    """The content checks of one revision against its library and pinned contents."""

    def __init__(self, library: Library, pinned: Pinned) -> None:
        self.library = library
        self.pinned = pinned
        self.operations: dict[str, Operation] = {}
        self.found: list[str] = []

    def problems(self, content: RecipeContent) -> list[str]:
        procedure_keys: set[str] = set()
        for procedure in content.unit_procedures:
            if procedure.key in procedure_keys:
                self.found.append(f"unit_procedures[{procedure.key}]: duplicate key")
            procedure_keys.add(procedure.key)
            for op in procedure.operations:
                self.operation(f"unit_procedures[{procedure.key}].operations[{op.key}]", op)
        for formula in content.formulas:
            self.formula(formula)
        self.specification(content.specification)
        self.sampling_points(content.sampling_points)
        self.release(content.release_specifications)
        return self.found

    def unit_operation(self, op: Operation) -> UnitOperation | None:
        return _resolve(
            UnitOperation, op.library_item_id, op.content_hash, self.library, self.pinned
        )

    def operation(self, where: str, op: Operation) -> None:
        if op.key in self.operations:
            self.found.append(f"{where}: duplicate operation key")
        self.operations[op.key] = op
        unit_operation = self.unit_operation(op)
        if unit_operation is None:
            self.found.append(f"{where}: library_item_id is not a unit operation in this library")
            return
        parameters = unit_operation.parameters()
        for key, value in op.parameters.items():
            if key not in parameters:
                self.found.append(
                    f"{where}.parameters[{key}]: {unit_operation.slug} has no such parameter"
                )
                continue
            reason = op.acknowledged.get(key)
            _check_value(f"{where}.parameters[{key}]", parameters[key], value, reason, self.found)
        if op.equipment_class and op.equipment_class not in unit_operation.equipment_classes:
            self.found.append(
                f"{where}.equipment_class: {op.equipment_class} is not an equipment class of "
                f"{unit_operation.slug}"
            )

    def formula(self, formula: Formula) -> None:
        if not formula.name.strip():
            self.found.append("formulas: every formula needs a name")
            return
        for target, value in formula.overrides.items():
            op_key, _, key = target.partition(".")
            where = f"formulas[{formula.name}].overrides[{target}]"
            op = self.operations.get(op_key)
            parameter = parameters_of(self.unit_operation(op) if op else None).get(key)
            if parameter is None:
                self.found.append(f"{where}: no such operation parameter")
                continue
            _check_value(where, parameter, value, formula.acknowledged.get(target), self.found)

    def quantity(self, where: str, value: Quantity) -> None:
        if value.quantity <= 0:
            self.found.append(f"{where}.quantity: must be a number above zero")
        if value.unit not in common_enum("ucum_unit"):
            self.found.append(f"{where}.unit: '{value.unit}' is not a known UCUM unit")

    def specification(self, spec: Specification) -> None:
        if spec.modality is not None and spec.modality not in common_enum("modality"):
            self.found.append(
                f"specification.modality: '{spec.modality}' is not one of "
                f"{', '.join(common_enum('modality'))}"
            )
        if spec.batch_size is not None:
            self.quantity("specification.batch_size", spec.batch_size)

    def method(self, where: str, library_item_id: str, pin: str | None) -> Method | None:
        method = _resolve(Method, library_item_id, pin, self.library, self.pinned)
        if method is None:
            self.found.append(f"{where}: library_item_id is not a QC method in this library")
        return method

    def sampling_points(self, points: list[SamplingPoint]) -> None:
        keys: set[str] = set()
        for point in points:
            where = f"sampling_points[{point.key}]"
            if point.key in keys:
                self.found.append(f"{where}: duplicate key")
            keys.add(point.key)
            if point.after_operation not in self.operations:
                self.found.append(
                    f"{where}.after_operation: '{point.after_operation}' is not a step "
                    "of this recipe"
                )
            self.method(where, point.library_item_id, point.content_hash)
            self.quantity(f"{where}.sample_volume", point.sample_volume)

    def release(self, specs: list[ReleaseSpecification]) -> None:
        attributes: set[str] = set()
        for spec in specs:
            where = f"release_specifications[{spec.attribute}]"
            if spec.attribute in attributes:
                self.found.append(f"{where}: the attribute is specified twice")
            attributes.add(spec.attribute)
            method = self.method(where, spec.library_item_id, spec.content_hash)
            if method is not None and method.result_field(spec.attribute) is None:
                self.found.append(f"{where}: {method.slug} reports no result '{spec.attribute}'")
            if not spec.acceptance_criterion.strip():
                self.found.append(f"{where}.acceptance_criterion: must not be empty")
            problem = _limits_problem(spec.limits)
            if problem:
                self.found.append(f"{where}.limits: {problem}")
            if spec.unit is not None and spec.unit not in common_enum("ucum_unit"):
                self.found.append(f"{where}.unit: '{spec.unit}' is not a known UCUM unit")


def _limits_problem(limits: Limits | None) -> str | None:
    if limits is None:
        return None
    if limits.low is None and limits.high is None:
        return "give a low limit, a high limit or both, or no limits"
    if limits.low is not None and limits.high is not None and limits.low > limits.high:
        return "the low limit is above the high limit"
    return None


def stale(content: dict[str, Any], library: Library) -> dict[str, str]:
    """Library item id -> its current version, for entries pinned to other content."""
    entries = [op for up in content["unit_procedures"] for op in up.get("operations") or []]
    entries += (content.get("sampling_points") or []) + (
        content.get("release_specifications") or []
    )
    found: dict[str, str] = {}
    for entry in entries:
        item = library.get(str(entry.get("library_item_id")))
        pin = entry.get("content_hash")
        if item is not None and pin and pin != item.content_hash:
            found[item.id] = item.content.version
    return found
