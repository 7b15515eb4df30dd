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

from typing import Any

from opencdmo.errors import ValidationFailed
from opencdmo.hub.content import common_enum
from opencdmo.recipes.model import content_to_dict, parse_content

NUMERIC = ("number", "integer", "duration")


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
    filled in. Content stored before the records existed that they refuse is left as it is."""
    filled = {**empty(), **content}
    try:
        return content_to_dict(parse_content(filled))
    except ValidationFailed:
        return filled


def methods_of(library: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in library.items() if v.get("kind") == "method"}


def unit_operations_of(library: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in library.items() if v.get("kind", "unit_operation") == "unit_operation"}


def _text(value: Any) -> bool:
    """A key or name: a non-blank string."""
    return isinstance(value, str) and bool(value.strip())


def _fail(problems: list[str]) -> None:
    if problems:
        raise ValidationFailed("; ".join(problems), details={"problems": problems})


def parameters_of(unit_operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        p["key"]: p
        for phase in unit_operation.get("phases", [])
        for p in phase.get("parameters", [])
    }


def _check_value(
    where: str, parameter: dict[str, Any], value: Any, reason: str | None, problems: list[str]
) -> None:
    if parameter.get("type") not in NUMERIC:
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        problems.append(f"{where}: must be a number")
        return
    par, nor = parameter.get("proven_acceptable_range"), parameter.get("normal_range")
    if par and not par["low"] <= value <= par["high"]:
        problems.append(
            f"{where}: {value} is outside the proven acceptable range "
            f"{par['low']}-{par['high']} {parameter.get('unit', '')}".rstrip()
        )
    elif nor and not nor["low"] <= value <= nor["high"] and not str(reason or "").strip():
        problems.append(
            f"{where}: {value} is outside the normal range {nor['low']}-{nor['high']}"
            "; acknowledge it with a reason"
        )


def step_content(
    entry: dict[str, Any],
    library: dict[str, dict[str, Any]],
    pinned: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """What a step, sampling point or release specification refers to: the content its
    revision pinned (``content_hash``), else its library item's current content; None when
    the library item is not in ``library``."""
    item = library.get(str(entry.get("library_item_id")))
    if item is None:
        return None
    return (pinned or {}).get(str(entry.get("content_hash"))) or item


def check(
    content: Any,
    library: dict[str, dict[str, Any]],
    pinned: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Validate designer content; ``library`` maps library item ids to the content of the
    tenant's unit operations and methods, ``pinned`` content hashes to the content a
    revision pinned (values and ranges are checked against what is pinned)."""
    pinned = pinned or {}
    parse_content(content)  # the shape first: types, lengths, no unknown fields
    assert isinstance(content, dict)
    problems: list[str] = []
    steps = unit_operations_of(library)
    operations: dict[str, dict[str, Any]] = {}
    procedure_keys: set[str] = set()
    for i, procedure in enumerate(content["unit_procedures"]):
        if not isinstance(procedure, dict) or not _text(procedure.get("key")):
            problems.append(f"unit_procedures[{i}]: needs a key and a name")
            continue
        if procedure["key"] in procedure_keys:
            problems.append(f"unit_procedures[{procedure['key']}]: duplicate key")
        procedure_keys.add(procedure["key"])
        steps_of = procedure.get("operations", [])
        if not isinstance(steps_of, list):
            problems.append(f"unit_procedures[{procedure['key']}].operations: must be a list")
            continue
        for j, op in enumerate(steps_of):
            _check_operation(
                f"unit_procedures[{procedure['key']}].operations[{j}]",
                op,
                steps,
                pinned,
                operations,
                problems,
            )
    formulas = content.get("formulas") or []
    if not isinstance(formulas, list):
        problems.append("formulas: must be a list")
        formulas = []
    for formula in formulas:
        _check_formula(formula, operations, steps, pinned, problems)
    _check_specification(content.get("specification") or {}, problems)
    methods = methods_of(library)
    _check_sampling_points(
        content.get("sampling_points") or [], operations, methods, pinned, problems
    )
    _check_release(content.get("release_specifications") or [], methods, pinned, problems)
    _fail(problems)
    return content


def _check_quantity(where: str, value: Any, problems: list[str]) -> None:
    if not isinstance(value, dict):
        problems.append(f"{where}: needs a quantity and a unit")
        return
    quantity = value.get("quantity")
    if not isinstance(quantity, int | float) or isinstance(quantity, bool) or quantity <= 0:
        problems.append(f"{where}.quantity: must be a number above zero")
    if value.get("unit") not in common_enum("ucum_unit"):
        problems.append(f"{where}.unit: '{value.get('unit')}' is not a known UCUM unit")


def _check_specification(spec: Any, problems: list[str]) -> None:
    if not isinstance(spec, dict):
        problems.append("specification: must be a mapping")
        return
    modality = spec.get("modality")
    if modality is not None and modality not in common_enum("modality"):
        problems.append(
            f"specification.modality: '{modality}' is not one of "
            f"{', '.join(common_enum('modality'))}"
        )
    if spec.get("batch_size") is not None:
        _check_quantity("specification.batch_size", spec["batch_size"], problems)


def _method(
    where: str,
    entry: dict[str, Any],
    methods: dict[str, dict[str, Any]],
    pinned: dict[str, dict[str, Any]],
    problems: list[str],
) -> dict[str, Any] | None:
    method = step_content(entry, methods, pinned)
    if method is None:
        problems.append(f"{where}: library_item_id is not a QC method in this library")
    return method


def _check_sampling_points(
    points: Any,
    operations: dict[str, dict[str, Any]],
    methods: dict[str, dict[str, Any]],
    pinned: dict[str, dict[str, Any]],
    problems: list[str],
) -> None:
    if not isinstance(points, list):
        problems.append("sampling_points: must be a list")
        return
    keys: set[str] = set()
    for i, point in enumerate(points):
        if not isinstance(point, dict) or not _text(point.get("key")):
            problems.append(f"sampling_points[{i}]: needs a key")
            continue
        where = f"sampling_points[{point['key']}]"
        if point["key"] in keys:
            problems.append(f"{where}: duplicate key")
        keys.add(point["key"])
        if str(point.get("after_operation")) not in operations:
            problems.append(
                f"{where}.after_operation: '{point.get('after_operation')}' is not a step "
                "of this recipe"
            )
        _method(where, point, methods, pinned, problems)
        _check_quantity(f"{where}.sample_volume", point.get("sample_volume"), problems)


def _limits_problem(limits: Any) -> str | None:
    if limits is None:
        return None
    if not isinstance(limits, dict) or not limits or set(limits) - {"low", "high"}:
        return "give a low limit, a high limit or both, or no limits"
    low, high = limits.get("low"), limits.get("high")
    for bound in (low, high):
        if bound is not None and (not isinstance(bound, int | float) or isinstance(bound, bool)):
            return "limits must be numbers"
    if isinstance(low, int | float) and isinstance(high, int | float) and low > high:
        return "the low limit is above the high limit"
    return None


def _check_release(
    specs: Any,
    methods: dict[str, dict[str, Any]],
    pinned: dict[str, dict[str, Any]],
    problems: list[str],
) -> None:
    if not isinstance(specs, list):
        problems.append("release_specifications: must be a list")
        return
    attributes: set[str] = set()
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or not _text(spec.get("attribute")):
            problems.append(f"release_specifications[{i}]: needs an attribute")
            continue
        where = f"release_specifications[{spec['attribute']}]"
        if spec["attribute"] in attributes:
            problems.append(f"{where}: the attribute is specified twice")
        attributes.add(spec["attribute"])
        method = _method(where, spec, methods, pinned, problems)
        fields = {f["key"]: f for f in (method or {}).get("result_fields", [])}
        if method is not None and spec["attribute"] not in fields:
            problems.append(f"{where}: {method['slug']} reports no result '{spec['attribute']}'")
        if not str(spec.get("acceptance_criterion", "")).strip():
            problems.append(f"{where}.acceptance_criterion: must not be empty")
        problem = _limits_problem(spec.get("limits"))
        if problem:
            problems.append(f"{where}.limits: {problem}")
        unit = spec.get("unit")
        if unit is not None and unit not in common_enum("ucum_unit"):
            problems.append(f"{where}.unit: '{unit}' is not a known UCUM unit")


def _check_operation(
    where: str,
    op: Any,
    library: dict[str, dict[str, Any]],
    pinned: dict[str, dict[str, Any]],
    seen: dict[str, dict[str, Any]],
    problems: list[str],
) -> None:
    if not isinstance(op, dict) or not _text(op.get("key")):
        problems.append(f"{where}: needs a key")
        return
    where = where.rsplit("[", 1)[0] + f"[{op['key']}]"
    if op["key"] in seen:
        problems.append(f"{where}: duplicate operation key")
    seen[op["key"]] = op
    unit_operation = step_content(op, library, pinned)
    if unit_operation is None:
        problems.append(f"{where}: library_item_id is not a unit operation in this library")
        return
    parameters = parameters_of(unit_operation)
    acknowledged = op.get("acknowledged") or {}
    values = op.get("parameters") or {}
    if not isinstance(values, dict) or not isinstance(acknowledged, dict):
        problems.append(f"{where}: parameters and acknowledged must be mappings")
        return
    for key, value in values.items():
        if key not in parameters:
            problems.append(
                f"{where}.parameters[{key}]: {unit_operation['slug']} has no such parameter"
            )
            continue
        _check_value(
            f"{where}.parameters[{key}]", parameters[key], value, acknowledged.get(key), problems
        )
    equipment = op.get("equipment_class")
    if equipment and equipment not in unit_operation.get("equipment_classes", []):
        problems.append(
            f"{where}.equipment_class: {equipment} is not an equipment class of "
            f"{unit_operation['slug']}"
        )


def _check_formula(
    formula: Any,
    operations: dict[str, dict[str, Any]],
    library: dict[str, dict[str, Any]],
    pinned: dict[str, dict[str, Any]],
    problems: list[str],
) -> None:
    if not isinstance(formula, dict) or not _text(formula.get("name")):
        problems.append("formulas: every formula needs a name")
        return
    overrides, acknowledged = formula.get("overrides") or {}, formula.get("acknowledged") or {}
    if not isinstance(overrides, dict) or not isinstance(acknowledged, dict):
        problems.append(f"formulas[{formula['name']}]: overrides must be a mapping")
        return
    for target, value in overrides.items():
        op_key, _, key = str(target).partition(".")
        where = f"formulas[{formula['name']}].overrides[{target}]"
        op = operations.get(op_key)
        unit_operation = step_content(op, library, pinned) if op else None
        parameter = parameters_of(unit_operation).get(key) if unit_operation else None
        if parameter is None:
            problems.append(f"{where}: no such operation parameter")
            continue
        reason = acknowledged.get(target)
        _check_value(where, parameter, value, reason, problems)


def stale(content: dict[str, Any], library: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Library item id -> its current version, for entries pinned to other content."""
    entries = [op for up in content["unit_procedures"] for op in up["operations"]]
    entries += content.get("sampling_points", []) + content.get("release_specifications", [])
    found: dict[str, str] = {}
    for entry in entries:
        item = library.get(str(entry.get("library_item_id")))
        pin = entry.get("content_hash")
        if item is not None and pin and pin != item.get("library_content_hash"):
            found[str(entry["library_item_id"])] = str(item.get("version"))
    return found
