"""Reading a signal's samples for a trend chart: a window's history, downsampled so that a
week of 10 Hz data draws as fast as a few minutes of it, and the samples stored after a point.

``history`` reads at most ``RAW_MAX`` rows. It first asks whether the window holds more (one
probe of the key index at that offset): if not, it reads them and keeps ``points`` by LTTB; if
so, the database folds the window into ``BUCKETS_PER_POINT * points`` time buckets with the
lowest and the highest value of each (an envelope that keeps every spike), each bucket one
range read on the key index, and LTTB keeps ``points`` of those. Samples without a finite
number (text values, NaN) are not drawn.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

from opencdmo.equipment import samples
from opencdmo.equipment.samples import Point

RAW_MAX: Final = 20_000  # rows a history reads as they are; more: bucketed in the database
BUCKETS_PER_POINT: Final = 2  # buckets per point kept (each gives a low and a high)
AFTER_MAX: Final = 5_000  # rows one read of new samples returns (the next read goes on)
MICROSECOND: Final = dt.timedelta(microseconds=1)
FAR: Final = dt.timedelta(days=1)  # how far past now a device's clock may run ahead

# Raw SQL: whether the window holds more than $5 rows, one probe along the key index.
PROBE = """
SELECT 1 FROM equipment_samples
WHERE equipment_id = $1 AND signal = $2 AND source_time >= $3 AND source_time <= $4
ORDER BY source_time OFFSET $5 LIMIT 1
"""

# Raw SQL: an aggregate per time bucket, each a range read on the key index (LATERAL over
# generate_series: Piccolo cannot say it; a GROUP BY over the window would sort every row).
# Bucket $6 starts $5 microseconds after the one before it.
BUCKETS = """
SELECT a.low, a.high, a.mean, a.first, a.last
FROM generate_series(0, $6::int - 1) AS b(i),
LATERAL (
    SELECT min(value) AS low, max(value) AS high, avg(value) AS mean,
           min(source_time) AS first, max(source_time) AS last
    FROM equipment_samples
    WHERE equipment_id = $1 AND signal = $2
      AND source_time >= $3::timestamptz + interval '1 microsecond' * (b.i * $5::bigint)
      AND source_time < $3::timestamptz + interval '1 microsecond' * ((b.i + 1) * $5::bigint)
      AND source_time <= $4
      AND value IS NOT NULL AND value NOT IN ('NaN', 'Infinity', '-Infinity')
) AS a
WHERE a.first IS NOT NULL
ORDER BY b.i
"""


@dataclass(frozen=True, slots=True)
class Series:
    """A signal's points as a chart draws them: (source time, value), in time order."""

    signal: str
    points: list[tuple[dt.datetime, float]]
    bucketed: bool = False  # folded into time buckets in the database first


def _numbers(found: Sequence[Point]) -> list[tuple[dt.datetime, float]]:
    return [
        (p.source_time, p.value) for p in found if p.value is not None and math.isfinite(p.value)
    ]


async def history(
    conn: Any,
    equipment_id: UUID,
    signal: str,
    start: dt.datetime,
    end: dt.datetime,
    points: int,
) -> Series:
    """The signal's samples from ``start`` to ``end`` (both included), at most ``points`` of
    them (see the module), in the transaction open on ``conn``."""
    many = await conn.fetchval(PROBE, equipment_id, signal, start, end, RAW_MAX)
    if many is None:
        found = await samples.read_range(conn, equipment_id, signal, start, end, RAW_MAX)
        return Series(signal, _numbers(samples.lttb(found, points)))
    buckets = BUCKETS_PER_POINT * points
    width = max(1, math.ceil(((end - start) / MICROSECOND + 1) / buckets))
    rows = await conn.fetch(BUCKETS, equipment_id, signal, start, end, width, buckets)
    envelope = envelope_points(rows)
    kept = samples.lttb([Point(t, None, v, None, 0) for t, v in envelope], points)
    return Series(signal, _numbers(kept), bucketed=True)


def envelope_points(rows: Sequence[Any]) -> list[tuple[dt.datetime, float]]:
    """Two points per bucket, its low and its high, at its first and last sample's time, in
    the order the curve most likely passed them (rising into the bucket: low first); one
    point for a bucket of one value."""
    found: list[tuple[dt.datetime, float]] = []
    before: float | None = None
    for row in rows:
        low, high, mean = float(row["low"]), float(row["high"]), float(row["mean"])
        first, last = row["first"], row["last"]
        if first == last:
            found.append((first, low))
        else:
            rising = before is None or mean >= before
            found += [(first, low), (last, high)] if rising else [(first, high), (last, low)]
        before = mean
    return found


async def after(
    conn: Any, equipment_id: UUID, signal: str, since: dt.datetime, now: dt.datetime
) -> tuple[list[tuple[dt.datetime, float]], dt.datetime]:
    """The signal's samples stored with a source time after ``since`` (at most ``AFTER_MAX``,
    the oldest first), and the source time to read on from (the last one read, text values
    included); in the transaction open on ``conn``."""
    found = await samples.read_range(
        conn, equipment_id, signal, since + MICROSECOND, now + FAR, AFTER_MAX
    )
    return _numbers(found), (found[-1].source_time if found else since)
