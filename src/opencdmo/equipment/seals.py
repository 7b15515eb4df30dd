"""Sealing stored samples into the tenant's audit trail.

Samples are not one audit event each. Instead the ``equipment.seal`` job (periodic, run by
the job worker: ``opencdmo.jobs``) seals each ``period`` (five minutes by default, aligned on
the epoch; ``OPENCDMO_SEAL_PERIOD_SECONDS``) of each unit once the period has ended and a
``grace`` has passed (``OPENCDMO_SEAL_GRACE_SECONDS``): per signal, the count of its samples
in the period and the SHA-256 of their canonical lines (source time in microseconds, value,
text value, status code, server time: ``LINE``), and one SHA-256 over those (``digest``). The
seal row and its ``equipment.samples_sealed`` event commit together, so the event chains the
digest into the tenant's audit trail. Periods without samples are not sealed. What is sealed
already is read from the database (a unit's newest seal), never kept in a process; a unit
keeps the period length of its first seal.

A period can get samples after it was sealed, legitimately: a spool stored once the database
is back, a server's history read after a reconnect or a lease handover. The store of such
rows (``samples.store``) enqueues an ``equipment.reseal`` job in its own transaction, naming
the sealed periods it stored rows into, and the job seals those again (a new version,
``equipment.samples_resealed``, with the reason) if their digest changed (``reseal``). A store
holds the unit's seal lock shared and a sealer holds it alone, so a seal either sees the rows
of a store or the store sees the seal (and the rows are late).

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
from opencdmo.db.tx import tenant_transaction, unit_of_work
from opencdmo.scope import TenantContext

logger = logging.getLogger(__name__)

PERIOD = dt.timedelta(minutes=5)
GRACE = dt.timedelta(minutes=1)  # after a period ends, before it is sealed
MAX_PERIODS = 288  # sealed per unit per run (a day of five-minute periods)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
SEAL_JOB = "equipment.seal"  # the periodic job sealing due periods (opencdmo.jobs.tasks)
RESEAL_JOB = "equipment.reseal"  # enqueued by a store of late rows

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


NEWEST = """
SELECT period_end, period_end - period_start AS period FROM sample_seals
WHERE tenant_id = $1 AND equipment_id = $2
ORDER BY period_end DESC LIMIT 1
"""
# The tenant's units, each with its newest seal (an index probe on period_end).
UNITS = """
SELECT e.id, e.code, s.period_end, s.period_end - s.period_start AS period
FROM equipment e
LEFT JOIN LATERAL (
    SELECT period_start, period_end FROM sample_seals
    WHERE tenant_id = e.tenant_id AND equipment_id = e.id
    ORDER BY period_end DESC LIMIT 1
) AS s ON true
WHERE e.tenant_id = $1
ORDER BY e.code
"""
# The earliest sample of the unit at or after $3 (its newest seal's end), by index probes
# only: the unit's signals by a loose scan of the primary key (one probe per signal), then
# per signal its first sample from $3 on. NULL: nothing to seal.
PENDING = """
WITH RECURSIVE s(signal) AS (
    (SELECT signal FROM equipment_samples WHERE tenant_id = $1 AND equipment_id = $2
     ORDER BY signal LIMIT 1)
    UNION ALL
    SELECT (SELECT x.signal FROM equipment_samples x
            WHERE x.tenant_id = $1 AND x.equipment_id = $2 AND x.signal > s.signal
            ORDER BY x.signal LIMIT 1)
    FROM s WHERE s.signal IS NOT NULL
)
SELECT min(n.source_time) FROM s CROSS JOIN LATERAL (
    SELECT source_time FROM equipment_samples
    WHERE tenant_id = $1 AND equipment_id = $2 AND signal = s.signal AND source_time >= $3
    ORDER BY source_time LIMIT 1
) AS n
"""
NEVER = dt.datetime(1, 1, 1, tzinfo=dt.UTC)  # before any sample (a unit never sealed)


def lock_key(unit: UUID) -> str:
    """The advisory lock key of a unit's seals (taken shared by a store of its samples)."""
    return f"seal:{unit}"


@dataclass(frozen=True)
class Timing:
    """How samples are sealed: a unit's first seal takes ``period`` (after that, the length
    of its newest seal: a unit's periods never change length); a period is sealed once it
    ended ``grace`` ago."""

    period: dt.timedelta = PERIOD
    grace: dt.timedelta = GRACE

    def __post_init__(self) -> None:
        if self.period <= dt.timedelta(0) or self.grace < dt.timedelta(0):
            raise ValueError("a seal period must be positive and its grace not negative")


@dataclass
class Unsealed:
    """A unit with samples from ``pending`` on not sealed yet."""

    id: UUID
    code: str
    pending: dt.datetime
    period: dt.timedelta


async def unsealed(conn: Any, tenant_id: UUID, timing: Timing) -> list[Unsealed]:
    """The tenant's units with samples after their newest seal (or never sealed)."""
    found = []
    for unit in await conn.fetch(UNITS, tenant_id):
        since = unit["period_end"] or NEVER
        pending = await conn.fetchval(PENDING, tenant_id, unit["id"], since)
        if pending is not None:
            found.append(
                Unsealed(unit["id"], unit["code"], pending, unit["period"] or timing.period)
            )
    return found


async def seal_tenant(ctx: TenantContext, timing: Timing, now: dt.datetime | None = None) -> int:
    """Seal the due periods of every unit of the tenant; how many seals it wrote."""
    now = now or dt.datetime.now(dt.UTC)
    async with tenant_transaction(ctx) as conn:
        units = await unsealed(conn, ctx.tenant_id, timing)
    written = 0
    for unit in units:
        if floor(unit.pending, unit.period) < floor(now - timing.grace, unit.period):
            written += await seal_due(ctx, unit.id, unit.code, timing, now)
    return written


async def seal_due(
    ctx: TenantContext, unit: UUID, code: str, timing: Timing, now: dt.datetime | None = None
) -> int:
    """Seal the unit's periods that ended ``grace`` before ``now`` after its newest seal (at
    most ``MAX_PERIODS``), each with its ``equipment.samples_sealed`` event, in one unit of
    work; how many. What is sealed already is read from the database under the unit's lock."""
    now = now or dt.datetime.now(dt.UTC)
    async with unit_of_work(ctx) as conn:
        # one sealer of a unit at a time (two job workers at once); a store of the unit's
        # samples holds it shared, so a seal never misses rows committed meanwhile
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", lock_key(unit))
        newest = await conn.fetchrow(NEWEST, ctx.tenant_id, unit)
        period = newest["period"] if newest else timing.period
        since = newest["period_end"] if newest else NEVER
        pending = await conn.fetchval(PENDING, ctx.tenant_id, unit, since)
        if pending is None:
            return 0
        # from the first period with samples: a gap longer than MAX_PERIODS is skipped
        start = floor(pending, period)
        end = min(floor(now - timing.grace, period), start + MAX_PERIODS * period)
        if end <= start:
            return 0
        found = await periods(conn, unit, start, end, period)
        for at in found:
            await _write(ctx, conn, unit, code, at, 1, None)
    return len(found)


async def reseal(ctx: TenantContext, unit: UUID, code: str, late: Iterable[dt.datetime]) -> int:
    """Seal again the sealed periods starting at ``late`` whose samples changed since (rows
    stored after they were sealed): a new version each, with its
    ``equipment.samples_resealed`` event and the reason, in one unit of work; how many. A
    period before the newest seal that had no seal (it had no samples then) gets its first
    (``equipment.samples_sealed``). A period whose digest is that of its newest seal is left
    as it is (run twice: nothing)."""
    wanted = set(late)
    if not wanted:
        return 0
    written = 0
    async with unit_of_work(ctx) as conn:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", lock_key(unit))
        newest = await conn.fetchrow(NEWEST, ctx.tenant_id, unit)
        if newest is None:
            return 0
        period = newest["period"]
        start, end = min(wanted), max(wanted) + period
        current = {s.period_start: s for s in await sealed(conn, unit, start, end)}
        for at in await periods(conn, unit, start, end, period):
            seal = current.get(at.start)
            if at.start not in wanted or (seal is not None and seal.digest == at.digest):
                continue
            # a period that had no samples when the ones around it were sealed (a dead
            # worker's spool stored by another): its first seal
            await _write(ctx, conn, unit, code, at, 1 if seal is None else seal.version + 1, seal)
            written += 1
    return written


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
