"""A data-capture field's value from the equipment: a field whose content names an
``equipment_signal`` takes it from the unit of that class bound to its step, as the signal's
latest value in the phase when it is taken, or the mean, minimum or maximum over the phase so
far (the content's ``aggregate``), in the field's unit (converted when the signal's unit in
the unit's OPC UA description differs).

``reading`` is what the entry command stores (with ``source`` equipment and where the value
came from); ``preview`` is what the run page shows next to the field. Both read in the
transaction open in their context.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from opencdmo import quantities
from opencdmo.batches import entries, phase_samples
from opencdmo.batches.phase_samples import Window
from opencdmo.errors import AppError, Conflict, ValidationFailed
from opencdmo.hub.model import EquipmentSignal

SIGNIFICANT = 15  # digits kept of a converted or averaged value


@dataclass(frozen=True)
class Reading:
    """A value from the equipment, in the field's unit, and where it came from."""

    value: float
    unit: str | None
    code: str  # the unit's code
    signal: str
    aggregate: str
    sampled_at: datetime  # the sample's time (the last sample's, for an aggregate)
    first_at: datetime  # the first sample's time (the sample's own, for latest)
    count: int
    equipment_id: UUID
    signal_unit: str | None

    def source(self) -> dict[str, Any]:
        """What the entry records of where its value came from."""
        return {
            "equipment_id": str(self.equipment_id),
            "code": self.code,
            "signal": self.signal,
            "signal_unit": self.signal_unit,
            "aggregate": self.aggregate,
            "sample_time": self.sampled_at.isoformat(),
            "first_sample_time": self.first_at.isoformat(),
            "samples": self.count,
        }


def signal_of(target: entries.Target) -> EquipmentSignal:
    """The signal the field takes its value from; a 422 when it takes none."""
    capture = target.capture
    if capture is None or capture.equipment_signal is None:
        raise ValidationFailed(
            f"{target.name} is not taken from equipment: enter it by hand.",
            details={"field": "field"},
        )
    return capture.equipment_signal


def _bound(found: list[Window], signal: EquipmentSignal, step: str) -> Window:
    of_class = [w for w in found if w.unit.class_slug == signal.equipment_class]
    if not of_class:
        kind = signal.equipment_class.replace("-", " ")
        raise Conflict(
            f"No {kind} is bound to step {step} in this phase: take one for the step first.",
            details={"field": "field", "equipment_class": signal.equipment_class},
        )
    described = [w for w in of_class if w.has_signal(signal.signal)]
    if not described:
        code = of_class[0].unit.code
        raise Conflict(
            f"{code} does not capture {signal.signal}: its OPC UA description has no such signal.",
            details={"field": "field", "signal": signal.signal},
        )
    return described[0]


def _in_field_unit(value: float, win: Window, signal: str, unit: str | None) -> float:
    given = win.signal_unit(signal)
    if given is None or unit is None or given == unit:
        return value
    try:
        return float(quantities.convert(Decimal(repr(value)), given, unit))
    except ValidationFailed as exc:
        raise Conflict(
            f"{win.unit.code} gives {signal} in {given}, which cannot be given in {unit}: "
            f"{exc.message}",
            details={"field": "field", "signal_unit": given},
        ) from None


async def reading(batch_id: UUID, target: entries.Target) -> Reading:
    """The field's value from the equipment now; a 409 saying why there is none."""
    signal = signal_of(target)
    win = _bound(
        await phase_samples.windows(batch_id, target.step, target.phase), signal, target.step
    )
    how = signal.how
    if how == "latest":
        last = await phase_samples.latest(win, signal.signal)
        value, first, at, count = (
            (last.value, last.source_time, last.source_time, 1) if last else (None, None, None, 0)
        )
    else:
        found = await phase_samples.summary(win, signal.signal)
        value = {"mean": found.mean, "min": found.low, "max": found.high}[how]
        first, at, count = found.first, found.last, found.count
    if value is None or first is None or at is None:
        raise Conflict(
            f"No value from {win.unit.code} {signal.signal} since the phase started.",
            details={"field": "field", "code": win.unit.code, "signal": signal.signal},
        )
    shown = float(f"{_in_field_unit(value, win, signal.signal, target.unit):.{SIGNIFICANT}g}")
    return Reading(
        shown,
        target.unit,
        win.unit.code,
        signal.signal,
        how,
        at,
        first,
        count,
        win.unit.id,
        win.signal_unit(signal.signal),
    )


@dataclass(frozen=True)
class Preview:
    """What the run page shows next to a field from equipment: its value now, or why none."""

    reading: Reading | None
    problem: str | None


async def preview(batch_id: UUID, target: entries.Target) -> Preview:
    try:
        return Preview(await reading(batch_id, target), None)
    except AppError as exc:
        return Preview(None, exc.message)
