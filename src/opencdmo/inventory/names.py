"""Names of materials, lots, storage locations and containers for the audit trail
(``audit.sentences``)."""

from __future__ import annotations

from opencdmo.audit.coverage import Coverage
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

# Each record that only its audit event vouches for. Raw SQL: it runs on the verifier's own
# snapshot.
AUDIT_COVERAGE = (
    # Every consumption as stored, against the event that recorded it (its container, lot,
    # quantities and who).
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
    # A lot's certificate of analysis: the file it links to (or none) is the one the latest
    # CoA event of the lot recorded (its id, SHA-256 and size), so a link or a stored file
    # changed behind the application's back, even back to an earlier CoA, is a finding.
    Coverage(
        "lot certificate of analysis",
        """
SELECT l.id::text AS id,
       'lot ' || l.lot_number || ', file ' || coalesce(f.filename, 'none') AS what
FROM lots l
LEFT JOIN stored_files f ON f.tenant_id = l.tenant_id AND f.id = l.coa_file_id
LEFT JOIN LATERAL (
    SELECT a.new_values -> 'coa' AS coa
    FROM audit_events a
    WHERE a.tenant_id = l.tenant_id
      AND a.entity_type = 'lot' AND a.entity_id = l.id::text
      AND a.action IN ('lot.received', 'lot.coa_attached', 'lot.coa_replaced')
    ORDER BY a.entry DESC
    LIMIT 1
) last ON true
WHERE l.tenant_id = $1
  AND (l.coa_file_id::text IS DISTINCT FROM last.coa ->> 'file_id'
       OR f.sha256 IS DISTINCT FROM last.coa ->> 'sha256'
       OR f.size_bytes::text IS DISTINCT FROM last.coa ->> 'size_bytes')
""",
    ),
)
