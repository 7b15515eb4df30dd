"""Names of materials and lots for the audit trail (``audit.sentences``)."""

from __future__ import annotations

from opencdmo.audit.coverage import Coverage
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

# Every consumption as stored is vouched for by the event that recorded it (its container,
# lot, quantities and who). Raw SQL: it runs on the verifier's own snapshot.
AUDIT_COVERAGE = (
    Coverage(
        "material used in a batch",
        """
SELECT c.id::text AS id, c.step || ': lot ' || c.lot_id::text AS what
FROM batch_consumptions c
WHERE c.tenant_id = $1 AND NOT EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.tenant_id = c.tenant_id
      AND a.entity_type = 'batch' AND a.entity_id = c.batch_id::text
      AND a.action = 'batch.material_consumed'
      AND a.new_values ->> 'consumption_id' = c.id::text
      AND a.new_values ->> 'lot_id' = c.lot_id::text
      AND a.new_values ->> 'step' = c.step
      AND (a.new_values ->> 'quantity')::numeric = c.quantity
      AND a.new_values ->> 'unit' = c.unit
      AND (a.new_values ->> 'container_quantity')::numeric = c.container_quantity
      AND a.actor_id = c.consumed_by)
""",
    ),
)
