"""The dashboard (each person's work queues, the tenant's sites and people) and the work
queues as JSON."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Template

from opencdmo.scope import TenantContext
from opencdmo.tenancy import service as tenancy
from opencdmo.web.guards import requires
from opencdmo.web.pages import page
from opencdmo.work import registry
from opencdmo.work.notifications import NOTIFICATIONS
from opencdmo.work.schemas import QueueItemOut, QueueOut, WorkOut

Limit = Annotated[int, QueryParameter(ge=1, le=registry.MAX_SHOWN, required=False)]


@get(
    "/",
    opt=requires("tenant", "read"),
    include_in_schema=False,
)
async def dashboard(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    queues = await registry.queues_for(ctx)
    # The top bar's count from the queues just read, rather than read again.
    request.state[NOTIFICATIONS] = registry.awaiting(queues)
    sites = await tenancy.list_sites(ctx)
    members = await tenancy.list_members(ctx)
    return await page(
        request,
        "work/dashboard.html",
        queues=queues,
        sites=sites,
        member_count=sum(1 for m in members if m.is_active),
    )


def _queue_out(queue: registry.Queue) -> QueueOut:
    items = [QueueItemOut(i.label, i.link, i.when, i.who, i.note) for i in queue.items]
    return QueueOut(queue.key, queue.title, queue.count, queue.action, queue.empty, items)


@get(
    "/work",
    opt=requires("tenant", "read"),
    tags=["work"],
)
async def api_work(ctx: NamedDependency[TenantContext], limit: Limit = registry.SHOWN) -> WorkOut:
    """My work queues (those my roles let me act on), each with its first ``limit`` items and
    its count, and how many items await my action (the top bar's notification count)."""
    queues = await registry.queues_for(ctx, limit)
    return WorkOut(registry.awaiting(queues), [_queue_out(q) for q in queues])


# Pages of a tenant, under /t/{slug} (the app mounts them in the context's router).
pages = [dashboard]

# The JSON API of a tenant, under /api/v1/t/{slug} (the app mounts it likewise).
api = [api_work]
