"""The job kinds of the project and what each does (registered with ``handler``).

Each is idempotent; how is said with each.
"""

from __future__ import annotations

from opencdmo.db.jobs import Job
from opencdmo.db.tx import global_transaction
from opencdmo.inventory.expiry import expire_lots
from opencdmo.jobs.registry import handler
from opencdmo.scope import SYSTEM, RequestMeta
from opencdmo.tenancy.service import internal_context
from opencdmo.tenancy.tables import Tenant

LOT_EXPIRY = "inventory.lot_expiry"


@handler(LOT_EXPIRY)
async def lot_expiry(job: Job) -> None:
    """Every tenant's lots (the periodic job names no tenant), or one tenant's. Idempotent:
    ``expire_lots`` takes only lots not expired yet."""
    if job.for_tenant is not None:
        tenant_ids = [job.for_tenant]
    else:
        async with global_transaction():
            tenant_ids = [r["id"] for r in await Tenant.select(Tenant.id).order_by(Tenant.id)]
    meta = RequestMeta(request_id=f"job:{job.id}")
    for tenant_id in tenant_ids:
        ctx = await internal_context(tenant_id, SYSTEM, meta)
        if ctx is not None:
            await expire_lots(ctx)
