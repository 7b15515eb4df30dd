"""The recipe work queues of one person (the dashboard's, through ``opencdmo.work``): reads
only, each one query in the transaction open in the context (the page's read view)."""

from __future__ import annotations

from opencdmo.db.tx import tenant_transaction
from opencdmo.recipes import queue_queries
from opencdmo.recipes.queue_queries import RecipeQueue
from opencdmo.scope import TenantContext

RECENT_DAYS = 30
_NONE = RecipeQueue([], 0)


async def awaiting_signature(ctx: TenantContext, limit: int) -> RecipeQueue:
    """Revisions that need a signature the member may give and has not given: an approval
    (never of their own revision, never twice) or the signature that makes it effective."""
    if ctx.user_id is None:
        return _NONE
    async with tenant_transaction(ctx):
        return await queue_queries.awaiting_signature(ctx.user_id, limit)


async def returned(ctx: TenantContext, limit: int) -> RecipeQueue:
    """Revisions the member submitted that QA returned to Draft, with who and why."""
    if ctx.user_id is None:
        return _NONE
    async with tenant_transaction(ctx):
        return await queue_queries.returned(ctx.user_id, limit)


async def drafts(ctx: TenantContext, limit: int) -> RecipeQueue:
    """Drafts the member last saved (those returned from review are in ``returned``)."""
    if ctx.user_id is None:
        return _NONE
    async with tenant_transaction(ctx):
        return await queue_queries.drafts(ctx.user_id, limit)


async def recently_effective(ctx: TenantContext, limit: int) -> RecipeQueue:
    """Recipes made effective in the last RECENT_DAYS days, newest first."""
    async with tenant_transaction(ctx):
        return await queue_queries.recently_effective(RECENT_DAYS, limit)
