"""Rate limits on the API (``/api/...``): per credential (an API token, or a session calling
the API) and per tenant, answered with 429 and ``Retry-After``.

Where the counters live: in each worker process's memory, as a GCRA (generic cell rate
algorithm: one "theoretical arrival time" per key, no timers, O(1) per request). A limit is
shared out by the worker count (``OPENCDMO_WORKERS``): each of N workers allows 1/N of the
rate and 1/N of the burst. The kernel spreads connections over the workers, so a client gets
about its rate in all, within a burst's worth. The alternative, a shared counter in PostgreSQL
(an UNLOGGED table upserted per request), would add a database round trip to every API
request, which the batch entry path (bench/batch_entries.py, within 40 % of plain asyncpg)
cannot afford; an exact limit across hosts behind a load balancer belongs in front of them.

Only requests that resolved into a tenant are counted (unauthenticated or unknown-tenant
requests end in 401/404 before they do any work; sign-in has its own throttle).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from opencdmo.errors import AppError
from opencdmo.settings import Settings

PRUNE_AT = 10_000  # keys kept before the ones at rest are dropped


class RateLimited(AppError):
    status_code = 429
    title = "Too many requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


@dataclass
class Rate:
    """``per_minute`` requests a minute for one key, ``burst_seconds`` of them at once."""

    per_minute: int
    burst_seconds: int
    workers: int = 1

    @property
    def interval(self) -> float:
        """Seconds between two requests of one key in this worker (its share of the rate)."""
        return 60.0 * max(self.workers, 1) / self.per_minute

    @property
    def tolerance(self) -> float:
        return float(self.burst_seconds)


@dataclass
class Limiter:
    per_credential: Rate | None
    per_tenant: Rate | None
    clock: Callable[[], float] = time.monotonic
    _due: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limiter:
        def rate(per_minute: int) -> Rate | None:
            if per_minute <= 0:
                return None
            return Rate(per_minute, settings.api_rate_burst_seconds, settings.workers)

        return cls(rate(settings.api_rate_per_token), rate(settings.api_rate_per_tenant))

    def check(self, credential: str | None, tenant: str) -> None:
        """Count one request, or raise :class:`RateLimited` (then nothing is counted)."""
        now = self.clock()
        checks = [(f"t:{tenant}", self.per_tenant, "this tenant")]
        if credential is not None:
            checks.insert(0, (f"c:{credential}", self.per_credential, "this API token"))
        updates = []
        for key, rate, whose in checks:
            if rate is None:
                continue
            due = max(self._due.get(key, now), now)
            wait = due - now - rate.tolerance
            if wait > 0:
                retry = max(1, math.ceil(wait))
                raise RateLimited(
                    f"Too many requests for {whose} (at most {rate.per_minute} a minute); "
                    f"retry after {retry} seconds.",
                    retry,
                )
            updates.append((key, due + rate.interval))
        for key, due in updates:
            self._due[key] = due
        if len(self._due) > PRUNE_AT:
            self._due = {k: v for k, v in self._due.items() if v > now}


_limiter = Limiter(None, None)


def configure(limiter: Limiter) -> Limiter:
    """This process's limiter (the app sets it at start; tests swap it)."""
    global _limiter
    _limiter = limiter
    return limiter


def limiter() -> Limiter:
    return _limiter


class RateLimitMiddleware(ASGIMiddleware):
    """Runs inside the principal middleware: the caller and tenant are resolved by then."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["path"].startswith("/api/"):
            principal = scope.get("state", {}).get("principal")
            if principal is not None and principal.ctx is not None:
                ctx = principal.ctx
                _limiter.check(ctx.meta.credential, str(ctx.tenant_id))
        await next_app(scope, receive, send)
