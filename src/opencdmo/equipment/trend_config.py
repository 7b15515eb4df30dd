"""What a page tells its trend charts (``static/js/trends.js`` reads it from data attributes):
a group of charts fed by one stream (one unit, up to ``LIMITS.signals`` signals, a window,
live or not), and per chart its signal, display unit, limit bands and excursion spans.

Bands are computed here, on the server, from the content (``batches.trend_charts``); an
excursion is a (start, end) span, drawn shaded. Times go to the browser in milliseconds
since the epoch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

from opencdmo.equipment.queries import UnitRow
from opencdmo.equipment.trend_stream import LIMITS
from opencdmo.labels import label
from opencdmo.units import number, unit

BAND_NAMES: Final = {
    "limits": "limits",
    "normal": "normal range",
    "proven": "proven acceptable range",
}


@dataclass(frozen=True)
class Band:
    """A range drawn across a chart: a field's ``limits``, or a parameter's ``normal`` or
    ``proven`` acceptable range; either bound may be missing."""

    kind: str
    low: float | None
    high: float | None

    def text(self, shown_unit: str) -> str:
        after = f" {shown_unit}" if shown_unit else ""
        if self.low is not None and self.high is not None:
            span = f"{number(self.low)} to {number(self.high)}{after}"
        elif self.low is not None:
            span = f"at least {number(self.low)}{after}"
        else:
            span = f"at most {number(self.high)}{after}"
        return f"{BAND_NAMES[self.kind].capitalize()}: {span}"


@dataclass(frozen=True)
class Span:
    """A time span shaded on a chart (an excursion)."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Chart:
    signal: str
    unit_code: str | None = None
    bands: tuple[Band, ...] = ()
    excursions: tuple[Span, ...] = ()

    @property
    def name(self) -> str:
        return label(self.signal)

    @property
    def unit(self) -> str:
        return unit(self.unit_code)

    @property
    def band_texts(self) -> list[str]:
        return [b.text(self.unit) for b in self.bands]

    def config(self) -> str:
        """The chart's data attribute: what trends.js draws besides the points."""
        return _json(
            {
                "signal": self.signal,
                "name": self.name,
                "unit": self.unit,
                "bands": [{"kind": b.kind, "low": b.low, "high": b.high} for b in self.bands],
                "excursions": [[ms(s.start), ms(s.end)] for s in self.excursions],
            }
        )


@dataclass(frozen=True)
class Group:
    """Charts fed by one stream: one unit's signals over one window."""

    id: str  # the element id, unique in the page
    title: str
    slug: str
    code: str
    charts: tuple[Chart, ...]
    start: datetime | None = None  # None: the last 15 minutes
    end: datetime | None = None  # None: live
    note: str = ""  # what the window is, in words

    @property
    def live(self) -> bool:
        return self.end is None

    @property
    def url(self) -> str:
        query: list[tuple[str, str]] = [("signal", c.signal) for c in self.charts]
        if self.start is not None:
            query.append(("start", self.start.astimezone(UTC).isoformat()))
        if self.end is not None:
            query.append(("end", self.end.astimezone(UTC).isoformat()))
        return f"/t/{self.slug}/equipment/{self.code}/stream?{urlencode(query)}"

    @property
    def window(self) -> str:
        """The x range the charts show, as data: ``start,end`` in ms (empty: follow data)."""
        start = "" if self.start is None else str(ms(self.start))
        end = "" if self.end is None else str(ms(self.end))
        return f"{start},{end}"


def ms(at: datetime) -> float:
    return round(at.timestamp() * 1000, 3)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def signals_of(row: UnitRow) -> dict[str, str | None]:
    """The unit's signals with their UCUM units, in the order its connection lists them."""
    found = (row.connection or {}).get("signals", {})
    return {key: (spec or {}).get("unit") for key, spec in found.items()}


def unit_groups(slug: str, row: UnitRow, charts: Sequence[Chart] | None = None) -> list[Group]:
    """The unit page's charts: every signal of the unit, live over the last 15 minutes, a
    group per ``LIMITS.signals`` signals."""
    every = list(charts or [Chart(k, u) for k, u in signals_of(row).items()])
    size = LIMITS.signals
    return [
        Group(
            f"trends-{row.code}-{i // size + 1}",
            f"Live signals of {row.code}",
            slug,
            row.code,
            tuple(every[i : i + size]),
            note="Every signal of the unit over the last 15 minutes, drawn as it is stored.",
        )
        for i in range(0, len(every), size)
    ]
