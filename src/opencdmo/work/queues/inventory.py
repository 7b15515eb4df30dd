"""The inventory queue: lots in quarantine, awaiting QC's release or rejection."""

from __future__ import annotations

from opencdmo.inventory import service as inventory
from opencdmo.scope import TenantContext
from opencdmo.work.registry import Found, QueueItem, QueueProvider

COUNTED = 200  # lots read to count the queue (a longer one shows as 200)


async def _awaiting_qc(ctx: TenantContext, limit: int) -> Found:
    found = await inventory.list_lots(ctx, "quarantine", limit=COUNTED)
    items = [
        QueueItem(
            label=f"Lot {s.lot.lot_number} of {s.material_code}",
            link=f"/t/{ctx.slug}/lots/{s.lot.id}",
            when=s.lot.received_at,
            note=f"In quarantine: {s.lot.supplier}, supplier lot {s.lot.supplier_lot}",
        )
        for s in found[:limit]
    ]
    return Found(items, len(found))


QUEUES = (
    QueueProvider(
        key="lots_awaiting_qc",
        title="Lots awaiting QC release",
        permission=("materials", "release"),
        empty="No lot is in quarantine.",
        rank=17,
        action=True,
        fetch=_awaiting_qc,
    ),
)
