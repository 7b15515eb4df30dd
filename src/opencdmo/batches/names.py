"""Names of batches for the audit trail (``audit.sentences``): the batch number."""

from __future__ import annotations

from opencdmo.audit.naming import uuids
from opencdmo.audit.sentences import Named, Resolver
from opencdmo.batches import queries
from opencdmo.scope import TenantContext


async def _batches(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    found = await queries.numbers(uuids(ids))
    return {i: Named(f"batch {n}", f"/t/{ctx.slug}/batches/{i}") for i, n in found.items()}


AUDIT_NAMES: dict[str, Resolver] = {"batch": _batches}
