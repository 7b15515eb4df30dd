"""Liveness and readiness."""

from __future__ import annotations

from litestar import Response, get

from opencdmo.db.engine import get_engine


@get("/healthz", tags=["ops"], cache=False)
async def liveness() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@get("/readyz", tags=["ops"], cache=False)
async def readiness() -> Response[dict[str, str]]:
    """The database answers."""
    try:
        pool = get_engine().pool
        assert pool is not None
        async with pool.acquire(timeout=2) as connection:
            await connection.fetchval("SELECT 1")
    except Exception as exc:  # any failure means not ready
        return Response({"status": "unavailable", "reason": type(exc).__name__}, status_code=503)
    return Response({"status": "ok"})


route_handlers = [liveness, readiness]
