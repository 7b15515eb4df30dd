"""The top bar's notification count: how many items await the signed-in member's action in
the tenant they are in (the pages' context, ``webapp.page_context``, asks for it)."""

from __future__ import annotations

from typing import Any

from litestar import Request

from opencdmo.scope import TenantContext
from opencdmo.work import registry

# Where a handler that has just read the queues leaves the count (the dashboard), so that
# the page's context need not read them again.
NOTIFICATIONS = "opencdmo.notifications"


async def count_for(request: Request[Any, Any, Any], ctx: TenantContext) -> int:
    known = request.state.get(NOTIFICATIONS)
    if isinstance(known, int):
        return known
    return await registry.notification_count(ctx)
