"""Two revisions compared in process language: "Storage moved from Cryopreservation to
Starting material, position 2 to 1", "Expansion: IL-2 concentration 100 → 120 IU/mL".

The structural diff (``hub.diff``) says what changed by path; this module names each change
as a process engineer and a QA reviewer say it: steps and unit procedures by name, positions
counted from 1, parameters by their name with their unit, values formatted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from opencdmo.hub.diff import Change
from opencdmo.labels import label
from opencdmo.units import limits, number, quantity

_STEP = re.compile(r"^unit_procedures\[(?P<up>[^\]]*)\]\.operations\[(?P<op>[^\]]*)\](?P<rest>.*)$")
_PROCEDURE = re.compile(r"^unit_procedures\[(?P<up>[^\]]*)\](?P<rest>.*)$")
_RECORD = re.compile(r"^(?P<list>\w+)\[(?P<key>[^\]]*)\](?P<rest>.*)$")
_RANGE = re.compile(r"^\.ranges\.(?P<param>\w+)\.(?P<range>\w+)(\.(?P<bound>low|high))?$")

_LISTS = {
    "release_specifications": "Release specification",
    "sampling_points": "In-process sample",
    "formulas": "Formula",
}
_FIELDS = {
    "equipment_class": "equipment class",
    "notes": "notes",
    "unit_operation": "unit operation",
    "version": "unit operation version",
    "content_hash": "pinned content",
    "library_item_id": "library item",
}


@dataclass(frozen=True)
class Step:
    """What a revision says of a step: its name, where it is, its parameters' names and units."""

    name: str
    procedure: str
    position: int  # from 1, within its unit procedure
    parameters: dict[str, tuple[str, str | None]]


@dataclass(frozen=True)
class Described:
    """A change with its sentence (``where`` names the step or section it is in)."""

    change: Change
    where: str
    text: str
    old: str
    new: str


@dataclass(frozen=True)
class Side:
    """One revision as the sentences need it: its steps by key, its procedures' names."""

    steps: dict[str, Step]
    procedures: dict[str, str]


# Each step key: the name of the unit operation it uses, its parameters' (name, unit).
StepNames = dict[str, tuple[str, dict[str, tuple[str, str | None]]]]


def side(content: dict[str, Any], names: StepNames) -> Side:
    """The steps and procedures of one revision; ``names`` gives each step key the name of
    the unit operation it uses and its parameters' (name, unit)."""
    steps: dict[str, Step] = {}
    procedures: dict[str, str] = {}
    for up in content.get("unit_procedures") or []:
        procedures[up["key"]] = up.get("name") or label(up["key"])
        for position, op in enumerate(up.get("operations") or [], start=1):
            name, parameters = names.get(op["key"], (label(op["key"]), {}))
            steps[op["key"]] = Step(name, procedures[up["key"]], position, parameters)
    return Side(steps, procedures)


def _value(value: Any, unit_code: str | None = None) -> str:
    if isinstance(value, dict):
        if {"low", "high"} & set(value):
            return limits(value.get("low"), value.get("high"), unit_code)
        if "quantity" in value:
            return quantity(value["quantity"], value.get("unit"))
        named = value.get("name") or value.get("attribute") or value.get("key")
        return (
            str(named) if named else ", ".join(f"{label(k)} {_value(v)}" for k, v in value.items())
        )
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value) or "none"
    if value is None:
        return ""
    if isinstance(value, str):
        return (
            label(value)
            if value in ("car-t", "tcr-t", "aav", "lvv", "msc", "ipsc", "nk")
            else value
        )
    return quantity(value, unit_code) if unit_code else number(value)


def _arrow(op: str, old: str, new: str) -> str:
    if op == "added":
        return f"set to {new}" if new else "added"
    if op == "removed":
        return f"removed (was {old})" if old else "removed"
    return f"{old or '—'} → {new or '—'}"


def describe(changes: list[Change], before: Side, after: Side) -> list[Described]:
    """Each change as a sentence, in the diff's order."""
    return [_one(c, before, after) for c in changes]


def _one(c: Change, before: Side, after: Side) -> Described:
    step = _STEP.match(c.path)
    if step:
        return _step_change(c, step["op"], step["rest"], before, after)
    procedure = _PROCEDURE.match(c.path)
    if procedure:
        key, rest = procedure["up"], procedure["rest"]
        name = after.procedures.get(key) or before.procedures.get(key) or label(key)
        if not rest:
            verbs = {"added": "added", "removed": "removed", "moved": "moved"}
            text = f"Unit procedure {name} {verbs.get(c.op, 'changed')}"
            if c.op == "moved" and isinstance(c.old, int) and isinstance(c.new, int):
                text += f", position {c.old + 1} to {c.new + 1}"
            return Described(c, name, text, "", "")
        if rest == ".name":
            return Described(
                c, name, f"Unit procedure {c.old} renamed {c.new}", str(c.old), str(c.new)
            )
        field = label(rest.lstrip(".").replace(".", " "))
        old, new = _value(c.old), _value(c.new)
        return Described(c, name, f"{name}: {field.lower()} {_arrow(c.op, old, new)}", old, new)
    record = _RECORD.match(c.path)
    if record and record["list"] in _LISTS:
        kind, key, rest = _LISTS[record["list"]], record["key"], record["rest"]
        name = label(key)
        if not rest:
            return Described(c, kind, f"{kind} {name} {c.op}", _value(c.old), _value(c.new))
        field = label(rest.lstrip(".").replace(".", " ")).lower()
        old, new = _value(c.old), _value(c.new)
        return Described(c, kind, f"{kind} {name}: {field} {_arrow(c.op, old, new)}", old, new)
    section = label(c.section)
    rest = c.path[len(c.section) :].lstrip(".")
    field = label(rest.replace(".", " ")).lower() if rest else ""
    old, new = _value(c.old), _value(c.new)
    text = (
        f"{section}: {field} {_arrow(c.op, old, new)}"
        if field
        else f"{section} {_arrow(c.op, old, new)}"
    )
    return Described(c, section, text, old, new)


def _step_change(c: Change, key: str, rest: str, before: Side, after: Side) -> Described:
    now, was = after.steps.get(key), before.steps.get(key)
    step = now or was
    name = step.name if step else label(key)
    if not rest:
        if c.op == "moved" and was and now:
            if was.procedure != now.procedure:
                text = (
                    f"{name} moved from {was.procedure} to {now.procedure}, "
                    f"position {was.position} to {now.position}"
                )
            else:
                text = (
                    f"{name} moved within {now.procedure}, "
                    f"position {was.position} to {now.position}"
                )
            return Described(
                c,
                name,
                text,
                f"{was.procedure} #{was.position}",
                f"{now.procedure} #{now.position}",
            )
        if c.op == "added" and now:
            return Described(
                c,
                name,
                f"Step {name} added to {now.procedure} at position {now.position}",
                "",
                name,
            )
        if c.op == "removed" and was:
            return Described(c, name, f"Step {name} removed from {was.procedure}", name, "")
        return Described(c, name, f"Step {name} {c.op}", "", "")
    ranged = _RANGE.match(rest)
    parameters = {**(was.parameters if was else {}), **(now.parameters if now else {})}
    if ranged:
        pname, punit = parameters.get(ranged["param"], (label(ranged["param"]), None))
        which = label(ranged["range"]).lower()
        bound = {"low": " (lower limit)", "high": " (upper limit)"}.get(ranged["bound"] or "", "")
        old, new = _value(c.old, punit), _value(c.new, punit)
        return Described(
            c, name, f"{name}: {pname}, {which}{bound} {_arrow(c.op, old, new)}", old, new
        )
    if rest.startswith(".parameters."):
        pkey = rest.removeprefix(".parameters.")
        pname, punit = parameters.get(pkey, (label(pkey), None))
        old, new = _value(c.old, punit), _value(c.new, punit)
        if c.op == "removed":
            return Described(c, name, f"{name}: {pname} back to its default (was {old})", old, new)
        return Described(c, name, f"{name}: {pname} {_arrow(c.op, old, new)}", old, new)
    if rest.startswith(".acknowledged."):
        pkey = rest.removeprefix(".acknowledged.")
        pname = parameters.get(pkey, (label(pkey), None))[0]
        old, new = _value(c.old), _value(c.new)
        verb = "reason outside the normal range"
        return Described(c, name, f"{name}: {pname}, {verb} {_arrow(c.op, old, new)}", old, new)
    material = re.match(r"^\.materials\[(?P<m>[^\]]*)\](?P<field>.*)$", rest)
    if material:
        what = label(material["m"])
        field = label(material["field"].lstrip(".").replace(".", " ")).lower()
        old, new = _value(c.old), _value(c.new)
        if not field:
            return Described(c, name, f"{name}: material {what} {c.op}", old, new)
        return Described(
            c, name, f"{name}: material {what}, {field} {_arrow(c.op, old, new)}", old, new
        )
    field = _FIELDS.get(rest.lstrip("."), label(rest.lstrip(".").replace(".", " ")).lower())
    old, new = _value(c.old), _value(c.new)
    return Described(c, name, f"{name}: {field} {_arrow(c.op, old, new)}", old, new)
