"""The library queue: installed items with a newer HUB version."""

from __future__ import annotations

from opencdmo.hub import library
from opencdmo.scope import TenantContext
from opencdmo.work.registry import Found, QueueItem, QueueProvider

KINDS = {
    "unit_operation": "unit operation",
    "recipe": "recipe",
    "method": "QC method",
    "material": "material",
    "equipment_class": "equipment class",
}


async def _updates(ctx: TenantContext, limit: int) -> Found:
    rows, total = await library.updates_available(ctx, limit)
    items = [
        QueueItem(
            label=f"{row.name} {row.version} → {row.available}",
            link=f"/t/{ctx.slug}/library/{row.id}/diff?to={row.available}",
            when=row.published_at,
            who=row.publisher,
            note=f"{KINDS.get(row.kind, row.kind).capitalize()}: version {row.available} is out",
        )
        for row in rows
    ]
    return Found(items, total)


QUEUES = (
    QueueProvider(
        key="library_updates",
        title="Library updates available",
        permission=("hub", "install"),
        empty="Every installed library item is at its latest version.",
        rank=40,
        fetch=_updates,
    ),
)
