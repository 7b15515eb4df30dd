"""Lot expiry as stored data: a periodic job (``inventory.lot_expiry``) sets the stored
status of every lot whose expiry date has passed to ``expired``, audited as the system actor.

Pages already showed such a lot as expired (``status_on``); the job makes the stored status
say so too, so that queries, exports and other installations read it without recomputing.

Idempotent: a lot is expired once (only lots still in quarantine, released or on hold with a
passed date are taken, each locked); a second run of the job, or two at once, finds nothing
left to do. One unit of work per tenant, each tenant in its own scope (the job's handler is
``opencdmo.jobs.tasks.lot_expiry``).
"""

from __future__ import annotations

from datetime import date
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.clock import database_now
from opencdmo.db.tx import unit_of_work
from opencdmo.inventory import queries
from opencdmo.inventory.service import today
from opencdmo.inventory.tables import Lot
from opencdmo.scope import TenantContext


async def expire_lots(ctx: TenantContext, on: date | None = None) -> list[UUID]:
    """Store ``expired`` on the tenant's lots whose expiry date is before ``on`` (default:
    today in the tenant's zone); the ids of the lots expired now."""
    on = on or today(ctx)
    async with unit_of_work(ctx):
        await authorize(ctx, "materials", "expire")
        due = await (
            Lot.select(Lot.id)
            .where(Lot.status.is_in(list(queries.EXPIRABLE)))
            .where(Lot.expiry_date.is_not_null() & (Lot.expiry_date < on))
            .order_by(Lot.id)
            .lock_rows("UPDATE", skip_locked=False)
        )
        expired = []
        for found in due:
            row = await queries.lot(found["id"], lock=True)
            if row.status not in queries.EXPIRABLE:
                continue
            await Lot.update({Lot.status: "expired", Lot.updated_at: database_now()}).where(
                Lot.id == row.id
            )
            material = await queries.material(row.material_id)
            await audit.record(
                ctx,
                "lot.expired",
                "lot",
                row.id,
                old={"status": row.status},
                new={"lot_number": row.lot_number, "material": material.code, "status": "expired"},
                reason=f"Its expiry date {row.expiry_date} has passed.",
            )
            expired.append(row.id)
    return expired
