"""Whether an equipment class's stated capability covers what a recipe's steps ask of it
(pure: no database).

What is compared, exactly: an equipment class states its capability as lines of text
(``capabilities`` of its HUB content). Two kinds of line are read, and nothing else:

- a temperature range, "Temperature ... 30-40 °C": against every phase parameter of the
  step's unit operation measured in degrees Celsius (unit ``Cel``);
- a working volume range, "Working volume 0.1-25 L" (or mL): against every phase parameter
  whose key names a volume, measured in mL or L.

Each such parameter's proven acceptable range (its normal range when it has none) must lie
inside the class's range. ``covers`` when every compared parameter lies inside, ``does not
cover`` when one lies outside, ``unknown`` when the class states no such range or the steps
have no such parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal

Verdict = Literal["covers", "does_not_cover", "unknown"]

_NUMBER: Final = r"(-?\d+(?:\.\d+)?)"
_TEMPERATURE: Final = re.compile(
    rf"temperature[^0-9-]*{_NUMBER}\s*(?:-|to|–)\s*{_NUMBER}\s*°\s*C", re.IGNORECASE
)
_VOLUME: Final = re.compile(
    rf"working volume[^0-9-]*{_NUMBER}\s*(mL|L)?\s*(?:-|to|–)\s*{_NUMBER}\s*(mL|L)\b",
    re.IGNORECASE,
)
_TO_ML: Final = {"ml": 1.0, "l": 1000.0}


@dataclass(frozen=True)
class Range:
    what: str  # "temperature" | "working volume"
    low: float
    high: float
    unit: str  # "Cel" | "mL"


@dataclass(frozen=True)
class Comparison:
    """One parameter's range against the class's range of the same quantity."""

    step: str
    parameter: str
    low: float
    high: float
    unit: str
    capability: Range

    @property
    def inside(self) -> bool:
        return self.capability.low <= self.low and self.high <= self.capability.high

    @property
    def text(self) -> str:
        cap = self.capability
        verdict = "inside" if self.inside else "outside"
        return (
            f"{self.step}: {self.parameter} {_n(self.low)}-{_n(self.high)} {self.unit} is "
            f"{verdict} the {cap.what} range {_n(cap.low)}-{_n(cap.high)} {cap.unit}"
        )


def _n(value: float) -> str:
    return f"{value:g}"


def ranges(capabilities: list[str]) -> list[Range]:
    """The temperature and working volume ranges the capability lines state."""
    found: list[Range] = []
    for line in capabilities:
        if match := _TEMPERATURE.search(line):
            found.append(Range("temperature", float(match[1]), float(match[2]), "Cel"))
        if match := _VOLUME.search(line):
            low_unit = (match[2] or match[4]).lower()
            low = float(match[1]) * _TO_ML[low_unit]
            high = float(match[3]) * _TO_ML[match[4].lower()]
            found.append(Range("working volume", low, high, "mL"))
    return found


def _bounds(parameter: dict[str, Any]) -> tuple[float, float] | None:
    for field in ("proven_acceptable_range", "normal_range"):
        span = parameter.get(field)
        if isinstance(span, dict):
            low, high = span.get("low"), span.get("high")
            if isinstance(low, int | float) and isinstance(high, int | float):
                return float(low), float(high)
    return None


def _quantity(parameter: dict[str, Any]) -> tuple[str, float] | None:
    """(what, factor to the capability's unit) of a parameter this module compares."""
    unit = parameter.get("unit")
    if unit == "Cel":
        return "temperature", 1.0
    key = str(parameter.get("key", ""))
    if isinstance(unit, str) and unit.lower() in _TO_ML and "volume" in key:
        return "working volume", _TO_ML[unit.lower()]
    return None


def parameters(unit_operation: dict[str, Any]) -> list[dict[str, Any]]:
    phases = unit_operation.get("phases")
    listed = phases if isinstance(phases, list) else []
    return [
        p
        for phase in listed
        if isinstance(phase, dict)
        for p in phase.get("parameters") or []
        if isinstance(p, dict)
    ]


def compare(steps: list[tuple[str, dict[str, Any]]], capability: list[Range]) -> list[Comparison]:
    """Each parameter of the steps (name, unit operation content) that a stated range of the
    class applies to, against that range."""
    found: list[Comparison] = []
    for step, unit_operation in steps:
        for parameter in parameters(unit_operation):
            quantity, bounds = _quantity(parameter), _bounds(parameter)
            if quantity is None or bounds is None:
                continue
            what, factor = quantity
            for cap in (r for r in capability if r.what == what):
                name = str(parameter.get("name") or parameter.get("key"))
                low, high = bounds[0] * factor, bounds[1] * factor
                found.append(Comparison(step, name, low, high, cap.unit, cap))
    return found


def verdict(comparisons: list[Comparison]) -> Verdict:
    if not comparisons:
        return "unknown"
    return "covers" if all(c.inside for c in comparisons) else "does_not_cover"
