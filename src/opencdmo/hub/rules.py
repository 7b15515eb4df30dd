"""Rules a JSON Schema cannot express, applied wherever content is written or published."""

from __future__ import annotations

from opencdmo.hub.model import LibraryContent, Parameter, Range, UnitOperation, is_number

NUMERIC = ("number", "integer", "duration")


def _nested(inner: Range, outer: Range) -> bool:
    """Whether ``inner`` lies inside ``outer`` (a bound ``outer`` has, ``inner`` needs too)."""
    low_ok = outer.low is None or (inner.low is not None and outer.low <= inner.low)
    high_ok = outer.high is None or (inner.high is not None and inner.high <= outer.high)
    return low_ok and high_ok


def range_problems(content: LibraryContent) -> list[str]:
    """Numeric parameters: low <= high, the normal range inside the proven acceptable range,
    the default inside the normal range. Each problem names the phase and parameter."""
    if not isinstance(content, UnitOperation):
        return []
    problems: list[str] = []
    for phase in content.phases:
        for parameter in phase.parameters:
            if parameter.type in NUMERIC:
                where = f"phases[{phase.key}].parameters[{parameter.key}]"
                problems += [f"{where}: {problem}" for problem in _parameter_problems(parameter)]
    return problems


def _parameter_problems(parameter: Parameter) -> list[str]:
    problems: list[str] = []
    nor, par = parameter.normal_range, parameter.proven_acceptable_range
    for name, rng in (("normal_range", nor), ("proven_acceptable_range", par)):
        if rng is not None and rng.low is not None and rng.high is not None and rng.low > rng.high:
            problems.append(f"{name} low {rng.low} is above high {rng.high}")
    if nor is not None and par is not None and not _nested(nor, par):
        problems.append(
            f"the normal range {nor.span()} must lie inside the proven acceptable range "
            f"{par.span()}"
        )
    default, bounds = parameter.default, nor or par
    if bounds is not None and not (is_number(default) and bounds.holds(default)):
        problems.append(f"the default {default} is outside {bounds.span()}")
    return problems
