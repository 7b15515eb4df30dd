"""A signal's limits in a phase and its excursions to shade, as the charts get them."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from opencdmo.batches.excursion_queries import ExcursionRow
from opencdmo.batches.trend_charts import bands_of, spans_of
from opencdmo.equipment.trend_config import Band, Chart, Span
from opencdmo.hub.model import DataCaptureField, EquipmentSignal, Parameter, Phase, Range


def phase(
    captures: tuple[DataCaptureField, ...] = (), parameters: tuple[Parameter, ...] = ()
) -> Phase:
    return Phase(key="p", name="P", instructions="x", parameters=parameters, data_capture=captures)


def capture(signal: str, limits: Range | None) -> DataCaptureField:
    return DataCaptureField(
        key=f"f_{signal}",
        name="F",
        type="number",
        limits=limits,
        required=False,
        equipment_capturable=True,
        equipment_signal=EquipmentSignal(equipment_class="co2-incubator", signal=signal),
    )


def parameter(key: str, normal: Range | None, proven: Range | None) -> Parameter:
    return Parameter(
        key=key,
        name="P",
        type="number",
        default=37,
        normal_range=normal,
        proven_acceptable_range=proven,
        criticality="CPP",
    )


def test_a_fields_limits_come_first_then_a_parameters_ranges() -> None:
    both = phase(
        (capture("chamber_temperature", Range(low=36, high=38)),),
        (parameter("chamber_temperature", Range(low=36.5, high=37.5), Range(low=36, high=38)),),
    )
    assert bands_of(both, "chamber_temperature") == (Band("limits", 36.0, 38.0),)
    ranges = phase(parameters=(parameter("ph", Range(low=7.0, high=7.4), Range(high=7.6)),))
    assert bands_of(ranges, "ph") == (Band("proven", None, 7.6), Band("normal", 7.0, 7.4))
    no_limits = phase((capture("ph", None),), (parameter("ph", None, None),))
    assert bands_of(no_limits, "ph") == ()
    assert bands_of(ranges, "dissolved_oxygen") == () and bands_of(None, "ph") == ()


def test_bands_in_words() -> None:
    chart = Chart("ph", "[pH]", (Band("proven", None, 7.6), Band("normal", 7.0, 7.4)))
    assert chart.band_texts == [
        "Proven acceptable range: at most 7.6 pH",
        "Normal range: 7 to 7.4 pH",
    ]
    assert Band("limits", 36.0, None).text("°C") == "Limits: at least 36 °C"


def test_excursions_are_the_spans_of_their_binding_and_signal() -> None:
    start, end = datetime(2026, 12, 1, 8, tzinfo=UTC), datetime(2026, 12, 1, 9, tzinfo=UTC)
    now = datetime(2026, 12, 1, 10, tzinfo=UTC)
    binding, other = uuid4(), uuid4()

    def excursion(on: UUID, signal: str, ended: datetime | None) -> ExcursionRow:
        return ExcursionRow(
            uuid4(),
            uuid4(),
            uuid4(),
            on,
            uuid4(),
            "activate",
            "p",
            signal,
            "Cel",
            36.0,
            38.0,
            start,
            ended,
            39.0,
            start,
        )

    rows = [
        excursion(binding, "ph", end),
        excursion(binding, "ph", None),  # still going on: drawn to now
        excursion(binding, "co2", end),
        excursion(other, "ph", end),
    ]
    assert spans_of(rows, binding, "ph", now) == (Span(start, end), Span(start, now))
    assert spans_of([], binding, "ph", now) == ()
