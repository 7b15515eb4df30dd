"""Reads and writes of ``notifications_sent`` (the work context's table), in the open unit of
work."""

from __future__ import annotations

from uuid import UUID

from opencdmo.db.tx import joined
from opencdmo.scope import TenantContext
from opencdmo.work.registry import QueueItem
from opencdmo.work.tables import NotificationSent


def key(item: QueueItem) -> str:
    """An item as the notifications know it: its page and since when it is in the queue (a
    revision submitted again, at a later time, is new)."""
    return item.link if item.when is None else f"{item.link}@{item.when.isoformat()}"


async def claim(ctx: TenantContext, user_id: UUID, links: dict[str, str]) -> set[str]:
    """Record these items (key -> link) as mailed to the person; the keys recorded now (those
    recorded before, by this sweep or another, are left out). In key order, so two sweeps
    inserting the same items never wait on each other in a cycle."""
    if not links:
        return set()
    rows = [
        NotificationSent(tenant_id=ctx.tenant_id, user_id=user_id, item=k, link=links[k])
        for k in sorted(links)
    ]
    async with joined(ctx):
        inserted = (
            await NotificationSent.insert(*rows)
            .on_conflict(
                target=(
                    NotificationSent.tenant_id,
                    NotificationSent.user_id,
                    NotificationSent.item,
                ),
                action="DO NOTHING",
            )
            .returning(NotificationSent.item)
        )
    return {row["item"] for row in inserted}
