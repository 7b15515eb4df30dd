"""Rules a JSON Schema cannot express, applied wherever content is written or published."""

from __future__ import annotations

from typing import Any

NUMERIC = ("number", "integer", "duration")


def _inside(value: Any, low: Any, high: Any) -> bool:
    return isinstance(value, int | float) and low <= value <= high


def range_problems(content: dict[str, Any]) -> list[str]:
    """Numeric parameters: low <= high, the normal range inside the proven acceptable range,
    the default inside the normal range. Each problem names the phase and parameter."""
    problems: list[str] = []
    for phase in content.get("phases", []):
        for parameter in phase.get("parameters", []):
            if parameter.get("type") not in NUMERIC:
                continue
            where = f"phases[{phase.get('key')}].parameters[{parameter.get('key')}]"
            nor, par = parameter.get("normal_range"), parameter.get("proven_acceptable_range")
            for name, rng in (("normal_range", nor), ("proven_acceptable_range", par)):
                if rng is not None and not rng["low"] <= rng["high"]:
                    problems.append(f"{where}: {name} low {rng['low']} is above high {rng['high']}")
            if (
                nor is not None
                and par is not None
                and not (par["low"] <= nor["low"] and nor["high"] <= par["high"])
            ):
                problems.append(
                    f"{where}: the normal range {nor['low']}-{nor['high']} must lie "
                    f"inside the proven acceptable range {par['low']}-{par['high']}"
                )
            default = parameter.get("default")
            bounds = nor or par
            if (
                default is not None
                and bounds is not None
                and not _inside(default, bounds["low"], bounds["high"])
            ):
                problems.append(
                    f"{where}: the default {default} is outside {bounds['low']}-{bounds['high']}"
                )
    return problems
