"""The range state shown beside every parameter value: bounds inclusive, one-sided ranges,
missing ranges and values that are not numbers."""

from __future__ import annotations

import pytest

from opencdmo.hub.model import Parameter, Range
from opencdmo.recipes.mbr import RangeState, range_state


def parameter(normal: Range | None, proven: Range | None) -> Parameter:
    return Parameter(
        key="seeding_density",
        name="Seeding density",
        type="number",
        unit="10*6/mL",
        default=1.0,
        normal_range=normal,
        proven_acceptable_range=proven,
        criticality="CPP",
    )


BOTH = parameter(Range(low=0.8, high=1.2), Range(low=0.5, high=2.0))


@pytest.mark.parametrize(
    ("value", "reason", "key"),
    [
        (1.0, None, "in_range"),
        (0.8, None, "in_range"),  # bounds are inclusive
        (1.2, None, "in_range"),
        (1, None, "in_range"),  # an int is a number
        (1.5, "pilot run", "acknowledged"),
        (1.5, None, "unacknowledged"),
        (1.5, "   ", "unacknowledged"),  # a blank reason is no reason
        (2.0, None, "unacknowledged"),  # the proven acceptable bound is inclusive too
        (0.5, "x", "acknowledged"),
        (2.01, "pilot run", "outside_par"),  # a reason does not excuse leaving the PAR
        (0.49, None, "outside_par"),
        ("1.0", None, "no_range"),  # text is not a number
        (True, None, "no_range"),  # nor is a boolean
        (None, None, "no_range"),
    ],
)
def test_a_value_against_both_ranges(value: object, reason: object, key: str) -> None:
    assert range_state(BOTH, value, reason).key == key


def test_the_state_is_said_in_words() -> None:
    assert range_state(BOTH, 1.0) == RangeState("in_range", "in normal range")
    assert range_state(BOTH, 1.5, " pilot run ") == RangeState(
        "acknowledged", "outside normal range, acknowledged: pilot run"
    )
    assert range_state(BOTH, 1.5) == RangeState(
        "unacknowledged", "outside normal range, no reason given"
    )
    assert range_state(BOTH, 3.0) == RangeState(
        "outside_par", "outside the proven acceptable range"
    )
    assert range_state(None, 3.0) == RangeState("no_range", "no range")


def test_one_sided_ranges_limit_on_their_one_side() -> None:
    above = parameter(Range(low=70), Range(low=50))
    assert range_state(above, 1e9).key == "in_range"
    assert range_state(above, 70).key == "in_range"
    assert range_state(above, 60).key == "unacknowledged"
    assert range_state(above, 49.9).key == "outside_par"
    below = parameter(Range(high=5), None)
    assert range_state(below, -1).key == "in_range"
    assert range_state(below, 5.5, "known").key == "acknowledged"


def test_missing_ranges() -> None:
    assert range_state(parameter(None, None), 1.0).key == "no_range"
    # Only a proven acceptable range: inside it reads as in range, outside as outside it.
    proven_only = parameter(None, Range(low=0.5, high=2.0))
    assert range_state(proven_only, 1.9) == RangeState(
        "in_range", "within the proven acceptable range"
    )
    assert range_state(proven_only, 2.1).key == "outside_par"
    # Only a normal range.
    normal_only = parameter(Range(low=0.8, high=1.2), None)
    assert range_state(normal_only, 9.0, "why").key == "acknowledged"
