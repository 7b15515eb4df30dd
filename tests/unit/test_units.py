"""Units and numbers as people write them: one display for every UCUM code content may use."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opencdmo import units
from opencdmo.hub.content import common_enum


def test_every_unit_the_schema_allows_has_a_display_and_no_other() -> None:
    assert set(units.DISPLAY) == set(common_enum("ucum_unit"))


@pytest.mark.parametrize(
    ("code", "shown"),
    [
        ("Cel", "°C"),
        ("10*6/mL", "10⁶ cells/mL"),
        ("{bead}/{cell}", "beads per cell"),
        ("[iU]/mL", "IU/mL"),
        ("%", "%"),
        ("uL", "µL"),
        ("1", ""),
        (None, ""),
        ("furlong", "furlong"),
    ],
)
def test_units_read_as_written(code: str | None, shown: str) -> None:
    assert units.unit(code) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (100000000000000.0, "10¹⁴"),
        (2_500_000_000, "2.5 × 10⁹"),
        (1.5e-5, "1.5 × 10⁻⁵"),
        (0.125, "0.125"),
        (2, "2"),
        (2.0, "2"),
        (2.5, "2.5"),
        (37.0, "37"),
        (12345, "12,345"),
        (1234.5678, "1234.57"),
        (-40, "-40"),
        (0, "0"),
        (True, "True"),
        ("n/a", "n/a"),
        (None, ""),
    ],
)
def test_numbers_with_sensible_precision(value: object, shown: str) -> None:
    assert units.number(value) == shown


def test_quantities_and_ranges() -> None:
    assert units.quantity(37, "Cel") == "37 °C"
    assert units.quantity(2.5, "10*9") == "2.5 × 10⁹ cells"
    assert units.quantity(3, "{bead}/{cell}") == "3 beads per cell"
    assert units.quantity(45, "deg") == "45°"
    assert units.quantity(7, "1") == "7"
    assert units.limits(0.8, 1.2, "10*6/mL") == "0.8–1.2 × 10⁶ cells/mL"
    assert units.limits(70, None, "%") == "≥ 70 %"
    assert units.limits(None, 5, "{EU}/mL") == "≤ 5 EU/mL"
    assert units.limits(None, None, "%") == ""


@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers())
def test_every_number_shows_as_a_short_string(value: float) -> None:
    shown = units.number(value)
    assert shown and "e" not in shown and len(shown) <= 24


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("production_supervisor", "Production supervisor"),
        ("qa_approver", "QA approver"),
        ("unit_operation", "Unit operation"),
        ("car-t", "CAR-T"),
        ("in_review", "In Review"),
        ("t_cell_activation", "T cell activation"),
        ("qc_release_testing", "QC release testing"),
        (None, ""),
    ],
)
def test_keys_have_display_names(key: str | None, shown: str) -> None:
    from opencdmo.labels import label

    assert label(key) == shown


def test_every_role_of_the_policy_has_a_display_name() -> None:
    from opencdmo.access.policy import roles
    from opencdmo.labels import NAMES

    assert set(roles()) <= set(NAMES)
