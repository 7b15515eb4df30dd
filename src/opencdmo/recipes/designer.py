"""Designer edits as pure functions on recipe content: each returns new content, which the
service saves as a revision (validated, with optimistic concurrency)."""

from __future__ import annotations

import copy
from typing import Any

from opencdmo.errors import ValidationFailed
from opencdmo.fields import check_name, check_text, folded_text
from opencdmo.hub.model import Method, UnitOperation
from opencdmo.recipes.publication import hub_key


def _key(name: str, taken: set[str], prefix: str = "step") -> str:
    """A snake_case key (the HUB's key format) not yet taken."""
    base = hub_key(name, prefix)[:40].rstrip("_")
    key, n = base, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    return key


def _all_ops(content: dict[str, Any]) -> set[str]:
    return {op["key"] for up in content["unit_procedures"] for op in up["operations"]}


def add_procedure(content: dict[str, Any], name: str) -> dict[str, Any]:
    name = check_name(name, "name", "A unit procedure's name")
    result = copy.deepcopy(content)
    key = _key(name, {up["key"] for up in result["unit_procedures"]})
    result["unit_procedures"].append({"key": key, "name": name, "operations": []})
    return result


def add_operation(
    content: dict[str, Any],
    procedure: str,
    library_item_id: str,
    unit_operation: UnitOperation,
    position: int | None = None,
) -> dict[str, Any]:
    result = copy.deepcopy(content)
    target = next((up for up in result["unit_procedures"] if up["key"] == procedure), None)
    if target is None:
        raise ValidationFailed(
            "Choose a unit procedure to add the step to.", details={"field": "procedure"}
        )
    key = _key(unit_operation.slug, _all_ops(result))
    where = len(target["operations"]) if position is None else max(0, position)
    target["operations"].insert(
        where,
        {
            "key": key,
            "library_item_id": library_item_id,
            "unit_operation": unit_operation.slug,
            "version": unit_operation.version,
            "parameters": {},
            "acknowledged": {},
            "equipment_class": None,
            "notes": "",
        },
    )
    return result


def remove_operation(content: dict[str, Any], op_key: str) -> dict[str, Any]:
    result = copy.deepcopy(content)
    for up in result["unit_procedures"]:
        up["operations"] = [op for op in up["operations"] if op["key"] != op_key]
    for formula in result.get("formulas", []):
        formula["overrides"] = {
            k: v for k, v in formula.get("overrides", {}).items() if not k.startswith(op_key + ".")
        }
    # A sampling point is taken after its step: it goes with it.
    result["sampling_points"] = [
        p for p in result.get("sampling_points", []) if p.get("after_operation") != op_key
    ]
    return result


def arrange(content: dict[str, Any], layout: dict[str, list[str]]) -> dict[str, Any]:
    """Put operations in the given order per unit procedure (a drag and drop, or a move)."""
    result = copy.deepcopy(content)
    ops = {op["key"]: op for up in result["unit_procedures"] for op in up["operations"]}
    placed = [key for keys in layout.values() for key in keys]
    if sorted(placed) != sorted(ops) or any(
        up not in {u["key"] for u in result["unit_procedures"]} for up in layout
    ):
        raise ValidationFailed(
            "The arrangement must place every step exactly once.", details={"field": "layout"}
        )
    for up in result["unit_procedures"]:
        up["operations"] = [ops[key] for key in layout.get(up["key"], [])]
    return result


def move(content: dict[str, Any], op_key: str, offset: int) -> dict[str, Any]:
    """Move a step up (-1) or down (+1) within its unit procedure (keyboard alternative)."""
    layout = {
        up["key"]: [op["key"] for op in up["operations"]] for up in content["unit_procedures"]
    }
    for keys in layout.values():
        if op_key in keys:
            i = keys.index(op_key)
            j = max(0, min(len(keys) - 1, i + offset))
            keys.insert(j, keys.pop(i))
    return arrange(content, layout)


def relocate(content: dict[str, Any], op_key: str, procedure: str) -> dict[str, Any]:
    """Move a step to the end of another unit procedure (keyboard alternative to a drag)."""
    layout = {
        up["key"]: [op["key"] for op in up["operations"] if op["key"] != op_key]
        for up in content["unit_procedures"]
    }
    if procedure not in layout:
        raise ValidationFailed(
            "Choose a unit procedure to move the step to.", details={"field": "procedure"}
        )
    if not any(
        op_key in [op["key"] for op in up["operations"]] for up in content["unit_procedures"]
    ):
        raise ValidationFailed("No such step in this recipe.", details={"field": "step"})
    layout[procedure].append(op_key)
    return arrange(content, layout)


def configure(
    content: dict[str, Any],
    op_key: str,
    parameters: dict[str, Any],
    acknowledged: dict[str, str],
    equipment_class: str | None,
    notes: str,
) -> dict[str, Any]:
    result = copy.deepcopy(content)
    for up in result["unit_procedures"]:
        for op in up["operations"]:
            if op["key"] == op_key:
                op["parameters"] = parameters
                op["acknowledged"] = {k: v for k, v in acknowledged.items() if v.strip()}
                op["equipment_class"] = equipment_class or None
                op["notes"] = check_text(notes, "notes")
                return result
    raise ValidationFailed("No such step in this recipe.", details={"field": "step"})


def set_formula(content: dict[str, Any], name: str, lines: str) -> dict[str, Any]:
    """Create or replace a formula from lines of ``step.parameter = value [# reason]``;
    an empty text removes the formula."""
    name = check_name(name, "formula", "A formula's name")
    check_text(lines, "overrides", "The overrides")
    overrides: dict[str, Any] = {}
    acknowledged: dict[str, str] = {}
    for number, raw in enumerate(lines.splitlines(), 1):
        line, _, reason = raw.partition("#")
        if not line.strip():
            continue
        target, sep, value = line.partition("=")
        try:
            number_value = float(value)
        except ValueError:
            number_value = None
        if not sep or number_value is None or "." not in target.strip():
            raise ValidationFailed(
                f"Formula line {number}: write step.parameter = number.",
                details={"field": "overrides"},
            )
        key = target.strip()
        overrides[key] = int(number_value) if number_value.is_integer() else number_value
        if reason.strip():
            acknowledged[key] = reason.strip()
    result = copy.deepcopy(content)
    formulas = [f for f in result.get("formulas", []) if f.get("name") != name]
    if overrides:
        formulas.append({"name": name, "overrides": overrides, "acknowledged": acknowledged})
    result["formulas"] = formulas
    return result


def number(raw: str, field: str) -> int | float:
    """A form's number: an int when whole; a clear 422 naming the field otherwise."""
    try:
        value = float(raw)
    except ValueError:
        raise ValidationFailed(
            f"{field}: '{raw}' is not a number.", details={"field": field}
        ) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValidationFailed(f"{field}: '{raw}' is not a number.", details={"field": field})
    return int(value) if value.is_integer() else value


def _quantity(raw: str, unit: str, field: str) -> dict[str, Any]:
    return {"quantity": number(raw, field), "unit": unit}


def set_specification(
    content: dict[str, Any], modality: str, batch_quantity: str, batch_unit: str
) -> dict[str, Any]:
    """Modality and nominal batch size (either may be left empty while drafting)."""
    result = copy.deepcopy(content)
    result["specification"] = {
        "modality": modality or None,
        "batch_size": _quantity(batch_quantity, batch_unit, "batch_quantity")
        if batch_quantity.strip()
        else None,
    }
    return result


def add_sampling_point(
    content: dict[str, Any],
    after_operation: str,
    method_id: str,
    method: Method,
    volume: str,
    unit: str,
    note: str = "",
) -> dict[str, Any]:
    """An in-process sample after a step, tested by a QC method of the library."""
    result = copy.deepcopy(content)
    points = result.setdefault("sampling_points", [])
    key = _key(f"{after_operation} {method.slug}", {p["key"] for p in points}, "sample")
    points.append(
        {
            "key": key,
            "after_operation": after_operation,
            "library_item_id": method_id,
            "method": method.slug,
            "method_version": method.version,
            "sample_volume": _quantity(volume, unit, "volume"),
            "note": folded_text(note, "note"),
        }
    )
    return result


def remove_sampling_point(content: dict[str, Any], key: str) -> dict[str, Any]:
    result = copy.deepcopy(content)
    points = result.get("sampling_points", [])
    if not any(p.get("key") == key for p in points):
        raise ValidationFailed("No such sampling point in this recipe.", details={"field": "key"})
    result["sampling_points"] = [p for p in points if p.get("key") != key]
    return result


def set_release_specification(
    content: dict[str, Any],
    method_id: str,
    method: Method,
    attribute: str,
    criterion: str,
    low: str = "",
    high: str = "",
) -> dict[str, Any]:
    """Create or replace the release specification of one attribute (a result field of a QC
    method), with its acceptance criterion and optional numeric limits."""
    field = method.result_field(attribute)
    if field is None:
        raise ValidationFailed(
            f"{method.slug} reports no result '{attribute}'.",
            details={"field": "result"},
        )
    limits = {
        bound: number(raw, bound) for bound, raw in (("low", low), ("high", high)) if raw.strip()
    }
    spec: dict[str, Any] = {
        "attribute": attribute,
        "library_item_id": method_id,
        "method": method.slug,
        "method_version": method.version,
        "acceptance_criterion": folded_text(criterion, "criterion"),
    }
    if limits:
        spec["limits"] = limits
    if field.unit is not None:
        spec["unit"] = field.unit
    result = copy.deepcopy(content)
    specs = result.setdefault("release_specifications", [])
    index = next((i for i, s in enumerate(specs) if s.get("attribute") == attribute), None)
    if index is None:
        specs.append(spec)
    else:
        specs[index] = spec
    return result


def remove_release_specification(content: dict[str, Any], attribute: str) -> dict[str, Any]:
    result = copy.deepcopy(content)
    specs = result.get("release_specifications", [])
    if not any(s.get("attribute") == attribute for s in specs):
        raise ValidationFailed(
            "No such release specification in this recipe.", details={"field": "attribute"}
        )
    result["release_specifications"] = [s for s in specs if s.get("attribute") != attribute]
    return result


def adopt(content: dict[str, Any], library_item_ids: set[str]) -> dict[str, Any]:
    """Let the entries on these library items take the items' current content: their pins
    are dropped, and saving pins them anew (the diff shows the version and range changes)."""
    result = copy.deepcopy(content)
    entries = [op for up in result["unit_procedures"] for op in up["operations"]]
    entries += result.get("sampling_points", []) + result.get("release_specifications", [])
    for entry in entries:
        if str(entry.get("library_item_id")) in library_item_ids:
            entry.pop("content_hash", None)
    return result
