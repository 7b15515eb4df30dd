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

# A lot's certificate of analysis: the file it links to (or none) is the one the latest CoA
# event of the lot recorded (its id, SHA-256 and size), so a link or a stored file changed
# behind the application's back, even back to an earlier CoA, is a finding. Raw SQL: it runs
# on the verifier's own snapshot.
AUDIT_COVERAGE = (
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
