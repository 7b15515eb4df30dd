"""Names of materials, lots, storage locations and containers for the audit trail
(``audit.sentences``)."""

from __future__ import annotations

from opencdmo.audit.naming import uuids
from opencdmo.audit.sentences import Named, Resolver
from opencdmo.inventory import location_queries, queries
from opencdmo.scope import TenantContext


async def _lots(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    found = await queries.lot_numbers(uuids(ids))
    return {i: Named(f"lot {n}", f"/t/{ctx.slug}/lots/{i}") for i, n in found.items()}


async def _materials(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    found = await queries.material_codes(uuids(ids))
    return {str(i): Named(f"material {c}") for i, c in found.items()}


async def _locations(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    found = await location_queries.places(list(uuids(ids)))
    return {
        str(i): Named(f"location {p.path}", f"/t/{ctx.slug}/locations/{i}")
        for i, p in found.items()
    }


async def _containers(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    found = await location_queries.stored(uuids(ids))
    return {
        str(r.id): Named(
            f"container {r.number} of lot {r.lot_number}", f"/t/{ctx.slug}/containers/{r.id}"
        )
        for r in found
    }


AUDIT_NAMES: dict[str, Resolver] = {
    "lot": _lots,
    "material": _materials,
    "location": _locations,
    "container": _containers,
}
