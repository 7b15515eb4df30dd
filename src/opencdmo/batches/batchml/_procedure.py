"""The batch's procedure as ISA-88 procedural elements: the procedure, its unit procedures,
their operations (the steps) and their phases, each with an id that is its path
('expansion/seed/count'), so that every id is unique in the record and says where it is."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from opencdmo.batches.batchml._xml import BATCH_STATUSES, coded, el, state_name
from opencdmo.batches.batchml.model import BatchRecordDoc, Operation, Phase, UnitProcedure

PROCEDURE = "procedure"


@dataclass(frozen=True)
class Element:
    """One procedural element of the batch and what it did."""

    id: str
    key: str
    kind: str
    name: str
    state: str
    started_at: datetime | None
    ended_at: datetime | None
    children: tuple[Element, ...] = ()

    def walk(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            yield from child.walk()

    def add(self, parent: etree._Element) -> None:
        """This element as a BatchML ``RecipeElement``, its state in ``Header/Status``."""
        node = el(parent, "RecipeElement")
        el(node, "ID", self.id)
        el(node, "Description", self.name)
        el(node, "RecipeElementType", self.kind)
        coded(el(node, "Header"), "Status", state_name(self.state), BATCH_STATUSES)
        for child in self.children:
            child.add(node)


def _times(part: Phase | Operation | UnitProcedure) -> tuple[datetime | None, datetime | None]:
    return part.started_at, part.ended_at


def _phase(path: str, phase: Phase) -> Element:
    own = f"{path}/{phase.key}"
    return Element(own, phase.key, "Phase", phase.name, phase.state, *_times(phase))


def _operation(path: str, op: Operation) -> Element:
    own = f"{path}/{op.key}"
    phases = tuple(_phase(own, phase) for phase in op.phases)
    return Element(own, op.key, "Operation", op.name, op.state, *_times(op), phases)


def _unit_procedure(up: UnitProcedure) -> Element:
    ops = tuple(_operation(up.key, op) for op in up.operations)
    return Element(up.key, up.key, "UnitProcedure", up.name, up.state, *_times(up), ops)


def procedure(doc: BatchRecordDoc) -> Element:
    """The batch's procedure element, the unit procedures below it."""
    head = doc.header
    ups = tuple(_unit_procedure(up) for up in doc.unit_procedures)
    times = (head.actual_start, head.actual_end)
    return Element(PROCEDURE, PROCEDURE, "Procedure", head.recipe_name, head.status, *times, ups)


class References:
    """The id of the element a step (an operation) or a phase of a step refers to."""

    def __init__(self, root: Element) -> None:
        self._ids: dict[tuple[str, str | None], str] = {}
        for up in root.children:
            for op in up.children:
                self._ids[(op.key, None)] = op.id
                for phase in op.children:
                    self._ids[(op.key, phase.key)] = phase.id

    def of(self, step: str, phase: str | None = None) -> str:
        """The element's id; for a step or phase the procedure does not list, its keys."""
        return self._ids.get((step, phase)) or "/".join(k for k in (step, phase) if k)
