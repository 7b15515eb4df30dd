"""``GET /metrics`` for Prometheus: only with the metrics bearer token (OPENCDMO_METRICS_TOKEN),
which no tenant member has; without the setting the route is not there (404)."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request, Response, get

from opencdmo.db.engine import get_engine
from opencdmo.errors import NotFound
from opencdmo.ops import metrics as m

_token: str | None = None


def configure(token: str | None) -> None:
    """This process's metrics token (the app sets it from OPENCDMO_METRICS_TOKEN at start)."""
    global _token
    _token = token or None


@get("/metrics", tags=["ops"], cache=False, include_in_schema=False)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Request counts and latencies per route, the job queue and capture lag."""
    expected = _token
    if expected is None:
        raise NotFound()
    sent = request.headers.get("authorization", "")
    scheme, _, token = sent.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        # A plain 401 for the scraper (never the sign-in redirect a page would give).
        return Response(
            b"/metrics needs the metrics bearer token.\n",
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
            media_type="text/plain",
        )
    pool = get_engine().pool
    assert pool is not None
    async with pool.acquire() as connection:
        families = await m.database_families(connection)
    body = m.process_text() + m.families_text(families)
    return Response(body, media_type=m.CONTENT_TYPE)


route_handlers = [metrics]
