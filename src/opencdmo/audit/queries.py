"""Reading the audit trail: filters, keyset pages, export batches."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from opencdmo.audit.chain import AUDIT_FIELDS
from opencdmo.audit.tables import AuditEvent
from opencdmo.db.tx import tenant_transaction
from opencdmo.errors import ValidationFailed
from opencdmo.scope import TenantContext

# What the trail shows and exports: every chained field but the keys, plus both hashes.
COLUMNS = (
    *(name for name in AUDIT_FIELDS if name not in ("tenant_id", "id")),
    "prev_hash",
    "hash",
)


@dataclass(frozen=True)
class AuditFilter:
    actor: str = ""
    entity: str = ""
    action: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def as_query(self) -> dict[str, str]:
        values = {"actor": self.actor, "entity": self.entity, "action": self.action}
        return {key: value for key, value in values.items() if value}


def _moment(raw: str, zone: str, *, end: bool, field: str) -> datetime | None:
    raw = raw.strip()
    if not raw:
        return None
    tz = ZoneInfo(zone)
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            moment = datetime.combine(day + timedelta(days=1) if end else day, time(), tz)
        else:
            parsed = datetime.fromisoformat(raw)
            moment = parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
        moment.astimezone(UTC)  # the database compares in UTC: it must exist there too
    except ValueError:
        raise ValidationFailed(
            f"{field}: '{raw}' is not a date (YYYY-MM-DD) or date and time (YYYY-MM-DDTHH:MM).",
            details={"field": field},
        ) from None
    except OverflowError:
        raise ValidationFailed(
            f"{field}: '{raw}' is outside the dates the audit trail can be searched by "
            "(years 1 to 9999).",
            details={"field": field},
        ) from None
    return moment


def parse_filter(
    ctx: TenantContext,
    actor: str | None,
    entity: str | None,
    action: str | None,
    since: str | None,
    until: str | None,
) -> AuditFilter:
    """Dates without a zone are read in the site's time zone; ``until`` a date includes it."""
    for name, value in (("actor", actor), ("entity", entity), ("action", action)):
        if value and "\x00" in value:
            raise ValidationFailed(f"'{name}' contains a NUL character.", details={"field": name})
    start = _moment(since or "", ctx.time_zone, end=False, field="since")
    stop = _moment(until or "", ctx.time_zone, end=True, field="until")
    if start and stop and start >= stop:
        raise ValidationFailed("'since' must be before 'until'.", details={"field": "since"})
    return AuditFilter(
        (actor or "").strip()[:200],
        (entity or "").strip()[:200],
        (action or "").strip()[:100],
        start,
        stop,
    )


def _where(flt: AuditFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = ["seq IS NOT NULL"]  # sealed events: unsealed ones have no place yet
    args: list[Any] = []
    if flt.actor:
        args.extend([f"%{_escape(flt.actor)}%", flt.actor])
        clauses.append(f"(actor_name ILIKE ${len(args) - 1} OR actor_id::text = ${len(args)})")
    if flt.entity:
        kind, _, ident = flt.entity.partition(":")
        args.append(kind)
        clauses.append(f"entity_type = ${len(args)}")
        if ident:
            args.append(ident)
            clauses.append(f"entity_id = ${len(args)}")
    if flt.action:
        args.append(_escape(flt.action) + "%")
        clauses.append(f"action LIKE ${len(args)}")
    if flt.since:
        args.append(flt.since)
        clauses.append(f"occurred_at >= ${len(args)}")
    if flt.until:
        args.append(flt.until)
        clauses.append(f"occurred_at < ${len(args)}")
    return " AND ".join(clauses), args


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def page(
    ctx: TenantContext, flt: AuditFilter, *, before: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first; returns the rows and the cursor of the next (older) page, if any."""
    where, args = _where(flt)
    if before is not None:
        args.append(before)
        where += f" AND seq < ${len(args)}"
    args.append(limit + 1)
    query = (
        f"SELECT {', '.join(COLUMNS)} FROM audit_events WHERE {where} "
        f"ORDER BY seq DESC LIMIT ${len(args)}"
    )
    async with tenant_transaction(ctx) as connection:
        rows = [dict(row) for row in await connection.fetch(query, *args)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["seq"] if more and rows else None)


async def batches(ctx: TenantContext, flt: AuditFilter, size: int = 1000) -> Any:
    """All matching events, oldest first, in batches (each batch its own short transaction)."""
    after = 0
    where, args = _where(flt)
    args.append(size)
    limit_arg = len(args)
    args.append(after)
    query = (
        f"SELECT {', '.join(COLUMNS)} FROM audit_events WHERE {where} "
        f"AND seq > ${len(args)} ORDER BY seq LIMIT ${limit_arg}"
    )
    while True:
        args[-1] = after
        async with tenant_transaction(ctx) as connection:
            rows = [dict(row) for row in await connection.fetch(query, *args)]
        if not rows:
            return
        yield rows
        if len(rows) < size:
            return
        after = rows[-1]["seq"]


@dataclass(frozen=True)
class EntityAction:
    """One event of an entity's trail: what was done, when, and the values it set."""

    action: str
    occurred_at: datetime
    new_values: Any


async def entity_actions(
    entity_type: str, entity_id: str, actions: tuple[str, ...]
) -> list[EntityAction]:
    """The entity's events with those actions, in the trail's order (events not sealed yet
    last, in the order they were written), in the transaction open in this context."""
    rows = await (
        AuditEvent.select(AuditEvent.action, AuditEvent.occurred_at, AuditEvent.new_values)
        .where(
            (AuditEvent.entity_type == entity_type)
            & (AuditEvent.entity_id == entity_id)
            & AuditEvent.action.is_in(list(actions))
        )
        .order_by(AuditEvent.seq)
        .order_by(AuditEvent.entry)
    )
    return [EntityAction(r["action"], r["occurred_at"], _json(r["new_values"])) for r in rows]


def _json(raw: str | None) -> Any:
    return None if raw is None else json.loads(raw)
