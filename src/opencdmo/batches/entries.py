"""What an entry is checked against: the field of a phase of a step in the batch's control
recipe, its type and limits, and the parameter's normal and proven acceptable ranges.

A field is either a data-capture field of the phase or one of its parameters (its actual
value). A value of the wrong kind (text for a number, a choice the field does not offer) is
refused with a 422 and nothing is stored. A value of the right kind is stored with its check:

- ``in_limits``: inside the field's limits and the parameter's ranges (or none apply);
- ``outside_normal``: a parameter's value outside its normal range, inside its proven
  acceptable range;
- ``outside_par``: a parameter's value outside its proven acceptable range;
- ``invalid``: a data-capture value outside the field's limits.

The range rules are the parameter's own (``Range.holds``, as the recipe checks use them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opencdmo import units
from opencdmo.errors import ValidationFailed
from opencdmo.hub.model import (
    DataCaptureField,
    Parameter,
    Range,
    UnitOperation,
    decode,
    is_number,
)
from opencdmo.hub.rules import NUMERIC
from opencdmo.recipes.mbr import range_state

IN_LIMITS, OUTSIDE_NORMAL, OUTSIDE_PAR, INVALID = (
    "in_limits",
    "outside_normal",
    "outside_par",
    "invalid",
)
CHECKS = (IN_LIMITS, OUTSIDE_NORMAL, OUTSIDE_PAR, INVALID)
SOURCES = ("manual", "equipment", "calculated")


@dataclass(frozen=True)
class Target:
    """The field an entry is for: a data-capture field or a parameter of the phase."""

    step: str
    phase: str
    capture: DataCaptureField | None
    parameter: Parameter | None

    @property
    def key(self) -> str:
        found = self.capture or self.parameter
        assert found is not None
        return found.key

    @property
    def name(self) -> str:
        found = self.capture or self.parameter
        assert found is not None
        return found.name

    @property
    def unit(self) -> str | None:
        found = self.capture or self.parameter
        assert found is not None
        return found.unit


@dataclass(frozen=True)
class Check:
    result: str
    message: str


def operations(document: dict[str, Any]) -> dict[str, UnitOperation]:
    """The unit operation each step of a control recipe document runs, by step key."""
    found: dict[str, UnitOperation] = {}
    for procedure in document["unit_procedures"]:
        for op in procedure["operations"]:
            content = decode(op["unit_operation_content"])
            assert isinstance(content, UnitOperation)
            found[str(op["key"])] = content
    return found


def target(steps: dict[str, UnitOperation], step: str, phase: str, field: str) -> Target:
    """The field of that phase of that step (``steps``: ``operations`` of the document); a
    422 naming what is missing otherwise."""
    operation = steps.get(step)
    if operation is None:
        raise ValidationFailed(
            f"This batch's control recipe has no step '{step[:64]}' (its steps: "
            f"{', '.join(steps)}).",
            details={"field": "step"},
        )
    found = next((p for p in operation.phases if p.key == phase), None)
    if found is None:
        known = ", ".join(p.key for p in operation.phases)
        raise ValidationFailed(
            f"Step {step} has no phase '{phase[:64]}' (its phases: {known}).",
            details={"field": "phase"},
        )
    capture = next((f for f in found.data_capture if f.key == field), None)
    parameter = next((p for p in found.parameters if p.key == field), None)
    if capture is None and parameter is None:
        known = ", ".join([f.key for f in found.data_capture] + [p.key for p in found.parameters])
        raise ValidationFailed(
            f"Phase {phase} of step {step} has no field '{field[:64]}' (its fields: {known}).",
            details={"field": "field"},
        )
    return Target(step, phase, capture, parameter)


def _kind_problem(kind: str, value: Any, choices: tuple[str, ...] | None) -> str | None:
    """What is wrong with ``value`` for a field of this type (None: nothing)."""
    if kind in ("number", "duration"):
        return None if is_number(value) else "must be a number"
    if kind == "integer":
        return (
            None
            if isinstance(value, int) and not isinstance(value, bool)
            else "must be a whole number"
        )
    if kind == "boolean":
        return None if isinstance(value, bool) else "must be yes (true) or no (false)"
    if not isinstance(value, str) or not value.strip():
        return "must be text"
    if kind == "choice" and value not in (choices or ()):
        return f"must be one of {', '.join(choices or ())}"
    if kind == "datetime":
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return "must be a date and time (e.g. 2026-05-04T08:00:00+02:00)"
        if when.tzinfo is None:
            return "needs a time zone (e.g. 2026-05-04T08:00:00+02:00)"
    return None


def validated(field: Target, value: Any, unit: str | None) -> str | None:
    """The unit the entry is stored with, once the value's kind and unit hold; a 422 naming
    the field otherwise."""
    part = field.capture or field.parameter
    assert part is not None
    problem = _kind_problem(part.type, value, part.choices)
    if problem is not None:
        raise ValidationFailed(f"{field.name}: {problem}.", details={"field": "value"})
    if unit is not None and unit != field.unit:
        wanted = f"in {field.unit}" if field.unit else "without a unit"
        raise ValidationFailed(
            f"{field.name} is recorded {wanted}, not in {unit[:40]}.", details={"field": "unit"}
        )
    return field.unit


def _with_unit(value: Any, unit: str | None) -> str:
    """A value as people read it, its unit displayed (``1.5 × 10⁶ cells/mL``, ``yes``)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if is_number(value):
        return units.quantity(value, unit)
    return f"{value} {units.unit(unit)}" if unit else str(value)


def _span(found: Range, unit: str | None) -> str:
    return units.limits(found.low, found.high, unit)


def check(field: Target, value: Any) -> Check:
    """The entry's check against the field's limits or the parameter's ranges."""
    shown = _with_unit(value, field.unit)
    capture, parameter = field.capture, field.parameter
    if capture is not None:
        limits: Range | None = capture.limits
        if is_number(value) and limits is not None and not limits.holds(value):
            return Check(INVALID, f"{shown} is outside the limits {_span(limits, field.unit)}.")
        return Check(IN_LIMITS, f"{shown} recorded.")
    assert parameter is not None
    if parameter.type not in NUMERIC or not is_number(value):
        return Check(IN_LIMITS, f"{shown} recorded.")
    par, normal = parameter.proven_acceptable_range, parameter.normal_range
    state = range_state(parameter, value).key  # the one rule the recipe pages show
    if state == "outside_par" and par is not None:
        return Check(
            OUTSIDE_PAR,
            f"{shown} is outside the proven acceptable range {_span(par, field.unit)}.",
        )
    if state in ("acknowledged", "unacknowledged") and normal is not None:
        return Check(
            OUTSIDE_NORMAL, f"{shown} is outside the normal range {_span(normal, field.unit)}."
        )
    return Check(IN_LIMITS, f"{shown} is within the ranges.")
