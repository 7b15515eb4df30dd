"""The simulated equipment's signals and the curves they follow.

Signal keys are those of the HUB equipment classes' ``typical_signals``
(hub_content/equipment_classes): BR-01 is a rocking-motion-bioreactor, INC-01 a co2-incubator,
FRZ-01 a controlled-rate-freezer holding at -80 °C. A curve is a base value with a slow sine
drift, a steady slope and Gaussian noise from a seeded generator, so a seed gives the same
values every run; an excursion replaces it with a set value (plus the same noise) for a while.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

NAMESPACE = "urn:opencdmo:sim"


@dataclass(frozen=True)
class SignalSpec:
    """One simulated signal: where it lives (equipment, node) and how it moves."""

    equipment: str
    key: str
    node: str  # the node id, e.g. "ns=2;s=BR01.Temperature"
    unit: str
    base: float
    noise: float  # standard deviation of the noise
    drift: float = 0.0  # amplitude of the slow sine drift
    period: float = 600.0  # seconds of one drift cycle
    slope: float = 0.0  # steady change per second (a culture's weight rising)
    low: float = -math.inf
    high: float = math.inf

    @property
    def name(self) -> str:
        """The node id's identifier (``BR01.Temperature``)."""
        return self.node.split(";s=", 1)[1]


@dataclass(frozen=True)
class Setpoint:
    """A writable node of the simulated equipment (its value is what clients write)."""

    equipment: str
    key: str
    node: str
    unit: str
    initial: float


EQUIPMENT: dict[str, str] = {
    "BR-01": "rocking-motion-bioreactor",
    "INC-01": "co2-incubator",
    "FRZ-01": "controlled-rate-freezer",
}

SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("BR-01", "culture_temperature", "ns=2;s=BR01.Temperature", "Cel", 37.0, 0.02, 0.15),
    SignalSpec("BR-01", "ph", "ns=2;s=BR01.pH", "[pH]", 7.2, 0.005, 0.03, 900.0),
    SignalSpec(
        "BR-01", "dissolved_oxygen", "ns=2;s=BR01.DissolvedOxygen", "%", 45.0, 0.3, 5.0, 1200.0
    ),
    SignalSpec("BR-01", "culture_weight", "ns=2;s=BR01.Weight", "g", 1000.0, 0.05, 0.0, slope=0.01),
    SignalSpec("INC-01", "chamber_temperature", "ns=2;s=INC01.Temperature", "Cel", 37.0, 0.03, 0.1),
    SignalSpec("INC-01", "co2_concentration", "ns=2;s=INC01.CO2", "%", 5.0, 0.02, 0.05, 300.0),
    SignalSpec("FRZ-01", "chamber_temperature", "ns=2;s=FRZ01.Temperature", "Cel", -80.0, 0.1, 0.5),
)

SETPOINTS: tuple[Setpoint, ...] = (
    Setpoint("BR-01", "temperature_setpoint", "ns=2;s=BR01.TemperatureSetpoint", "Cel", 37.0),
)


def synthetic(count: int) -> tuple[SignalSpec, ...]:
    """``count`` extra signals on a synthetic unit SIM-01 (``SIM.Signal0000``...), for load."""
    return tuple(
        SignalSpec("SIM-01", f"signal_{i:04d}", f"ns=2;s=SIM.Signal{i:04d}", "1", 50.0, 1.0, 10.0)
        for i in range(count)
    )


@dataclass(frozen=True)
class Excursion:
    """A signal held near ``value`` from ``after`` seconds into the run, for ``seconds``."""

    node: str
    value: float
    seconds: float
    after: float = 0.0

    def active(self, elapsed: float) -> bool:
        return self.after <= elapsed < self.after + self.seconds


class Curve:
    """The values of one signal over time, reproducible from a seed."""

    def __init__(self, spec: SignalSpec, seed: int) -> None:
        self.spec = spec
        self._random = random.Random(f"{seed}:{spec.node}")
        self._phase = self._random.uniform(0, 2 * math.pi)
        self._last: float | None = None

    def value(self, elapsed: float, excursion: Excursion | None = None) -> float:
        """The value at ``elapsed`` seconds into the run; never equal to the previous one, so
        every update is a change a subscription reports."""
        spec = self.spec
        noise = self._random.gauss(0.0, spec.noise)
        if excursion is not None and excursion.active(elapsed):
            value = excursion.value + noise
        else:
            cycle = math.sin(2 * math.pi * elapsed / spec.period + self._phase)
            value = spec.base + spec.drift * cycle + spec.slope * elapsed + noise
            value = min(max(value, spec.low), spec.high)
        value = round(value, 6)
        if value == self._last:
            value = math.nextafter(value, math.inf)
        self._last = value
        return value
