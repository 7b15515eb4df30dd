"""Names of materials and lots for the audit trail (``audit.sentences``)."""

from __future__ import annotations

from opencdmo.audit.naming import uuids
from opencdmo.audit.sentences import Named, Resolver
from opencdmo.inventory import queries
from opencdmo.scope import TenantContext


async def _lots(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    found = await queries.lot_numbers(uuids(ids))
    return {i: Named(f"lot {n}", f"/t/{ctx.slug}/lots/{i}") for i, n in found.items()}


async def _materials(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    found = await queries.material_codes(uuids(ids))
    return {str(i): Named(f"material {c}") for i, c in found.items()}


AUDIT_NAMES: dict[str, Resolver] = {"lot": _lots, "material": _materials}
