"""LTTB downsampling against a brute-force expectation: for each bucket, every candidate's
triangle area computed by the shoelace formula, the largest one chosen."""

from __future__ import annotations

import datetime as dt
import math
import random

import pytest

from opencdmo.equipment.samples import Point, lttb

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def series(values: list[float | None]) -> list[Point]:
    return [
        Point(T0 + dt.timedelta(seconds=i), None, v, None if v is not None else "x", 0)
        for i, v in enumerate(values)
    ]


def brute_force(points: list[Point], threshold: int) -> list[Point]:
    """LTTB written out plainly: buckets as lists, areas by the shoelace formula."""
    n = len(points)
    inner = points[1:-1]
    buckets = [
        inner[k * (n - 2) // (threshold - 2) : (k + 1) * (n - 2) // (threshold - 2)]
        for k in range(threshold - 2)
    ]
    buckets.append([points[-1]])
    xy = [(p.source_time.timestamp(), p.value or 0.0) for p in points]
    where = {id(p): i for i, p in enumerate(points)}
    out = [points[0]]
    for k in range(threshold - 2):
        nxt = buckets[k + 1]
        cx = sum(xy[where[id(p)]][0] for p in nxt) / len(nxt)
        cy = sum(xy[where[id(p)]][1] for p in nxt) / len(nxt)
        ax, ay = xy[where[id(out[-1])]]

        def area(p: Point, ax: float = ax, ay: float = ay, cx: float = cx, cy: float = cy) -> float:
            bx, by = xy[where[id(p)]]
            return 0.5 * abs(ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))

        out.append(max(buckets[k], key=area))  # the first of equal areas, as in a scan
    out.append(points[-1])
    return out


@pytest.mark.parametrize(("n", "threshold"), [(10, 3), (100, 10), (1000, 37), (257, 256)])
def test_lttb_matches_brute_force(n: int, threshold: int) -> None:
    rng = random.Random(n * threshold)
    points = series([math.sin(i / 7) * 10 + rng.gauss(0, 1) for i in range(n)])
    got = lttb(points, threshold)
    assert got == brute_force(points, threshold)
    assert len(got) == threshold
    assert got[0] == points[0] and got[-1] == points[-1]
    assert [p.source_time for p in got] == sorted(p.source_time for p in got)


def test_a_spike_is_kept() -> None:
    values: list[float | None] = [1.0] * 500
    values[321] = 99.0
    got = lttb(series(values), 20)
    assert any(p.value == 99.0 for p in got)


def test_short_series_and_text_values() -> None:
    points = series([1.0, None, 2.0, float("nan"), 3.0])
    assert [p.value for p in lttb(points, 3)] == [1.0, 2.0, 3.0]
    assert lttb(points, 10) == [points[0], points[2], points[4]]
    with pytest.raises(ValueError, match="at least 3"):
        lttb(points, 2)
