"""A unit's signals as a stream of events for live trend charts (server-sent events).

``plan`` checks what a request asks for, the unit first (an unknown unit is the same 404
whatever the query says): one to ``signals`` of the unit's signals, a window from ``start``
(default: ``window`` ago) to ``end`` (none: live), and the ``Last-Event-ID`` a reconnecting
browser sends. ``events`` then yields:

- ``history``: the window so far, each signal downsampled to at most ``points`` points
  (``trends.history``); after a reconnect, ``samples`` from the last event's time instead;
- with an ``end``: ``end``, and the stream is over;
- live: every ``poll`` seconds, ``samples`` stored since (a ``source_time >`` range read per
  signal), a comment every ``heartbeat`` seconds of quiet, until ``seconds`` have passed and
  the stream ends (the browser's EventSource reconnects, its Last-Event-ID carrying the time).

Each event's data is ``{signal: [[t_ms, value], ...]}``; its id is the earliest of the
signals' last source times, in microseconds since the epoch. Every read is its own short
read-only transaction, never one held across a wait, and is shielded from cancellation: a
client that goes away ends the generator at its next wait with every connection returned.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.db.tx import read_view
from opencdmo.equipment import queries as q
from opencdmo.equipment import trends
from opencdmo.equipment.queries import UnitRow
from opencdmo.equipment.service import lookup, parse_instant
from opencdmo.errors import AppError, ValidationFailed
from opencdmo.scope import TenantContext

T = TypeVar("T")
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class StreamLimits:
    seconds: float = 300.0  # the longest a connection lives; the browser reconnects
    poll: float = 1.0  # seconds between reads of new samples
    heartbeat: float = 15.0  # seconds of quiet before a comment keeps the connection open
    signals: int = 8  # signals one stream carries
    points: int = 1000  # points per signal in a history
    window: timedelta = timedelta(minutes=15)  # the history of a live stream without a start
    span: timedelta = timedelta(days=31)  # the longest window
    retry_ms: int = 2000  # how long the browser waits before it reconnects


LIMITS: Final = StreamLimits()


@dataclass(frozen=True)
class TrendAsk:
    """What a stream request asks for, as given (checked by ``plan``)."""

    signals: tuple[str, ...]
    start: str | None = None
    end: str | None = None
    last_event_id: str | None = None


@dataclass(frozen=True)
class TrendPlan:
    unit_id: UUID
    code: str
    signals: tuple[str, ...]
    start: datetime
    end: datetime | None  # None: live
    resume: datetime | None  # a reconnect: the last event's time


@dataclass(frozen=True)
class Event:
    kind: str  # "history", "samples", "end", or "comment"
    data: str
    id: str | None = None


async def plan(
    ctx: TenantContext, code_or_id: str, given: TrendAsk, limits: StreamLimits = LIMITS
) -> TrendPlan:
    """The stream a request asks for (see the module), or a 404 or 400 saying why not."""
    async with read_view(ctx):
        await authorize(ctx, "equipment", "read")
        row = await lookup(code_or_id)
        now = await q.now()
    try:
        return _checked(row, given, now, limits)
    except ValidationFailed as exc:  # a query parameter: a bad request
        raise AppError(exc.message, details=exc.details) from None


def _checked(row: UnitRow, given: TrendAsk, now: datetime, limits: StreamLimits) -> TrendPlan:
    signals = _signals(row, given.signals, limits)
    start = parse_instant(given.start, "start") if given.start else now - limits.window
    end = parse_instant(given.end, "end") if given.end else None
    if end is not None and end < start:
        raise ValidationFailed("end must not be before start", details={"field": "end"})
    if (end or now) - start > limits.span:
        raise ValidationFailed(
            f"a trend's window is at most {limits.span.days} days", details={"field": "start"}
        )
    resume = _resumed(given.last_event_id, start)
    return TrendPlan(row.id, row.code, signals, start, end, resume)


def _signals(row: UnitRow, given: tuple[str, ...], limits: StreamLimits) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(s.strip() for s in given if s.strip()))
    if not wanted:
        raise ValidationFailed("signal is required (one or more)", details={"field": "signal"})
    if len(wanted) > limits.signals:
        raise ValidationFailed(
            f"at most {limits.signals} signals in one stream", details={"field": "signal"}
        )
    known = (row.connection or {}).get("signals", {})
    for signal in wanted:
        if signal not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise ValidationFailed(
                f"'{signal[:64]}' is not a signal of {row.code} (its signals: {listed})",
                details={"field": "signal"},
            )
    return wanted


def _resumed(last_event_id: str | None, start: datetime) -> datetime | None:
    """The time a reconnecting browser had reached (an id this stream gave; anything else is
    ignored and the history sent again), never before the window."""
    raw = (last_event_id or "").strip()
    if not raw.isdigit() or len(raw) > 20:
        return None
    try:
        found = EPOCH + timedelta(microseconds=int(raw))
    except OverflowError:
        return None
    return max(found, start)


# --- the events -------------------------------------------------------------------------------

Cursors = dict[str, datetime]
Found = dict[str, list[tuple[datetime, float]]]

_open = 0  # streams open in this process
_reads: set[asyncio.Task[Any]] = set()  # shielded reads still running


def open_streams() -> int:
    """How many trend streams this process is serving now."""
    return _open


def reads_running() -> int:
    """How many of the streams' reads are running now (one left running by a stream that
    ended meanwhile finishes on its own)."""
    return len(_reads)


async def events(
    ctx: TenantContext, plan: TrendPlan, limits: StreamLimits = LIMITS
) -> AsyncIterator[Event]:
    """The stream's events (see the module)."""
    global _open
    _open += 1
    try:
        deadline = time.monotonic() + limits.seconds
        since = plan.start if plan.resume is None else plan.resume + trends.MICROSECOND
        cursors, found = await _shielded(_history(ctx, plan, since, limits))
        yield Event("history" if plan.resume is None else "samples", _data(found), _id(cursors))
        if plan.end is not None:
            yield Event("end", "{}")
            return
        quiet = time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(limits.poll)
            cursors, found = await _shielded(_after(ctx, plan, cursors))
            if any(found.values()):
                yield Event("samples", _data(found), _id(cursors))
                quiet = time.monotonic()
            elif time.monotonic() - quiet >= limits.heartbeat:
                yield Event("comment", "still here")
                quiet = time.monotonic()
    finally:
        _open -= 1


async def _shielded(work: Coroutine[Any, Any, T]) -> T:
    """Run a read to its end even if the stream is cancelled meanwhile (its transaction
    closes and its connection goes back to the pool); the cancellation is felt after it."""
    task = asyncio.create_task(work)
    _reads.add(task)
    task.add_done_callback(_reads.discard)
    return await asyncio.shield(task)


async def _history(
    ctx: TenantContext, plan: TrendPlan, since: datetime, limits: StreamLimits
) -> tuple[Cursors, Found]:
    async with read_view(ctx) as conn:
        end = plan.end or await q.now()
        read = [
            await trends.history(conn, plan.unit_id, s, since, end, limits.points)
            for s in plan.signals
        ]
    # read on from the last point, or (none yet) from the window's start, inclusive
    empty = since - trends.MICROSECOND
    cursors = {s.signal: s.points[-1][0] if s.points else empty for s in read}
    return cursors, {s.signal: s.points for s in read}


async def _after(ctx: TenantContext, plan: TrendPlan, cursors: Cursors) -> tuple[Cursors, Found]:
    now = datetime.now(UTC)
    moved, found = dict(cursors), {}
    async with read_view(ctx) as conn:
        for signal in plan.signals:
            found[signal], moved[signal] = await trends.after(
                conn, plan.unit_id, signal, cursors[signal], now
            )
    return moved, found


def _ms(at: datetime) -> float:
    return round((at - EPOCH) / timedelta(milliseconds=1), 3)


def _data(found: Found) -> str:
    return json.dumps(
        {signal: [[_ms(t), v] for t, v in points] for signal, points in found.items()},
        separators=(",", ":"),
    )


def _id(cursors: Cursors) -> str:
    return str((min(cursors.values()) - EPOCH) // timedelta(microseconds=1))
