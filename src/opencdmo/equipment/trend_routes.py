"""A unit's signals streamed to the trend charts of its page, the run page and the review
page: ``GET /t/{slug}/equipment/{code}/stream?signal=S[&signal=...][&start=T][&end=T]``
(server-sent events, see ``trend_stream``). The unit is found first: an unknown one is a 404
whatever the query; a bad query is a 400 with a message, before any event is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from opencdmo.equipment import trend_stream
from opencdmo.equipment.routes import ONE
from opencdmo.equipment.trend_stream import LIMITS, TrendAsk
from opencdmo.scope import TenantContext
from opencdmo.web.guards import requires

# Optional here, checked after the unit is found (an unknown unit is a 404 whatever else).
Signals = Annotated[list[str] | None, QueryParameter(name="signal", required=False)]
Instant = Annotated[str | None, QueryParameter(required=False, max_length=200)]


async def _messages(
    ctx: TenantContext, plan: trend_stream.TrendPlan
) -> AsyncIterator[ServerSentEventMessage]:
    async for event in trend_stream.events(ctx, plan):
        if event.kind == "comment":
            yield ServerSentEventMessage(data=None, comment=event.data)
        else:
            yield ServerSentEventMessage(data=event.data, event=event.kind, id=event.id)


@get(ONE + "/stream", opt=requires("equipment", "read"), include_in_schema=False)
async def trend_events(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    code: FromPath[str],
    signal: Signals = None,
    start: Instant = None,
    end: Instant = None,
) -> ServerSentEvent:
    """The unit's signals as server-sent events: their history from start (default: 15
    minutes ago) downsampled, then, without an end, every new sample as it is stored."""
    given = TrendAsk(
        tuple(s[:200] for s in signal or ()), start, end, request.headers.get("last-event-id")
    )
    plan = await trend_stream.plan(ctx, code, given)
    return ServerSentEvent(_messages(ctx, plan), retry_duration=LIMITS.retry_ms)


pages = [trend_events]
