"""The master batch record view: bill of materials, equipment classes and the flow layout,
computed from a recipe revision and the unit operations it references."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from opencdmo.hub.model import Number, Parameter, is_number
from opencdmo.recipes.content import (
    Library,
    Pinned,
    parameters_of,
    step_content,
)

BOX_W, BOX_H, GAP_X, GAP_Y, HEAD = 220, 46, 40, 18, 34


RangeStateKey = Literal["in_range", "acknowledged", "unacknowledged", "outside_par", "no_range"]


@dataclass(frozen=True)
class RangeState:
    """Where a parameter's value lies against its ranges: ``key`` for the badge's tone,
    ``text`` the state in words (a page never shows the state by colour alone)."""

    key: RangeStateKey
    text: str


def range_state(parameter: Parameter | None, value: object, reason: object = None) -> RangeState:
    """Classify a value against the parameter's normal range and proven acceptable range
    (bounds inclusive, a missing bound does not limit). A value outside the proven acceptable
    range is that whatever the reason; outside the normal range it is acknowledged when a
    reason is given. A value that is not a number, or a parameter without ranges, has no
    range to be in."""
    normal = parameter.normal_range if parameter is not None else None
    proven = parameter.proven_acceptable_range if parameter is not None else None
    if not is_number(value) or (normal is None and proven is None):
        return RangeState("no_range", "no range")
    if proven is not None and not proven.holds(value):
        return RangeState("outside_par", "outside the proven acceptable range")
    if normal is None:
        return RangeState("in_range", "within the proven acceptable range")
    if normal.holds(value):
        return RangeState("in_range", "in normal range")
    given = str(reason or "").strip()
    if given:
        return RangeState("acknowledged", f"outside normal range, acknowledged: {given}")
    return RangeState("unacknowledged", "outside normal range, no reason given")


def range_states(
    op: dict[str, Any], library: Library, pinned: Pinned | None = None
) -> dict[str, RangeState]:
    """The range state of every parameter of a step (by the content the step pinned): the
    value the step sets, else the parameter's default, with the reason acknowledged for it."""
    parameters = parameters_of(step_content(op, library, pinned))
    values = op.get("parameters") or {}
    acknowledged = op.get("acknowledged") or {}
    return {
        key: range_state(p, values.get(key, p.default), acknowledged.get(key))
        for key, p in parameters.items()
    }


@dataclass
class MaterialTotal:
    """One line of the bill of materials: a material in one unit, summed over the steps."""

    material: str
    unit: str
    quantity: Number = 0
    used_in: list[str] = field(default_factory=list)


def bill_of_materials(
    content: dict[str, Any], library: Library, pinned: Pinned | None = None
) -> list[MaterialTotal]:
    """Materials of every operation, summed per material and unit, in first-use order."""
    totals: OrderedDict[tuple[str, str], MaterialTotal] = OrderedDict()
    for up in content.get("unit_procedures", []):
        for op in up.get("operations", []):
            unit_operation = step_content(op, library, pinned)
            for line in unit_operation.materials if unit_operation else ():
                key = (line.material, line.unit)
                total = totals.setdefault(key, MaterialTotal(line.material, line.unit))
                total.quantity += line.quantity
                total.used_in.append(op["key"])
    return list(totals.values())


def equipment_classes(
    content: dict[str, Any], library: Library, pinned: Pinned | None = None
) -> list[str]:
    """Bound equipment classes, and the unit operations' classes where none is bound."""
    found: list[str] = []
    for up in content.get("unit_procedures", []):
        for op in up.get("operations", []):
            unit_operation = step_content(op, library, pinned)
            classes = (
                [op["equipment_class"]]
                if op.get("equipment_class")
                else unit_operation.equipment_classes
                if unit_operation
                else ()
            )
            found += [c for c in classes if c not in found]
    return found


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    label: str
    kind: str  # procedure or operation


@dataclass(frozen=True)
class Flow:
    width: int
    height: int
    boxes: list[Box]
    arrows: list[tuple[int, int, int, int]]


def flow(content: dict[str, Any], library: Library, pinned: Pinned | None = None) -> Flow:
    """Unit procedures as columns left to right, their operations top to bottom, arrows in
    execution order (rendered as SVG by the template)."""
    boxes: list[Box] = []
    arrows: list[tuple[int, int, int, int]] = []
    previous: tuple[int, int] | None = None
    tallest = 0
    for column, up in enumerate(content.get("unit_procedures", [])):
        x = GAP_X + column * (BOX_W + GAP_X)
        boxes.append(Box(x, GAP_Y, up.get("name") or up["key"], "procedure"))
        for row, op in enumerate(up.get("operations", [])):
            y = GAP_Y + HEAD + GAP_Y + row * (BOX_H + GAP_Y)
            unit_operation = step_content(op, library, pinned)
            name = unit_operation.name if unit_operation else op["key"]
            boxes.append(Box(x, y, name, "operation"))
            if previous is not None and previous[0] == x + BOX_W // 2:
                arrows.append((previous[0], previous[1], x + BOX_W // 2, y))
            elif previous is not None:
                # Into the next column: from the right edge of the last step to the left edge
                # of this one, so the line never crosses a box.
                arrows.append(
                    (previous[0] + BOX_W // 2, previous[1] - BOX_H // 2, x, y + BOX_H // 2)
                )
            previous = (x + BOX_W // 2, y + BOX_H)
            tallest = max(tallest, y + BOX_H)
    columns = len(content.get("unit_procedures", []))
    return Flow(
        GAP_X + columns * (BOX_W + GAP_X), max(tallest, HEAD + GAP_Y) + GAP_Y, boxes, arrows
    )
