"""Failed password entries, counted by the throttle over a sliding window."""

from __future__ import annotations

from dataclasses import dataclass

from piccolo.custom_types import Combinable
from piccolo.query.functions.aggregate import Count, Max
from piccolo.querystring import QueryString

from opencdmo.db import sql
from opencdmo.db.sql import DEFAULT
from opencdmo.identity.tables import LoginFailure


@dataclass(frozen=True)
class Failures:
    """Which failures count: of one kind, matching each field given; ``untrusted`` keeps only
    those from no trusted browser or credential."""

    kind: str
    email: str | None = None
    address: str | None = None
    source: str | None = None
    untrusted: bool = False

    def within(self, seconds: float) -> Combinable:
        where: Combinable = (LoginFailure.failed_at > sql.since(seconds)) & (
            LoginFailure.kind == self.kind
        )
        for column, value in (
            (LoginFailure.email, self.email),
            (LoginFailure.address, self.address),
            (LoginFailure.source, self.source),
        ):
            if value is not None:
                where = where & (column == value)
        if self.untrusted:
            where = where & LoginFailure.source.is_null()
        return where


@dataclass(frozen=True)
class FailureCount:
    count: int  # failures, or accounts failed
    since: float  # seconds since the latest of them


async def seconds_left(failures: Failures, window: float, limit: int) -> list[float]:
    """For each of the newest ``limit`` failures in the window, newest first: the seconds
    until it leaves the window."""
    left = QueryString(
        "extract(epoch FROM ({} + make_interval(secs => {}) - clock_timestamp()))",
        LoginFailure.failed_at,
        float(window),
    ).as_alias("left")
    rows = (
        await LoginFailure.select(left)
        .where(failures.within(window))
        .order_by(LoginFailure.failed_at, ascending=False)
        .limit(int(limit))
    )
    return [float(r["left"]) for r in rows]


async def count_failures(failures: Failures, window: float, *, accounts: bool) -> FailureCount:
    """How many failures in the window (or, with ``accounts``, how many accounts failed)."""
    counted = Count(distinct=[LoginFailure.email]) if accounts else Count()
    since = QueryString(
        "extract(epoch FROM (clock_timestamp() - {}))", Max(LoginFailure.failed_at)
    ).as_alias("since")
    raw = await LoginFailure.select(counted.as_alias("n"), since).where(failures.within(window))
    n, seconds = raw[0]["n"], raw[0]["since"]
    return FailureCount(int(n), float(seconds) if seconds is not None else 0.0)


async def add_failure(kind: str, email: str, address: str, source: str | None) -> None:
    await LoginFailure.insert(
        LoginFailure(
            id=DEFAULT, kind=kind, email=email, address=address, source=source, failed_at=DEFAULT
        )
    )


async def clear_failures(kind: str, email: str, address: str, source: str | None) -> None:
    """Forget the failures of ``email`` from ``address`` (untrusted) and from ``source``."""
    here: Combinable = LoginFailure.source.is_null() & (LoginFailure.address == address)
    if source is not None:
        here = here | (LoginFailure.source == source)
    await LoginFailure.delete().where(
        (LoginFailure.kind == kind) & (LoginFailure.email == email) & here
    )
