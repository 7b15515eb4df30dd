"""Storing captured samples and reading them back.

``store(tenant_id, rows)`` writes a batch in ONE statement (an ``INSERT ... SELECT FROM
unnest(...)`` of column arrays) in a transaction with the tenant set, as every tenant write
is; a sample already stored (same unit, signal and source time: a replay, a reconnect) is
skipped by the unique key, and the count returned is of the new ones. Rows it stores into a
unit's periods that are sealed already enqueue an ``equipment.reseal`` job in that same
transaction (``seals``): the job exists if and only if the rows were stored.

``Batcher`` is the capture client's sink for every unit a worker captures: it gathers what
the clients deliver and stores it every ``interval`` seconds, or at once when ``size``
samples are waiting (the client waits for that write: back pressure, not an unbounded
queue).

Samples are read back in source time order, optionally downsampled by LTTB
(``lttb``: largest triangle three buckets), which keeps the first and the last point.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from opencdmo.db import jobs
from opencdmo.db.tx import tenant_id_transaction
from opencdmo.equipment import seals

if TYPE_CHECKING:  # asyncua takes most of a second to import: the web workers do without it
    from opencdmo.equipment.opcua_client import Sample
    from opencdmo.equipment.spool import Spool

logger = logging.getLogger(__name__)

TEXT_MAX = 2000

# Raw SQL: each unit's seal lock taken shared (``seals.lock_key``) before a store: a sealer
# holds it alone, so it waits for the store to commit, or the store waits for the seal.
LOCK = "SELECT pg_advisory_xact_lock_shared(hashtext(k)) FROM unnest($1::text[]) AS k"
# Raw SQL: one statement for a whole batch (unnest of column arrays), skipping stored keys.
# Its snapshot is taken after the lock above, so it also reads each unit's newest seal as
# committed (an index probe on sample_seals_end), and answers per unit how many rows it
# stored and the source times of those before that seal (late: none, as a rule).
INSERT = """
WITH sealed AS (
    SELECT u.id, e.code, s.period_end, s.period_end - s.period_start AS period
    FROM (SELECT DISTINCT unnest($2::uuid[])) AS u(id)
    JOIN equipment e ON e.tenant_id = $1 AND e.id = u.id
    CROSS JOIN LATERAL (
        SELECT period_start, period_end FROM sample_seals
        WHERE tenant_id = $1 AND equipment_id = u.id
        ORDER BY period_end DESC LIMIT 1
    ) AS s
), stored AS (
    INSERT INTO equipment_samples
        (tenant_id, equipment_id, signal, value, text_value, status_code, source_time,
         server_time)
    SELECT $1::uuid, s.* FROM unnest(
        $2::uuid[], $3::text[], $4::float8[], $5::text[], $6::int8[], $7::timestamptz[],
        $8::timestamptz[]) AS s
    ON CONFLICT DO NOTHING
    RETURNING equipment_id, source_time
)
SELECT t.equipment_id, count(*) AS stored, x.code, x.period,
       array_agg(DISTINCT t.source_time) FILTER (WHERE t.source_time < x.period_end) AS late
FROM stored AS t LEFT JOIN sealed AS x ON x.id = t.equipment_id
GROUP BY t.equipment_id, x.code, x.period
"""


@dataclass(frozen=True, slots=True)
class Row:
    """One sample as stored."""

    equipment_id: UUID
    signal: str
    value: float | None
    text_value: str | None
    status_code: int
    source_time: dt.datetime
    server_time: dt.datetime | None


def row_of(equipment_id: UUID, sample: Sample) -> Row:
    """The stored form of a sample: a number as ``value``, anything else as text; a sample
    without a source timestamp is stamped with the server's (or, lacking both, now)."""
    value: float | None = None
    text: str | None = None
    raw = sample.value
    if isinstance(raw, bool | int | float):
        value = float(raw)
    elif raw is not None:
        text = (raw if isinstance(raw, str) else str(raw))[:TEXT_MAX]
    stamp = sample.source_timestamp or sample.server_timestamp or dt.datetime.now(dt.UTC)
    return Row(
        equipment_id,
        sample.signal,
        value,
        text,
        sample.status & 0xFFFFFFFF,
        stamp,
        sample.server_timestamp,
    )


async def store(tenant_id: UUID, rows: Sequence[Row]) -> int:
    """Store the rows in one statement; returns how many were not stored already. Rows stored
    into periods sealed already (late: a spool, a server's history) enqueue one
    ``equipment.reseal`` job per unit in the same transaction (``seals``)."""
    if not rows:
        return 0
    async with tenant_id_transaction(tenant_id) as conn:
        await conn.execute(LOCK, sorted({seals.lock_key(r.equipment_id) for r in rows}))
        per_unit = await conn.fetch(
            INSERT,
            tenant_id,
            [r.equipment_id for r in rows],
            [r.signal for r in rows],
            [r.value for r in rows],
            [r.text_value for r in rows],
            [r.status_code for r in rows],
            [r.source_time for r in rows],
            [r.server_time for r in rows],
        )
        for unit in per_unit:
            if unit["late"]:
                await _enqueue_reseal(conn, tenant_id, unit)
    return sum(int(r["stored"]) for r in per_unit)


async def _enqueue_reseal(conn: Any, tenant_id: UUID, unit: Any) -> None:
    """The ``equipment.reseal`` job of a unit this transaction stored rows of before its
    newest seal, naming the sealed periods they fall in (each the length of the unit's)."""
    late = sorted({seals.floor(at, unit["period"]) for at in unit["late"]})
    await jobs.enqueue(
        seals.RESEAL_JOB,
        {
            "equipment_id": str(unit["equipment_id"]),
            "code": unit["code"],
            "periods": [at.isoformat() for at in late],
        },
        tenant_id=tenant_id,
        on=conn,
    )


# Raw SQL: the newest source time of each signal, one index probe per signal (LATERAL ...
# LIMIT 1 over the partitions' index; a GROUP BY would read every sample of the unit).
NEWEST = """
SELECT s.signal, n.source_time FROM unnest($2::text[]) AS s(signal)
CROSS JOIN LATERAL (
    SELECT source_time FROM equipment_samples
    WHERE equipment_id = $1 AND signal = s.signal AND source_time > $3
    ORDER BY source_time DESC LIMIT 1
) AS n
"""
RESUME_WINDOW = dt.timedelta(days=1)  # the furthest back a worker reads a server's history


async def newest(tenant_id: UUID, equipment_id: UUID, signals: list[str]) -> dict[str, dt.datetime]:
    """Per signal, the newest sample stored in the last ``RESUME_WINDOW``."""
    since = dt.datetime.now(dt.UTC) - RESUME_WINDOW
    async with tenant_id_transaction(tenant_id) as conn:
        rows = await conn.fetch(NEWEST, equipment_id, signals, since)
    return {r["signal"]: r["source_time"] for r in rows}


async def make_partitions(tenant_id: UUID, months_ahead: int = 2) -> int:
    """Make the month partitions of the samples table up to ``months_ahead`` months on."""
    async with tenant_id_transaction(tenant_id) as conn:
        made: int = await conn.fetchval("SELECT equipment_samples_partitions($1)", months_ahead)
    return made


class UnitSink:
    """The sink of one unit's capture client: its samples go to the worker's batcher."""

    def __init__(self, batcher: Batcher, equipment_id: UUID) -> None:
        self.batcher = batcher
        self.equipment_id = equipment_id

    async def write(self, samples: list[Sample]) -> None:
        await self.batcher.add([row_of(self.equipment_id, s) for s in samples])


class Batcher:
    """Gathers rows from every unit's client and stores them in batches: every ``interval``
    seconds, or as soon as ``size`` rows wait. ``stored`` counts the new rows written.

    With a ``spool``, a batch the database does not take (unreachable, restarting) goes to
    disk instead, and so does every batch for the next ``retry`` seconds; then the spooled
    batches are stored again, oldest first, before new ones. Without one, the error ends the
    flush (and the worker)."""

    def __init__(
        self,
        tenant_id: UUID,
        *,
        interval: float = 0.1,
        size: int = 500,
        spool: Spool | None = None,
        retry: float = 1.0,
    ) -> None:
        self.tenant_id = tenant_id
        self.interval = interval
        self.size = size
        self.spool = spool
        self.retry = retry
        self.stored = 0
        self.offered = 0
        self.spooled = 0  # rows written to the spool
        self.replayed = 0  # spooled rows stored since
        self.outages = 0
        self._rows: list[Row] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._down_until: float | None = None  # the database failed: no retry before then

    def sink(self, equipment_id: UUID) -> UnitSink:
        return UnitSink(self, equipment_id)

    async def add(self, rows: list[Row]) -> None:
        self._rows.extend(rows)
        self.offered += len(rows)
        if len(self._rows) >= self.size:
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            if self.spool is not None and not await self._replay():
                self._spool_waiting()
                return
            while self._rows:
                batch = self._rows[: self.size]
                try:
                    self.stored += await store(self.tenant_id, batch)
                except Exception as exc:
                    if self.spool is None:
                        raise
                    self._down(exc)
                    self._spool_waiting()
                    return
                del self._rows[: len(batch)]

    def _down(self, exc: Exception) -> None:
        if self._down_until is None:
            self.outages += 1
            logger.error("storing samples failed (%s): spooling them to disk", exc)
        self._down_until = asyncio.get_running_loop().time() + self.retry

    async def _replay(self) -> bool:
        """Store the spooled batches, oldest first; False while the database is down."""
        assert self.spool is not None
        loop = asyncio.get_running_loop()
        if self._down_until is not None and loop.time() < self._down_until:
            return False
        for spooled in self.spool.pending():
            rows = spooled.rows()
            try:
                self.stored += await store(self.tenant_id, rows)
            except Exception as exc:
                self._down(exc)
                return False
            self.spool.done(spooled)
            self.replayed += len(rows)
        if self._down_until is not None:
            logger.warning("storing samples again; the spool is empty")
            self._down_until = None
        return True

    def _spool_waiting(self) -> None:
        """Move the waiting rows to the spool, a batch at a time; a full spool keeps the rest
        in memory."""
        assert self.spool is not None
        while self._rows:
            batch = self._rows[: self.size]
            if self.spool.put(batch) is None:
                logger.error(
                    "the capture spool %s is full: %d samples wait in memory",
                    self.spool.directory,
                    len(self._rows),
                )
                return
            del self._rows[: len(batch)]
            self.spooled += len(batch)

    async def __aenter__(self) -> Batcher:
        if self.spool is not None:
            self.spool.open()
        self._closing.clear()
        self._task = asyncio.create_task(self._every_interval())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None:
            # Asked to end, not cancelled: a flush under way finishes (cancelled while its
            # transaction commits, a store's rows would be stored but not counted).
            self._closing.set()
            await self._task
        try:
            await self.flush()
        finally:
            if self.spool is not None:
                self.spool.close()

    async def _every_interval(self) -> None:
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.interval)
            if not self._closing.is_set():
                await self.flush()


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Point:
    """A stored sample as read back."""

    source_time: dt.datetime
    server_time: dt.datetime | None
    value: float | None
    text_value: str | None
    status_code: int


# Raw SQL: a range read on the partitioned table's key (Piccolo's builder would do; this
# keeps the bounds half-open and the order explicit in one place).
RANGE = """
SELECT source_time, server_time, value, text_value, status_code
FROM equipment_samples
WHERE equipment_id = $1 AND signal = $2 AND source_time >= $3 AND source_time <= $4
ORDER BY source_time
LIMIT $5
"""


async def read_range(
    conn: Any, equipment_id: UUID, signal: str, start: dt.datetime, end: dt.datetime, limit: int
) -> list[Point]:
    """The unit's samples of ``signal`` from ``start`` to ``end`` (both included), in source
    time order, at most ``limit``; in the transaction open on ``conn``."""
    rows = await conn.fetch(RANGE, equipment_id, signal, start, end, limit)
    return [Point(**dict(r)) for r in rows]


def lttb(points: Sequence[Point], threshold: int) -> list[Point]:
    """Largest triangle three buckets: ``threshold`` (at least 3) of the points, keeping the
    series' shape: the first and last, and from each of the buckets between them the point
    making the largest triangle with the point chosen before it and the next bucket's
    average. Points without a finite number are left out; ``threshold`` or fewer numeric
    points come back as they are."""
    if threshold < 3:
        raise ValueError("LTTB keeps at least 3 points")
    data = [p for p in points if p.value is not None and math.isfinite(p.value)]
    n = len(data)
    if n <= threshold:
        return data
    xs = [p.source_time.timestamp() for p in data]
    ys = [p.value or 0.0 for p in data]

    def bound(k: int) -> int:  # where bucket k starts (integers: no rounding at the end)
        return k * (n - 2) // (threshold - 2) + 1

    chosen, a = [data[0]], 0
    for i in range(threshold - 2):
        low, high = bound(i), bound(i + 1)
        ahead = range(high, min(bound(i + 2), n))
        avg_x = sum(xs[j] for j in ahead) / len(ahead)
        avg_y = sum(ys[j] for j in ahead) / len(ahead)
        best, best_area = low, -1.0
        for j in range(low, high):
            area = abs((xs[a] - avg_x) * (ys[j] - ys[a]) - (xs[a] - xs[j]) * (avg_y - ys[a]))
            if area > best_area:
                best, best_area = j, area
        chosen.append(data[best])
        a = best
    chosen.append(data[-1])
    return chosen
