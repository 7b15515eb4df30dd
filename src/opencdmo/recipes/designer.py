"""Designer edits as pure functions on recipe content: each returns new content, which the
service saves as a revision (validated, with optimistic concurrency)."""

from __future__ import annotations

import copy
import re
from typing import Any

from opencdmo.errors import ValidationFailed


def _key(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "step"
    key, n = base, 2
    while key in taken:
        key, n = f"{base}-{n}", n + 1
    return key


def _all_ops(content: dict[str, Any]) -> set[str]:
    return {op["key"] for up in content["unit_procedures"] for op in up["operations"]}


def add_procedure(content: dict[str, Any], name: str) -> dict[str, Any]:
    name = " ".join(name.split())
    if not name:
        raise ValidationFailed("A unit procedure needs a name.", details={"field": "name"})
    result = copy.deepcopy(content)
    key = _key(name, {up["key"] for up in result["unit_procedures"]})
    result["unit_procedures"].append({"key": key, "name": name, "operations": []})
    return result


def add_operation(
    content: dict[str, Any],
    procedure: str,
    library_item_id: str,
    unit_operation: dict[str, Any],
    position: int | None = None,
) -> dict[str, Any]:
    result = copy.deepcopy(content)
    target = next((up for up in result["unit_procedures"] if up["key"] == procedure), None)
    if target is None:
        raise ValidationFailed(
            "Choose a unit procedure to add the step to.", details={"field": "procedure"}
        )
    key = _key(unit_operation.get("slug", "step"), _all_ops(result))
    where = len(target["operations"]) if position is None else max(0, position)
    target["operations"].insert(
        where,
        {
            "key": key,
            "library_item_id": library_item_id,
            "unit_operation": unit_operation.get("slug"),
            "version": unit_operation.get("version"),
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
                op["notes"] = notes
                return result
    raise ValidationFailed("No such step in this recipe.", details={"field": "step"})


def set_formula(content: dict[str, Any], name: str, lines: str) -> dict[str, Any]:
    """Create or replace a formula from lines of ``step.parameter = value [# reason]``;
    an empty text removes the formula."""
    name = " ".join(name.split())
    if not name:
        raise ValidationFailed("A formula needs a name.", details={"field": "formula"})
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
