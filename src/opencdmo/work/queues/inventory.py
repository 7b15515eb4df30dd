"""The inventory queues: lots in quarantine, awaiting QC's release or rejection; and the
materials handler's: containers to label, materials below their reorder level, lots
expiring soon."""

from __future__ import annotations

from opencdmo import units
from opencdmo.inventory import service as inventory
from opencdmo.inventory import stock
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


QUEUES: tuple[QueueProvider, ...] = (
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


# --- the materials handler's queues -----------------------------------------------------------


async def _to_label(ctx: TenantContext, limit: int) -> Found:
    found, total = await stock.to_label(ctx, limit)
    items = [
        QueueItem(
            label=f"Container {s.row.number} of lot {s.row.lot_number} ({s.row.material_code})",
            link=f"/t/{ctx.slug}/lots/{s.row.lot_id}/labels",
            when=s.row.received_at,
            note=f"Label not printed yet; {s.place.path if s.place else 'not put away yet'}",
        )
        for s in found
    ]
    return Found(items, total)


async def _expiring(ctx: TenantContext, limit: int) -> Found:
    found, total = await stock.expiring(ctx, limit)
    items = [
        QueueItem(
            label=f"Lot {s.lot.lot_number} of {s.material_code}",
            link=f"/t/{ctx.slug}/lots/{s.lot.id}",
            note=f"Expires on {s.lot.expiry_date}; {inventory.STATUS_NAMES[s.status]}",
        )
        for s in found
    ]
    return Found(items, total)


async def _below_reorder(ctx: TenantContext, limit: int) -> Found:
    found, total = await stock.below_reorder(ctx, limit)
    items = [
        QueueItem(
            label=f"{s.material.code} {s.material.name}",
            link=f"/t/{ctx.slug}/materials/{s.material.id}",
            note=(
                f"On hand {units.quantity(s.on_hand, s.material.default_unit)}, reorder level "
                f"{units.quantity(s.material.reorder_level or 0, s.material.default_unit)}"
            ),
        )
        for s in found
    ]
    return Found(items, total)


QUEUES += (
    QueueProvider(
        key="containers_to_label",
        title="Containers to label",
        permission=("materials", "manage"),
        empty="Every container has its label.",
        rank=21,
        action=True,
        fetch=_to_label,
    ),
    QueueProvider(
        key="materials_below_reorder_level",
        title="Materials below their reorder level",
        permission=("materials", "manage"),
        empty="No material is below its reorder level.",
        rank=22,
        action=True,
        fetch=_below_reorder,
    ),
    QueueProvider(
        key="lots_expiring_soon",
        title=f"Lots expiring within {stock.EXPIRING_DAYS} days",
        permission=("materials", "manage"),
        empty=f"No usable lot expires within {stock.EXPIRING_DAYS} days.",
        rank=23,
        fetch=_expiring,
    ),
)
