"""``ProcedureLogic``: the order of an element's children as an ISA-88 sequential function
chart, written for a plain sequence (step, transition on the step's completion, next step,
each joined by a control link) and read back as the order of the children it names, or why
it is not one plain sequence (parallel or alternative paths, steps not linked, a cycle)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from opencdmo.b2mml.xml import el

_B = "{http://www.mesa.org/xml/B2MML}"


def write(parent: etree._Element, children: Sequence[tuple[str, str]]) -> None:
    """The children (id, version) in sequence: S1 -> T1 -> S2 -> ... (nothing for none)."""
    if not children:
        return
    logic = el(parent, "ProcedureLogic")
    count = len(children)
    for n in range(1, count):
        _link(logic, f"L{2 * n - 1}", (f"S{n}", "Step"), (f"T{n}", "Transition"))
        _link(logic, f"L{2 * n}", (f"T{n}", "Transition"), (f"S{n + 1}", "Step"))
    for n, (ident, version) in enumerate(children, start=1):
        step = el(logic, "Step")
        el(step, "ID", f"S{n}")
        el(step, "RecipeElementID", ident)
        el(step, "RecipeElementVersion", version)
    for n in range(1, count):
        transition = el(logic, "Transition")
        el(transition, "ID", f"T{n}")
        el(transition, "Condition", f"S{n}.State = Complete")


def _link(
    logic: etree._Element, ident: str, source: tuple[str, str], target: tuple[str, str]
) -> None:
    link = el(logic, "Link")
    el(link, "ID", ident)
    for tag, (value, kind) in (("FromID", source), ("ToID", target)):
        end = el(link, tag)
        el(end, f"{tag}Value", value)
        el(end, tag.replace("ID", "Type"), kind)
        el(end, "IDScope", "Internal")
    el(link, "LinkType", "ControlLink")
    el(link, "Depiction", "None")


@dataclass(frozen=True)
class Logic:
    """The element ids in the order the logic runs them, or the reason it is not a plain
    sequence."""

    order: tuple[str, ...] = ()
    problem: str | None = None


def _text(node: etree._Element, path: str) -> str:
    return " ".join((node.findtext(path) or "").split())


def read(node: etree._Element) -> Logic | None:
    """The element's ``ProcedureLogic`` as an order (None: it has none)."""
    logic = node.find(f"{_B}ProcedureLogic")
    if logic is None:
        return None
    steps = {
        _text(s, f"{_B}ID"): _text(s, f"{_B}RecipeElementID") for s in logic.findall(f"{_B}Step")
    }
    transitions = {_text(t, f"{_B}ID") for t in logic.findall(f"{_B}Transition")}
    following: dict[str, list[str]] = {}
    preceding: dict[str, list[str]] = {}
    for link in logic.findall(f"{_B}Link"):
        sources = [_text(f, f"{_B}FromIDValue") for f in link.findall(f"{_B}FromID")]
        targets = [_text(t, f"{_B}ToIDValue") for t in link.findall(f"{_B}ToID")]
        for source in sources:
            for target in targets:
                following.setdefault(source, []).append(target)
                preceding.setdefault(target, []).append(source)
    nodes = set(steps) | transitions
    if any(len(v) > 1 for v in (*following.values(), *preceding.values())):
        return Logic(problem="it has parallel or alternative paths")
    if not nodes:
        return Logic()
    starts = [n for n in nodes if n not in preceding]
    if len(starts) != 1:
        return Logic(problem="it does not start at one step")
    order, seen, at = [], set(), starts[0]
    while at and at not in seen:
        seen.add(at)
        if at in steps:
            order.append(steps[at])
        at = (following.get(at) or [""])[0]
    if seen != nodes:
        return Logic(problem="not all of its steps follow one another (a step left out, a cycle)")
    return Logic(tuple(order))
