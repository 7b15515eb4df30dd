"""The designer's recipe content and its checks against the unit operations it uses.

A recipe holds unit procedures of ordered operations; each operation refers to a unit
operation in the tenant library (``library_item_id``) and may override its parameters, bind
an equipment class and carry notes. Formulas are named parameter sets chosen at batch
creation. Overrides outside the normal range need an acknowledgement with a reason; outside
the proven acceptable range they are refused.
"""

from __future__ import annotations

from typing import Any

from opencdmo.errors import ValidationFailed

NUMERIC = ("number", "integer", "duration")


def empty() -> dict[str, Any]:
    return {"unit_procedures": [], "formulas": []}


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
    elif nor and not nor["low"] <= value <= nor["high"] and not (reason or "").strip():
        problems.append(
            f"{where}: {value} is outside the normal range {nor['low']}-{nor['high']}"
            "; acknowledge it with a reason"
        )


def check(content: Any, library: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Validate designer content; ``library`` maps library item ids to unit operation content."""
    if not isinstance(content, dict) or not isinstance(content.get("unit_procedures"), list):
        raise ValidationFailed("content must have a list of unit_procedures")
    problems: list[str] = []
    operations: dict[str, dict[str, Any]] = {}
    procedure_keys: set[str] = set()
    for i, procedure in enumerate(content["unit_procedures"]):
        if not isinstance(procedure, dict) or not str(procedure.get("key", "")).strip():
            problems.append(f"unit_procedures[{i}]: needs a key and a name")
            continue
        if procedure["key"] in procedure_keys:
            problems.append(f"unit_procedures[{procedure['key']}]: duplicate key")
        procedure_keys.add(procedure["key"])
        for j, op in enumerate(procedure.get("operations", [])):
            _check_operation(
                f"unit_procedures[{procedure['key']}].operations[{j}]",
                op,
                library,
                operations,
                problems,
            )
    for formula in content.get("formulas", []) or []:
        _check_formula(formula, operations, library, problems)
    _fail(problems)
    return content


def _check_operation(
    where: str,
    op: Any,
    library: dict[str, dict[str, Any]],
    seen: dict[str, dict[str, Any]],
    problems: list[str],
) -> None:
    if not isinstance(op, dict) or not str(op.get("key", "")).strip():
        problems.append(f"{where}: needs a key")
        return
    where = where.rsplit("[", 1)[0] + f"[{op['key']}]"
    if op["key"] in seen:
        problems.append(f"{where}: duplicate operation key")
    seen[op["key"]] = op
    unit_operation = library.get(str(op.get("library_item_id")))
    if unit_operation is None:
        problems.append(f"{where}: library_item_id is not a unit operation in this library")
        return
    parameters = parameters_of(unit_operation)
    acknowledged = op.get("acknowledged") or {}
    for key, value in (op.get("parameters") or {}).items():
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
    problems: list[str],
) -> None:
    if not isinstance(formula, dict) or not str(formula.get("name", "")).strip():
        problems.append("formulas: every formula needs a name")
        return
    for target, value in (formula.get("overrides") or {}).items():
        op_key, _, key = str(target).partition(".")
        where = f"formulas[{formula['name']}].overrides[{target}]"
        op = operations.get(op_key)
        unit_operation = library.get(str(op.get("library_item_id"))) if op else None
        parameter = parameters_of(unit_operation).get(key) if unit_operation else None
        if parameter is None:
            problems.append(f"{where}: no such operation parameter")
            continue
        reason = (formula.get("acknowledged") or {}).get(target)
        _check_value(where, parameter, value, reason, problems)
