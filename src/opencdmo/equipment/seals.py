"""Sealing stored samples into the tenant's audit trail.

Samples are not one audit event each. Instead the capture worker seals each ``period``
(five minutes by default, aligned on the epoch) of each unit it captures once the period has
ended and a ``grace`` has passed: per signal, the count of its samples in the period and the
SHA-256 of their canonical lines (source time in microseconds, value, text value, status
code, server time: ``LINE``), and one SHA-256 over those (``digest``). The seal row and its
``equipment.samples_sealed`` event commit together, so the event chains the digest into the
tenant's audit trail. Periods without samples are not sealed.

A period can get samples after it was sealed, legitimately: a spool stored once the database
is back, a server's history read after a reconnect or a lease handover. The batcher tells
the sealer which sealed periods it stored rows into, and those are sealed again (a new
version, ``equipment.samples_resealed``, with the reason) if their digest changed.

``opencdmo audit verify`` (``check``) computes every period's digests again from the stored
samples up to the newest seal of each unit and compares them with the newest version of each
seal, and each seal with its event: a sample changed or removed (a digest differs), added
where there was none (a period with samples but no seal), or a seal written without its
event, is a finding.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opencdmo.audit import service as audit
from opencdmo.audit.coverage import Check
from opencdmo.audit.walker import Finding
from opencdmo.canonical import canonical_json
from opencdmo.db.tx import unit_of_work
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext

logger = logging.getLogger(__name__)

PERIOD = dt.timedelta(minutes=5)
GRACE = dt.timedelta(minutes=1)  # after a period ends, before it is sealed
MAX_PERIODS = 288  # sealed per unit per round (a day of five-minute periods)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# Raw SQL (this and the next two): aggregates over the partitioned samples (date_bin, an
# ordered string_agg hashed with sha256) that Piccolo's query builder cannot express. The
# same text is run to seal and to verify, so both hash the same canonical lines.
LINE = (
    "concat_ws('|', (extract(epoch FROM source_time) * 1000000)::bigint, "
    "quote_nullable(value), quote_nullable(text_value), status_code, "
    "quote_nullable((extract(epoch FROM server_time) * 1000000)::bigint))"
)
DIGESTS = f"""
SELECT date_bin(make_interval(secs => $2), source_time, $5::timestamptz) AS period,
       signal, count(*) AS samples,
       encode(sha256(convert_to(string_agg({LINE}, E'\\n' ORDER BY source_time), 'UTF8')),
              'hex') AS digest
FROM equipment_samples
WHERE equipment_id = $1 AND source_time >= $3 AND source_time < $4
GROUP BY 1, 2
ORDER BY 1, 2
"""
FIRST = """
SELECT min(source_time) FROM equipment_samples WHERE equipment_id = $1
"""
SEALED = """
SELECT DISTINCT ON (period_start) id, equipment_id, period_start, period_end, version,
       samples, signals, digest
FROM sample_seals
WHERE equipment_id = $1 AND period_start < $3 AND period_end > $2
ORDER BY period_start, version DESC
"""


@dataclass(frozen=True)
class Period:
    """One period of a unit's samples as they are stored now."""

    start: dt.datetime
    end: dt.datetime
    signals: dict[str, list[Any]]  # signal -> [count, digest]

    @property
    def samples(self) -> int:
        return sum(int(count) for count, _ in self.signals.values())

    @property
    def digest(self) -> str:
        return hashlib.sha256(canonical_json(self.signals).encode()).hexdigest()


@dataclass(frozen=True)
class Seal:
    id: UUID
    equipment_id: UUID
    period_start: dt.datetime
    period_end: dt.datetime
    version: int
    samples: int
    signals: dict[str, list[Any]]
    digest: str


def floor(moment: dt.datetime, period: dt.timedelta) -> dt.datetime:
    """The start of the period ``moment`` is in (periods aligned on the epoch)."""
    return EPOCH + ((moment - EPOCH) // period) * period


async def periods(
    conn: Any, unit: UUID, start: dt.datetime, end: dt.datetime, period: dt.timedelta
) -> list[Period]:
    """The unit's periods from ``start`` to ``end`` that hold samples, with their digests."""
    found: dict[dt.datetime, dict[str, list[Any]]] = {}
    for row in await conn.fetch(DIGESTS, unit, period.total_seconds(), start, end, EPOCH):
        found.setdefault(row["period"], {})[row["signal"]] = [row["samples"], row["digest"]]
    return [Period(at, at + period, signals) for at, signals in sorted(found.items())]


async def sealed(conn: Any, unit: UUID, start: dt.datetime, end: dt.datetime) -> list[Seal]:
    """The newest version of each seal of the unit overlapping ``start`` to ``end``."""
    rows = await conn.fetch(SEALED, unit, start, end)
    return [_seal(r) for r in rows]


def _seal(row: Mapping[str, Any]) -> Seal:
    signals = row["signals"]
    return Seal(
        row["id"],
        row["equipment_id"],
        row["period_start"],
        row["period_end"],
        row["version"],
        row["samples"],
        canonical_signals(signals),
        row["digest"],
    )


def canonical_signals(raw: Any) -> dict[str, list[Any]]:
    value = json.loads(raw) if isinstance(raw, str) else raw
    return {str(k): [int(v[0]), str(v[1])] for k, v in dict(value).items()}


class Sealer:
    """Seals the periods of the units a worker captures; ``late`` collects the sealed
    periods the batcher stored rows into since the last round."""

    def __init__(
        self,
        tenant_id: UUID,
        *,
        period: dt.timedelta = PERIOD,
        grace: dt.timedelta = GRACE,
        worker: str = "capture",
    ) -> None:
        if period <= dt.timedelta(0) or grace < dt.timedelta(0):
            raise ValueError("a seal period must be positive and its grace not negative")
        self.tenant_id = tenant_id
        self.period = period
        self.grace = grace
        self.meta = RequestMeta(request_id=f"capture:{worker}"[:64])
        self.sealed_until: dict[UUID, dt.datetime] = {}
        self.late: dict[UUID, set[dt.datetime]] = {}
        self.seals = 0
        self.reseals = 0
        self._ctx: TenantContext | None = None

    def stored(self, rows: Iterable[Any]) -> None:
        """Rows were stored: note the sealed periods they fall in."""
        for row in rows:
            until = self.sealed_until.get(row.equipment_id)
            if until is not None and row.source_time < until:
                self.late.setdefault(row.equipment_id, set()).add(
                    floor(row.source_time, self.period)
                )

    async def context(self) -> TenantContext:
        if self._ctx is None:
            from opencdmo.tenancy.service import internal_context

            ctx = await internal_context(self.tenant_id, SYSTEM, self.meta)
            if ctx is None:
                raise LookupError(f"tenant {self.tenant_id} is gone")
            self._ctx = ctx
        return self._ctx

    async def round(self, units: Mapping[UUID, str], now: dt.datetime | None = None) -> int:
        """Seal the due periods of ``units`` (id -> code) and seal again the late ones;
        returns how many seals it wrote."""
        now = now or dt.datetime.now(dt.UTC)
        due = floor(now - self.grace, self.period)
        written = 0
        for unit, code in units.items():
            written += await self._reseal(unit, code)
            written += await self._seal_due(unit, code, due)
        return written

    async def _seal_due(self, unit: UUID, code: str, due: dt.datetime) -> int:
        ctx = await self.context()
        async with unit_of_work(ctx) as conn:
            # one sealer of a unit at a time (two workers overlapping at a lease handover)
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"seal:{unit}")
            last = await conn.fetchval(
                "SELECT max(period_end) FROM sample_seals WHERE equipment_id = $1", unit
            )
            start = last or await conn.fetchval(FIRST, unit)
            if start is None:
                return 0
            start = floor(start, self.period)
            end = min(due, start + MAX_PERIODS * self.period)
            if end <= start:
                self.sealed_until[unit] = max(start, self.sealed_until.get(unit, start))
                return 0
            found = await periods(conn, unit, start, end, self.period)
            for period in found:
                await self._write(ctx, conn, unit, code, period, 1, None)
            self.sealed_until[unit] = end
        self.seals += len(found)
        return len(found)

    async def _reseal(self, unit: UUID, code: str) -> int:
        late = self.late.pop(unit, set())
        if not late:
            return 0
        ctx = await self.context()
        written = 0
        async with unit_of_work(ctx) as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"seal:{unit}")
            start, end = min(late), max(late) + self.period
            current = {s.period_start: s for s in await sealed(conn, unit, start, end)}
            for period in await periods(conn, unit, start, end, self.period):
                seal = current.get(period.start)
                if period.start not in late or seal is None or seal.digest == period.digest:
                    continue
                await self._write(ctx, conn, unit, code, period, seal.version + 1, seal)
                written += 1
        self.reseals += written
        return written

    @staticmethod
    async def _write(
        ctx: TenantContext,
        conn: Any,
        unit: UUID,
        code: str,
        period: Period,
        version: int,
        before: Seal | None,
    ) -> None:
        seal_id = uuid.uuid4()
        # Raw SQL: the seal written on the unit of work's own connection, in its transaction.
        await conn.execute(
            "INSERT INTO sample_seals (tenant_id, id, equipment_id, period_start, period_end, "
            "version, samples, signals, digest) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            ctx.tenant_id,
            seal_id,
            unit,
            period.start,
            period.end,
            version,
            period.samples,
            canonical_json(period.signals),
            period.digest,
        )
        new = {
            "code": code,
            "equipment_id": str(unit),
            "period_start": period.start.isoformat(),
            "period_end": period.end.isoformat(),
            "version": version,
            "samples": period.samples,
            "digest": period.digest,
        }
        if before is None:
            await audit.record(ctx, "equipment.samples_sealed", "sample_seal", seal_id, new=new)
            return
        await audit.record(
            ctx,
            "equipment.samples_resealed",
            "sample_seal",
            seal_id,
            old={"version": before.version, "samples": before.samples, "digest": before.digest},
            new=new,
            reason="samples stored after the period was sealed (a spool stored once the "
            "database was back, or a server's history read after a reconnect)",
        )


# --- verification -----------------------------------------------------------------------------

UNSEALED_EVENTS = """
SELECT s.id, s.equipment_id, s.period_start, s.version FROM sample_seals s
WHERE s.tenant_id = $1 AND NOT EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.tenant_id = s.tenant_id AND a.entity_type = 'sample_seal'
      AND a.entity_id = s.id::text
      AND a.action IN ('equipment.samples_sealed', 'equipment.samples_resealed')
      AND a.new_values ->> 'digest' = s.digest
      AND (a.new_values ->> 'version')::int = s.version
      AND a.new_values ->> 'equipment_id' = s.equipment_id::text)
"""
SEALED_UNITS = """
SELECT s.equipment_id, min(s.period_start) AS first, max(s.period_end) AS last,
       (array_agg(s.period_end - s.period_start))[1] AS period, e.code
FROM sample_seals s JOIN equipment e ON e.tenant_id = s.tenant_id AND e.id = s.equipment_id
WHERE s.tenant_id = $1
GROUP BY s.equipment_id, e.code
"""


async def check(conn: Any, tenant_id: UUID) -> list[Finding]:
    """The findings of the seals (see the module), on the verifier's snapshot connection."""
    found = [
        Finding(
            "uncovered",
            None,
            f"sample seal {r['id']} (version {r['version']} of the period from "
            f"{r['period_start']:%Y-%m-%d %H:%M:%S} UTC) has no audit event that vouches for it",
        )
        for r in await conn.fetch(UNSEALED_EVENTS, tenant_id)
    ]
    for unit in await conn.fetch(SEALED_UNITS, tenant_id):
        first = await conn.fetchval(FIRST, unit["equipment_id"])
        start = min(unit["first"], first) if first else unit["first"]
        stored = {
            p.start: p
            for p in await periods(conn, unit["equipment_id"], start, unit["last"], unit["period"])
        }
        seals = {
            s.period_start: s for s in await sealed(conn, unit["equipment_id"], start, unit["last"])
        }
        for at in sorted(set(stored) | set(seals)):
            found += _compare(unit["code"], at, stored.get(at), seals.get(at))
    return found


def _compare(code: str, at: dt.datetime, stored: Period | None, seal: Seal | None) -> list[Finding]:
    when = f"{at:%Y-%m-%d %H:%M:%S} UTC"
    if seal is None:
        assert stored is not None
        return [
            Finding(
                "tampered",
                None,
                f"{code}: {stored.samples} samples from {when} are in no seal (added after the "
                "periods around them were sealed)",
            )
        ]
    now = stored.signals if stored else {}
    if stored is not None and stored.digest == seal.digest:
        return []
    changed = sorted(
        key for key in set(now) | set(seal.signals) if now.get(key) != seal.signals.get(key)
    )
    counts = ", ".join(
        f"{key}: {seal.signals.get(key, [0])[0]} sealed, {now.get(key, [0])[0]} stored"
        for key in changed
    )
    return [
        Finding(
            "tampered",
            None,
            f"{code}: the samples of the period from {when} are not those sealed (version "
            f"{seal.version}); {counts or 'the same counts, different values'}",
        )
    ]


AUDIT_COVERAGE = (Check("sample seals", check),)
