"""What a control recipe asks of the people running it: the second person of each phase."""

from __future__ import annotations

from opencdmo.batches.plan import second_person
from opencdmo.hub.model import Parameter, Phase


def phase(*, cpp: bool = False, asks: str | None = None) -> Phase:
    parameter = Parameter(
        key="temperature",
        name="Temperature",
        type="number",
        unit="Cel",
        default=37,
        criticality="CPP" if cpp else "non-critical",
    )
    return Phase(
        key="p",
        name="Phase",
        instructions="Do it.",
        parameters=(parameter,),
        data_capture=(),
        second_person=asks,  # type: ignore[arg-type]
    )


def test_a_phase_with_a_critical_parameter_is_verified() -> None:
    assert second_person(phase(cpp=True)) == "verified"
    assert second_person(phase()) is None


def test_the_content_asks_for_a_verifier_or_a_witness() -> None:
    assert second_person(phase(asks="verify")) == "verified"
    assert second_person(phase(asks="witness")) == "witnessed"
    assert second_person(phase(cpp=True, asks="witness")) == "witnessed"
