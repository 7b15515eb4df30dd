"""The sponsor's view of the batches its CDMO partners make for it.

What a sponsor sees of another tenant comes through one narrow door, the database function
``sponsor_batches()`` (migration 0033): for its active relationships only, the listed columns
of the batches made for it. A released batch's record, when the CDMO shares its records, is
read in the CDMO's tenant after that function has named it: read-only (a READ ONLY
transaction), by the system actor, for that one batch, and given as its BatchML export.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.batches import batchml, export, record
from opencdmo.batches import sponsor_queries as queries
from opencdmo.batches.sponsor_queries import SponsoredBatch
from opencdmo.db.tx import read_view
from opencdmo.errors import NotFound
from opencdmo.scope import SYSTEM, TenantContext
from opencdmo.tenancy import service as tenancy


@dataclass(frozen=True)
class MadeForUs:
    batch: SponsoredBatch
    cdmo_slug: str


async def made_for_us(ctx: TenantContext) -> list[MadeForUs]:
    """Every batch the tenant's active CDMO partners make for it (none for a CDMO)."""
    await authorize(ctx, "partners", "read")
    async with read_view(ctx):
        rows = await queries.sponsored_batches()
        cdmos = await tenancy.tenants_by_id(r.cdmo_tenant_id for r in rows)
    return [MadeForUs(r, cdmos[r.cdmo_tenant_id].slug) for r in rows]


@dataclass(frozen=True)
class SharedRecord:
    number: str
    xml: bytes


async def shared_batch(ctx: TenantContext, batch_id: UUID) -> SponsoredBatch:
    """A batch made for us whose released record its CDMO shares; any other batch (not ours,
    not released, not shared, relationship ended) is a 404."""
    found = next((m.batch for m in await made_for_us(ctx) if m.batch.batch_id == batch_id), None)
    if found is None or not found.record_available:
        raise NotFound("No such shared batch record.")
    return found


async def shared_record(
    ctx: TenantContext, batch_id: UUID, exported_at: datetime | None = None
) -> SharedRecord:
    """The released record of a batch made for us, as BatchML, when its CDMO shares it
    (``shared_batch``: any other is a 404)."""
    found = await shared_batch(ctx, batch_id)
    cdmo = await tenancy.internal_context(found.cdmo_tenant_id, SYSTEM, ctx.meta)
    if cdmo is None:
        raise NotFound("No such shared batch record.")
    async with read_view(cdmo):
        full = await record.read(cdmo, batch_id)
    xml = batchml.to_batchml(export.document(full, exported_at or datetime.now(UTC)))
    return SharedRecord(full.batch.number, xml)
