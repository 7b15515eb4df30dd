"""Trend history: a week of 10 Hz samples downsampled for a chart, against the plain indexed
range read of the same window, same run.

The demo tenant's BR-01 gets ``--days`` (7) days of ``--hz`` (10) samples of one signal
(6,048,000 rows at the defaults), written with COPY as the owner, then ANALYZE. Through an
asyncpg pool as the application role under row-level security (BEGIN READ ONLY with the
tenant setting, as the app reads), each side reads the whole window ``ROUNDS`` times, taking
turns:

- baseline: the plain range read on the key index (``samples.RANGE``) of every row of the
  window, streamed through a cursor and dropped (what reading the window raw costs at the
  least, before any Python object is made of a row);
- history: ``trends.history`` for 1,000 points, as the trend stream's first event reads it
  (a probe; more than 20,000 rows: time buckets with their low and high in the database,
  then LTTB, each bucket a range read on the key index).

Reported: the median of each, the ratio history / baseline (target: at most 0.25), and the
median of a 15-minute history (a live chart's first event) and of one poll for new samples.

``python -m bench.trend_history --days 1`` is a quicker run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from bench.api_list import _cli
from bench.harness import ROOT, drop_database, fresh_database, server_env
from opencdmo.db.engine import release_reset
from opencdmo.db.urls import APP_ROLE, with_user
from opencdmo.equipment import trends
from opencdmo.equipment.samples import RANGE

SLUG = "larkspur-cdmo"
CODE = "BR-01"
SIGNAL = "culture_temperature"
POINTS = 1000
ROUNDS = 3
TARGET = 0.25  # history time against the raw range read of the same window
CHUNK = 500_000
COLUMNS = ["tenant_id", "equipment_id", "signal", "value", "status_code", "source_time"]


def _rows(
    tenant: UUID, unit: UUID, start: datetime, count: int, step: timedelta, first: int
) -> Iterator[tuple[Any, ...]]:
    for i in range(first, min(first + CHUNK, count)):
        value = 37.0 + 0.2 * ((i // 600) % 10) / 10 + (0.5 if i % 100_003 == 0 else 0.0)
        yield tenant, unit, SIGNAL, value, 0, start + i * step


async def _load(owner: str, days: float, hz: float) -> tuple[UUID, UUID, datetime, datetime]:
    conn = await asyncpg.connect(owner)
    try:
        tenant = await conn.fetchval("SELECT id FROM tenants WHERE slug = $1", SLUG)
        unit = await conn.fetchval(
            "SELECT id FROM equipment WHERE tenant_id = $1 AND code = $2", tenant, CODE
        )
        end = datetime.now(UTC).replace(microsecond=0)
        count = int(days * 86400 * hz)
        step = timedelta(seconds=1 / hz)
        start = end - count * step
        began = time.perf_counter()
        for first in range(0, count, CHUNK):
            await conn.copy_records_to_table(
                "equipment_samples",
                records=list(_rows(tenant, unit, start, count, step, first)),
                columns=COLUMNS,
            )
        await conn.execute("ANALYZE equipment_samples")
        print(f"  {count:,} samples written in {time.perf_counter() - began:.0f} s")
        return tenant, unit, start, end - step
    finally:
        await conn.close()


async def _median(work: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        await work()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def main(days: float = 7, hz: float = 10) -> dict[str, Any]:
    owner, data_dir = await fresh_database("bench_trends")
    env = {**server_env(owner, data_dir), "OPENCDMO_ARGON2_TIME_COST": "1"}
    try:
        await _cli(env, "demo", str(ROOT / "tenants"))
        tenant, unit, start, end = await _load(owner, days, hz)
        pool = await asyncpg.create_pool(
            with_user(owner, APP_ROLE, None), min_size=1, max_size=2, reset=release_reset
        )
        begin = f"BEGIN READ ONLY; SELECT set_config('app.tenant_id', '{tenant}', true)"

        async def in_view(read: Callable[[Any], Awaitable[Any]]) -> Any:
            async with pool.acquire() as conn:
                await conn.execute(begin)
                try:
                    return await read(conn)
                finally:
                    await conn.execute("COMMIT")

        async def raw(conn: Any) -> int:
            seen = 0
            async for _ in conn.cursor(RANGE, unit, SIGNAL, start, end, 10**9, prefetch=10_000):
                seen += 1
            return seen

        async def history(conn: Any) -> trends.Series:
            return await trends.history(conn, unit, SIGNAL, start, end, POINTS)

        async def recent(conn: Any) -> trends.Series:
            return await trends.history(conn, unit, SIGNAL, end - timedelta(minutes=15), end, 1000)

        async def poll(conn: Any) -> Any:
            return await trends.after(conn, unit, SIGNAL, end - timedelta(seconds=1), end)

        try:
            rows = await in_view(raw)
            series = await in_view(history)
            times: dict[str, list[float]] = {"raw": [], "history": []}
            for _ in range(2):  # turns, so both sides meet the same cache
                times["raw"].append(await _median(lambda: in_view(raw)))
                times["history"].append(await _median(lambda: in_view(history)))
            results = {
                "rows": rows,
                "points": len(series.points),
                "bucketed": series.bucketed,
                "raw_ms": min(times["raw"]),
                "history_ms": min(times["history"]),
                "recent_ms": await _median(lambda: in_view(recent)),
                "poll_ms": await _median(lambda: in_view(poll)),
            }
        finally:
            await pool.close()
    finally:
        await drop_database(owner)
    return results


def report(results: dict[str, Any]) -> bool:
    print(__doc__.strip().splitlines()[0])
    ratio = results["history_ms"] / results["raw_ms"]
    ok = ratio <= TARGET and results["points"] <= POINTS and results["bucketed"]
    rows = f"{results['rows']:,} rows"
    print(f"  raw range read of the window  {results['raw_ms']:9.1f} ms  ({rows})")
    print(
        f"  history, {POINTS} points         {results['history_ms']:9.1f} ms  "
        f"({results['points']} points, bucketed: {results['bucketed']})"
    )
    print(f"  ratio {ratio:.3f} (target <= {TARGET}: {'met' if ratio <= TARGET else 'NOT met'})")
    print(f"  15-minute history             {results['recent_ms']:9.1f} ms")
    print(f"  one poll for new samples      {results['poll_ms']:9.1f} ms")
    return ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--hz", type=float, default=10)
    given = parser.parse_args()
    sys.exit(0 if report(asyncio.run(main(given.days, given.hz))) else 1)
