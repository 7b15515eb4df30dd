"""The master batch record view: bill of materials, equipment classes and the flow layout,
computed from a recipe revision and the unit operations it references."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
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


# A label's lines are measured with a conservative estimate of each character's width (in em
# of the font size): the diagram is drawn without scripts, so the server decides the wrapping.
PAD_X, PAD_Y = 10, 8
FONT = {"procedure": 13, "operation": 12}
LINE = {"procedure": 17, "operation": 16}
_NARROW, _WIDE = set("iljtfrI.,;:'!|() -"), set("mwMW@%")


def text_width(text: str, size: int, bold: bool = False) -> float:
    """The estimated width of ``text`` in pixels at ``size`` (sans-serif; bold is wider)."""
    em = sum(
        0.34
        if c in _NARROW
        else 0.95
        if c in _WIDE
        else 0.72
        if c.isupper() or c.isdigit() or not c.isascii()
        else 0.6
        for c in text
    )
    return em * size * (1.1 if bold else 1.0)


def wrap(label: str, width: float, size: int, bold: bool = False) -> tuple[str, ...]:
    """``label`` in lines no wider than ``width``: broken between words, never inside one,
    except a word wider than a whole line, which is broken with a hyphen."""

    def fits(text: str) -> bool:
        return text_width(text, size, bold) <= width

    lines: list[str] = []
    line = ""
    for word in label.split():
        if line and fits(f"{line} {word}"):
            line = f"{line} {word}"
            continue
        if line:
            lines.append(line)
        line = word
        while not fits(line):
            # Longer than a line: as much as fits with a hyphen, the rest on the next line.
            cut = max(1, max(i for i in range(1, len(line)) if fits(line[:i] + "-") or i == 1))
            lines.append(line[:cut] + "-")
            line = line[cut:]
    if line:
        lines.append(line)
    return tuple(lines) or ("",)


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    label: str
    kind: str  # procedure or operation
    key: str = ""
    lines: tuple[str, ...] = ()
    height: int = BOX_H

    @property
    def text_top(self) -> int:
        """Where the label's first line box starts: the lines centred in the box."""
        return self.y + (self.height - len(self.lines) * LINE[self.kind]) // 2


@dataclass(frozen=True)
class Flow:
    width: int
    height: int
    boxes: list[Box]
    arrows: list[tuple[int, int, int, int]]
    box_width: int = BOX_W


def _box(x: int, y: int, label: str, kind: str, key: str) -> Box:
    lines = wrap(label, BOX_W - 2 * PAD_X, FONT[kind], bold=kind == "procedure")
    least = HEAD if kind == "procedure" else BOX_H
    height = max(least, 2 * PAD_Y + len(lines) * LINE[kind])
    return Box(x, y, label, kind, key, lines, height)


def flow(content: dict[str, Any], library: Library, pinned: Pinned | None = None) -> Flow:
    """Unit procedures as columns left to right, their operations top to bottom, arrows in
    execution order (rendered as SVG by the template). Labels wrap into their box, which grows
    to fit them; the heads of the columns share the height of the tallest."""
    procedures = content.get("unit_procedures", [])
    heads = [
        _box(
            GAP_X + i * (BOX_W + GAP_X), GAP_Y, up.get("name") or up["key"], "procedure", up["key"]
        )
        for i, up in enumerate(procedures)
    ]
    head = max((b.height for b in heads), default=HEAD)
    boxes: list[Box] = []
    arrows: list[tuple[int, int, int, int]] = []
    previous: tuple[int, int, int] | None = None  # centre x, bottom y, height of the last step
    tallest = GAP_Y + head
    for up, top in zip(procedures, heads, strict=True):
        x = top.x
        boxes.append(replace(top, height=head))
        y = GAP_Y + head + GAP_Y
        for op in up.get("operations", []):
            unit_operation = step_content(op, library, pinned)
            name = unit_operation.name if unit_operation else op["key"]
            box = _box(x, y, name, "operation", op["key"])
            boxes.append(box)
            if previous is not None and previous[0] == x + BOX_W // 2:
                arrows.append((previous[0], previous[1], x + BOX_W // 2, y))
            elif previous is not None:
                # Into the next column: from the right edge of the last step to the left edge
                # of this one, so the line never crosses a box.
                arrows.append(
                    (
                        previous[0] + BOX_W // 2,
                        previous[1] - previous[2] // 2,
                        x,
                        y + box.height // 2,
                    )
                )
            previous = (x + BOX_W // 2, y + box.height, box.height)
            y += box.height + GAP_Y
            tallest = max(tallest, y - GAP_Y)
    return Flow(GAP_X + len(procedures) * (BOX_W + GAP_X), tallest + GAP_Y, boxes, arrows)
