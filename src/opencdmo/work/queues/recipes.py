"""The master recipe queues: awaiting my signature, returned to me, my drafts, recently
effective."""

from __future__ import annotations

from opencdmo.recipes import service as recipes
from opencdmo.recipes.queue_queries import RecipeQueue, RecipeWork
from opencdmo.scope import TenantContext
from opencdmo.work.registry import Found, QueueItem, QueueProvider

# The signature an item awaiting one needs, by the state it is in.
NEEDS = {
    "in_review": "Needs your approval",
    "approved": "Approved: needs your signature to make it effective",
}


def _item(ctx: TenantContext, row: RecipeWork, note: str | None = None) -> QueueItem:
    return QueueItem(
        label=f"{row.name}, revision {row.revision}",
        link=f"/t/{ctx.slug}/recipes/{row.recipe_id}",
        when=row.at,
        who=row.by,
        note=note if note is not None else row.note,
    )


def _found(ctx: TenantContext, queue: RecipeQueue, notes: dict[str, str] | None = None) -> Found:
    notes = notes or {}
    return Found([_item(ctx, row, notes.get(row.status)) for row in queue.rows], queue.total)


async def _awaiting(ctx: TenantContext, limit: int) -> Found:
    return _found(ctx, await recipes.awaiting_signature(ctx, limit), NEEDS)


async def _returned(ctx: TenantContext, limit: int) -> Found:
    return _found(ctx, await recipes.returned(ctx, limit))


async def _drafts(ctx: TenantContext, limit: int) -> Found:
    return _found(ctx, await recipes.drafts(ctx, limit))


async def _recent(ctx: TenantContext, limit: int) -> Found:
    return _found(ctx, await recipes.recently_effective(ctx, limit))


QUEUES = (
    QueueProvider(
        key="awaiting_signature",
        title="Awaiting my signature",
        permission=("recipes", "approve"),
        empty="No recipe revision awaits your signature.",
        rank=10,
        action=True,
        fetch=_awaiting,
    ),
    QueueProvider(
        key="returned",
        title="Returned to me",
        permission=("recipes", "edit"),
        empty="No revision of yours was returned from review.",
        rank=20,
        action=True,
        fetch=_returned,
    ),
    QueueProvider(
        key="drafts",
        title="My drafts",
        permission=("recipes", "edit"),
        empty="You have no drafts. Create a recipe from the Recipes page or from the HUB.",
        rank=30,
        fetch=_drafts,
    ),
    QueueProvider(
        key="recently_effective",
        title="Recently effective recipes",
        permission=("recipes", "read"),
        empty=f"No recipe was made effective in the last {recipes.RECENT_DAYS} days.",
        rank=50,
        fetch=_recent,
    ),
)
