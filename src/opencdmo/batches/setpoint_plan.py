"""What a phase's setpoint write would write: for each parameter of the phase that the unit
bound to its step names in its OPC UA ``setpoints``, the formula's value (the control
recipe's, or the unit operation's default), converted to the node's unit. Pure: built from
rows read elsewhere; the comparison of a value read back is here too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from opencdmo import quantities
from opencdmo.batches.plan import PlannedPhase
from opencdmo.batches.queries import ControlRecipeRow
from opencdmo.equipment.queries import BindingRow, UnitRow
from opencdmo.errors import ValidationFailed

RELATIVE_TOLERANCE: Final = 1e-6  # a read-back this close to the value written is the value
ABSOLUTE_TOLERANCE: Final = 1e-9
CONFIRMED_MAX: Final = 200

Confirmed = tuple[str, float, str | None, str]  # parameter, value, unit, node


@dataclass(frozen=True)
class Setpoint:
    """One parameter's value and the node it goes to."""

    parameter: str
    name: str
    value: Any  # the formula's value, in the parameter's unit
    unit: str | None  # the parameter's unit
    node: str
    node_unit: str
    node_value: float | None  # the value in the node's unit (None: it cannot be written)
    problem: str | None = None

    @property
    def confirmed(self) -> dict[str, Any]:
        return {
            "parameter": self.parameter,
            "value": self.value,
            "unit": self.unit,
            "node": self.node,
        }


@dataclass(frozen=True)
class Offer:
    """A phase's setpoints on the unit bound to its step."""

    step: str
    phase: str
    label: str
    equipment_id: UUID
    code: str
    setpoints: tuple[Setpoint, ...]

    @property
    def writable(self) -> bool:
        return all(s.problem is None for s in self.setpoints)

    @property
    def dom_id(self) -> str:
        return f"s-{self.step}--{self.phase}"

    @property
    def confirmed_json(self) -> str:
        return json.dumps([s.confirmed for s in self.setpoints])

    def keys(self) -> set[Confirmed]:
        return {_as_key(s.confirmed) for s in self.setpoints}


def _values(frozen: ControlRecipeRow, step: str) -> Mapping[str, Any]:
    for procedure in frozen.document.get("unit_procedures") or []:
        for op in procedure.get("operations") or []:
            if op.get("key") == step:
                values: Mapping[str, Any] = op.get("values") or {}
                return values
    return {}


def offer(
    frozen: ControlRecipeRow,
    planned: PlannedPhase,
    binding: BindingRow | None,
    unit: UnitRow | None,
) -> Offer | None:
    """The phase's setpoints on the unit bound to its step (None: nothing to write)."""
    if binding is None or unit is None:
        return None
    nodes: Mapping[str, Any] = (unit.connection or {}).get("setpoints") or {}
    values = _values(frozen, planned.step)
    found = tuple(
        _setpoint(
            p.key,
            p.name,
            (values.get(p.key) or {}).get("value", p.default),
            p.unit,
            nodes[p.key],
        )
        for p in planned.content.parameters
        if p.key in nodes
    )
    if not found:
        return None
    return Offer(planned.step, planned.phase, planned.label, unit.id, unit.code, found)


def _setpoint(
    key: str, name: str, value: Any, unit: str | None, node: Mapping[str, str]
) -> Setpoint:
    made = Setpoint(key, name, value, unit, node["node"], node["unit"], None)
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return _problem(made, f"{name}: its value {str(value)[:40]!r} is not a number")
    if unit is None:
        return _problem(made, f"{name} has no unit: it cannot be given in {node['unit']}")
    try:
        converted = float(quantities.convert(value, unit, node["unit"]))
    except ValidationFailed as exc:
        return _problem(made, f"{name}: {exc.message}")
    return Setpoint(key, name, value, unit, node["node"], node["unit"], converted)


def _problem(made: Setpoint, text: str) -> Setpoint:
    return replace(made, node_value=None, problem=text)


def offers(
    frozen: ControlRecipeRow,
    open_phases: Iterable[PlannedPhase],
    active: Iterable[BindingRow],
    units: Mapping[UUID, UnitRow],
) -> dict[tuple[str, str], Offer]:
    """Each open phase's setpoints on the unit its step holds now."""
    holding = {b.step: b for b in active}
    found = {}
    for planned in open_phases:
        binding = holding.get(planned.step)
        unit = units.get(binding.equipment_id) if binding else None
        made = offer(frozen, planned, binding, unit)
        if made is not None:
            found[(planned.step, planned.phase)] = made
    return found


def _as_key(item: Mapping[str, Any]) -> Confirmed:
    value = item.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise ValueError("value")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("value")
    unit = item.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise ValueError("unit")
    return (str(item["parameter"]), number, unit, str(item["node"]))


def confirmed(raw: Any) -> set[Confirmed]:
    """The setpoints the operator confirmed, as sent: a list of {parameter, value, unit,
    node}; anything else is a 422 saying what is expected."""
    expected = "confirmed: a list of the setpoints shown, each {parameter, value, unit, node}"
    if (
        not isinstance(raw, list)
        or not 1 <= len(raw) <= CONFIRMED_MAX
        or not all(isinstance(item, Mapping) for item in raw)
    ):
        raise ValidationFailed(expected, details={"field": "confirmed"})
    try:
        return {_as_key(item) for item in raw}
    except (KeyError, ValueError, TypeError):
        raise ValidationFailed(expected, details={"field": "confirmed"}) from None


def matches(written: float, read_back: float) -> bool:
    """Whether a value read back is the value written (a float node may round it)."""
    return math.isclose(written, read_back, rel_tol=RELATIVE_TOLERANCE, abs_tol=ABSOLUTE_TOLERANCE)
