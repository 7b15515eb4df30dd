"""The batch queue: complete batches awaiting QA's review and release."""

from __future__ import annotations

from opencdmo.batches import service as batches
from opencdmo.scope import TenantContext
from opencdmo.work.registry import Found, QueueItem, QueueProvider


async def _awaiting_release(ctx: TenantContext, limit: int) -> Found:
    rows, total = await batches.awaiting_release(ctx, limit)
    items = [
        QueueItem(
            label=f"Batch {s.batch.number}: {s.recipe_name}",
            link=f"/t/{ctx.slug}/batches/{s.batch.id}/review",
            when=s.batch.ended_at,
            note=f"Complete at {s.site_code}, for {s.batch.sponsor}: review and release",
        )
        for s in rows
    ]
    return Found(items, total)


QUEUES = (
    QueueProvider(
        key="batches_awaiting_release",
        title="Batches awaiting review and release",
        permission=("batches", "release"),
        empty="No complete batch awaits your review.",
        rank=15,
        action=True,
        fetch=_awaiting_release,
    ),
)
