"""The simulator's curves and options, without a server."""

from __future__ import annotations

import itertools

import pytest

from opencdmo.equipment.signals import SIGNALS, Curve, Excursion, synthetic
from opencdmo.equipment.simulator import parse_excursion

TEMPERATURE = next(spec for spec in SIGNALS if spec.node == "ns=2;s=BR01.Temperature")


def values(seed: int, count: int = 200) -> list[float]:
    curve = Curve(TEMPERATURE, seed)
    return [curve.value(i * 0.1) for i in range(count)]


def test_a_seed_gives_the_same_curve_and_another_seed_another() -> None:
    assert values(3) == values(3)
    assert values(3) != values(4)


def test_the_curves_are_plausible_and_every_value_is_a_change() -> None:
    temperatures = values(1, 2000)
    assert all(36.5 < value < 37.5 for value in temperatures)
    assert all(a != b for a, b in itertools.pairwise(temperatures))
    freezer = Curve(next(spec for spec in SIGNALS if spec.node == "ns=2;s=FRZ01.Temperature"), 0)
    assert all(-81.5 < freezer.value(t) < -78.5 for t in range(100))
    weight = Curve(next(spec for spec in SIGNALS if spec.key == "culture_weight"), 0)
    assert weight.value(10_000) > weight.value(0) + 50  # a culture gaining weight


def test_an_excursion_holds_its_value_for_its_time() -> None:
    curve = Curve(TEMPERATURE, 0)
    excursion = Excursion(TEMPERATURE.node, 40.0, seconds=5, after=10)
    inside = [curve.value(t, excursion) for t in (10, 12, 14.9)]
    outside = [curve.value(t, excursion) for t in (9.9, 15)]
    assert all(39.8 < value < 40.2 for value in inside)
    assert all(36.5 < value < 37.5 for value in outside)


@pytest.mark.parametrize(
    "name",
    [
        "BR-01.culture_temperature",
        "BR01.Temperature",
        "ns=2;s=BR01.Temperature",
        "culture_temperature",
    ],
)
def test_an_excursion_names_its_signal_in_several_ways(name: str) -> None:
    assert parse_excursion(f"{name}:39.5:30:5", SIGNALS) == Excursion(TEMPERATURE.node, 39.5, 30, 5)


def test_a_freezer_excursion_takes_a_negative_value() -> None:
    found = parse_excursion("FRZ-01.chamber_temperature:-60:20", SIGNALS)
    assert (found.node, found.value, found.after) == ("ns=2;s=FRZ01.Temperature", -60.0, 0.0)


def test_synthetic_signals_have_their_own_nodes() -> None:
    extra = synthetic(200)
    assert len({spec.node for spec in extra}) == 200
    assert extra[199].node == "ns=2;s=SIM.Signal0199"
