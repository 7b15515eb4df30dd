"""The document's procedure as unit procedures of operations, with keys the recipe can use,
and every element that is not one of them listed as a gap."""

from __future__ import annotations

import re
from dataclasses import dataclass

from opencdmo.hub.model import Method, UnitOperation
from opencdmo.recipes.batchml_recipe._document import DocElement, MasterRecipeDoc
from opencdmo.recipes.batchml_recipe._logic import Logic

_NOT_KEY = re.compile(r"[^A-Za-z0-9_.:-]+")
KEY_MAX = 64
NAME_MAX = 200


@dataclass(frozen=True)
class Gap:
    """An element of the document with no counterpart in the tenant, and why."""

    kind: str
    ref: str
    name: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "ref": self.ref, "name": self.name, "reason": self.reason}


@dataclass(frozen=True)
class Step:
    key: str
    element: DocElement


@dataclass(frozen=True)
class UnitProcedure:
    key: str
    name: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Resolved:
    """The library unit operation an operation maps to (None: no counterpart), and a note
    when it is not the one the document names (another version, a name match)."""

    library_item_id: str | None
    content_hash: str | None = None
    content: UnitOperation | Method | None = None
    note: str | None = None


_INTEGERS = frozenset({"integer", "int", "long", "short", "positiveInteger", "unsignedInt"})


def number(text: str, data_type: str) -> int | float | None:
    """A BatchML value as a JSON number: an integer when it is written as one ('2', or '2.0'
    of an integer data type), else a float; None when it is not a finite number."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return int(value) if data_type in _INTEGERS and value.is_integer() else value


def one_line(text: str, limit: int = NAME_MAX) -> str:
    return " ".join(text.split())[:limit]


class Keys:
    """Keys made from the document's ids (their last path segment), unique within the set."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def make(self, ident: str, fallback: str) -> str:
        base = _NOT_KEY.sub("_", ident.rstrip("/").rsplit("/", 1)[-1]).lstrip("_.:-")
        base = base[:KEY_MAX] or fallback
        key, n = base, 1
        while key in self.taken:
            n += 1
            key = f"{base[: KEY_MAX - len(str(n)) - 1]}_{n}"
        self.taken.add(key)
        return key


def _unknown(element: DocElement, where: str) -> Gap:
    kind = element.kind or "no type"
    return Gap(
        "recipe_element",
        element.id,
        element.name,
        f"a {kind} element {where}: the recipe has no place for it",
    )


def ordered(
    ref: str, name: str, logic: Logic | None, children: list[DocElement], gaps: list[Gap]
) -> list[DocElement]:
    """The children in the order the element's procedure logic runs them; in document order,
    with a gap saying why, when the logic is not a plain sequence of exactly those children."""
    if logic is None:
        return children
    ids = [c.id for c in children]
    problem = logic.problem
    if problem is None and sorted(logic.order) != sorted(ids):
        problem = "its steps are not the element's children, each once"
    if problem is not None:
        reason = f"{problem}: the steps are imported in the document's order"
        gaps.append(Gap("procedure_logic", ref, name, reason))
        return children
    by_id = {c.id: c for c in children}
    return [by_id[i] for i in logic.order]


def procedure(doc: MasterRecipeDoc) -> tuple[list[UnitProcedure], list[Gap]]:
    """The unit procedures and their operations in the order of their procedure logic (else
    the document's). Operations straight under the procedure form one unit procedure named
    after the recipe."""
    gaps: list[Gap] = []
    tops = ordered(doc.id, doc.name, doc.logic, list(doc.elements), gaps)
    procedures = [e for e in tops if e.kind == "Procedure"]
    if procedures:
        gaps += [_unknown(e, "beside the procedure") for e in tops if e is not procedures[0]]
        main = procedures[0]
        children = ordered(main.id, main.name, main.logic, list(main.children), gaps)
    else:
        children = tops
    up_keys, step_keys = Keys(), Keys()
    found: list[UnitProcedure] = []
    loose: list[Step] = []
    for child in children:
        if child.kind in ("UnitProcedure", "UnitRecipe"):
            steps = []
            for op in ordered(child.id, child.name, child.logic, list(child.children), gaps):
                if op.kind == "Operation":
                    steps.append(Step(step_keys.make(op.id, "step"), op))
                else:
                    gaps.append(_unknown(op, f"in unit procedure {child.id}"))
            name = one_line(child.name) or child.id
            key = up_keys.make(child.id, "unit_procedure")
            found.append(UnitProcedure(key, name, tuple(steps)))
        elif child.kind == "Operation":
            loose.append(Step(step_keys.make(child.id, "step"), child))
        else:
            gaps.append(_unknown(child, "in the procedure"))
    if loose:
        name = one_line(doc.name) or "Procedure"
        found.append(UnitProcedure(up_keys.make("procedure", "procedure"), name, tuple(loose)))
    return found, gaps
