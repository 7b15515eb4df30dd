"""Quantities in the content's UCUM codes: conversions that make sense, and clear errors for
those that do not."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pint
import pytest
from hypothesis import given
from hypothesis import strategies as st

from opencdmo import quantities, units
from opencdmo.errors import ValidationFailed

CODES = sorted(units.DISPLAY)
COMPATIBLE = [(a, b) for a, b in itertools.permutations(CODES, 2) if quantities.compatible(a, b)]


@pytest.mark.parametrize("code", CODES)
def test_every_code_of_the_content_is_a_pint_unit(code: str) -> None:
    made = quantities.quantity(Decimal("1.5"), code)
    assert isinstance(made.magnitude, Decimal)
    assert made.units == quantities.unit(code)
    assert quantities.describe(code)


def test_there_is_one_registry() -> None:
    assert quantities.registry() is quantities.registry()
    assert quantities.quantity(1, "mL")._REGISTRY is quantities.registry()


@pytest.mark.parametrize(
    ("value", "source", "target", "expected"),
    [
        (2, "L", "mL", "2000"),
        (250, "mL", "L", "0.25"),
        (Decimal("0.5"), "mL", "uL", "500"),
        (3, "uL", "L", "0.000003"),
        (1, "kg", "g", "1000"),
        (Decimal("2.5"), "g", "mg", "2500"),
        (750, "mg", "kg", "0.00075"),
        (1, "10*9", "10*6", "1000"),
        (2500, "10*6", "10*9", "2.5"),
        (90, "min", "h", "1.5"),
        (2, "d", "h", "48"),
        (1, "d", "min", "1440"),
        (1, "min", "h", "0.0166666666666667"),
        (37, "Cel", "K", "310.15"),
        (Decimal("-273.15"), "Cel", "K", "0"),
        (0.1, "L", "mL", "100"),
        (50, "%", "1", "0.5"),
        (2, "mbar", "Pa", "200"),
        (1, "U", "U", "1"),
    ],
)
def test_conversions_are_exact_decimals(
    value: Decimal | int | float, source: str, target: str, expected: str
) -> None:
    converted = quantities.convert(value, source, target)
    assert isinstance(converted, Decimal)
    assert converted == Decimal(expected)
    assert str(converted) == expected


def test_a_density_times_a_volume_is_a_count() -> None:
    cells = quantities.quantity(2, "10*6/mL") * quantities.quantity(Decimal("1.5"), "L")
    assert cells.to(quantities.unit("10*6")).magnitude == Decimal(3000)
    assert cells.to(quantities.unit("10*9")).magnitude == Decimal(3)


def test_celsius_is_an_offset_unit_that_is_not_added() -> None:
    with pytest.raises(pint.OffsetUnitCalculusError):
        _ = quantities.quantity(37, "Cel") + quantities.quantity(1, "Cel")


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("L", "{vial}", "2 L cannot be given in vials: L is a volume, vials are a count of vials"),
        ("mL", "g", "2 mL cannot be given in g: mL is a volume, g is a mass"),
        (
            "{vial}",
            "{bag}",
            "2 vials cannot be given in bags: vials are a count of vials, bags are a count of bags",
        ),
        (
            "[iU]",
            "mg",
            "2 IU cannot be given in mg: IU is an amount in international units, mg is a mass",
        ),
        ("%", "mL", "2 % cannot be given in mL: % is a dimensionless number, mL is a volume"),
        (
            "{bead}/{cell}",
            "{vial}",
            "2 beads per cell cannot be given in vials: "
            "beads per cell is a number of beads per cell, vials are a count of vials",
        ),
        ("[pH]", "1", "2 pH cannot be given in 1: pH is a pH, a plain number is a dimensionless"),
        ("[g]", "m/s", "2 × g cannot be given in m/s: × g is a relative centrifugal force"),
        ("10*6", "{dose}", "2 × 10⁶ cells cannot be given in doses: 10⁶ cells are a dimensionless"),
    ],
)
def test_an_impossible_conversion_says_why_in_words(source: str, target: str, message: str) -> None:
    assert not quantities.compatible(source, target)
    with pytest.raises(ValidationFailed) as refused:
        quantities.convert(2, source, target)
    assert refused.value.message.startswith(message)


@pytest.mark.parametrize(
    ("source", "target"),
    [("L", "mL"), ("10*6", "10*9"), ("Cel", "K"), ("%", "1"), ("h", "d"), ("U", "U/mL")],
)
def test_compatible(source: str, target: str) -> None:
    assert quantities.compatible(source, target) == (target != "U/mL")


@pytest.mark.parametrize(
    "code", ["ml", "furlong", "mL/", "(mL", "L)", "", "{unheard}", "10*7", "m[iU]", "cm2.", "2"]
)
def test_an_unknown_code_is_refused_naming_it(code: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        quantities.quantity(1, code)
    assert refused.value.message == f"{code!r} is not a unit this application knows"
    with pytest.raises(ValidationFailed):
        quantities.convert(1, "mL", code)


def test_the_grammar_reads_more_than_the_list() -> None:
    assert quantities.convert(1, "mL/min", "L/h") == Decimal("0.06")
    assert quantities.convert(1, "L/(m2.h)", "mL/(cm2.min)") == Decimal("0.00166666666666667")
    assert quantities.compatible("/d", "/min")


@pytest.mark.parametrize("value", [True, "2", None])
def test_a_value_must_be_a_number(value: object) -> None:
    with pytest.raises(ValidationFailed):
        quantities.quantity(value, "mL")  # type: ignore[arg-type]


def test_a_quantity_on_hand_is_zero_or_more_and_finite() -> None:
    assert quantities.on_hand(0, "{vial}").magnitude == 0
    assert quantities.on_hand(Decimal("1.5"), "L").magnitude == Decimal("1.5")
    with pytest.raises(ValidationFailed) as refused:
        quantities.on_hand(-2, "mL")
    assert refused.value.message == "A quantity on hand cannot be negative: -2 mL"
    for value in (float("nan"), float("inf"), Decimal("-Infinity")):
        with pytest.raises(ValidationFailed) as refused:
            quantities.on_hand(value, "mL")
        assert "must be a number" in refused.value.message


@given(
    pair=st.sampled_from(COMPATIBLE),
    value=st.decimals(
        min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=6, allow_nan=False
    ),
)
def test_a_round_trip_returns_the_value(pair: tuple[str, str], value: Decimal) -> None:
    source, target = pair
    back = quantities.convert(quantities.convert(value, source, target), target, source)
    # Within decimal rounding: 15 significant digits of the value, or of 273.15 for Celsius.
    assert abs(back - value) <= max(abs(value), Decimal(300)) * Decimal("1e-13")
