"""Names of batches for the audit trail (``audit.sentences``): the batch number."""

from __future__ import annotations

from opencdmo.audit.coverage import Coverage
from opencdmo.audit.naming import uuids
from opencdmo.audit.sentences import Named, Resolver
from opencdmo.batches import queries
from opencdmo.scope import TenantContext


async def _batches(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    found = await queries.numbers(uuids(ids))
    return {i: Named(f"batch {n}", f"/t/{ctx.slug}/batches/{i}") for i, n in found.items()}


AUDIT_NAMES: dict[str, Resolver] = {"batch": _batches}

# The batch record's entries: each as stored is vouched for by the event that recorded it
# (its id, value, unit, field and who). Raw SQL: it runs on the verifier's own snapshot.
AUDIT_COVERAGE = (
    Coverage(
        "batch record entry",
        """
SELECT e.id::text AS id, e.step || '/' || e.phase || '/' || e.field AS what
FROM batch_entries e
WHERE e.tenant_id = $1 AND NOT EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.tenant_id = e.tenant_id
      AND a.entity_type = 'batch' AND a.entity_id = e.batch_id::text
      AND a.action IN ('batch.entry_recorded', 'batch.entry_corrected')
      AND a.new_values ->> 'entry_id' = e.id::text
      AND (a.new_values -> 'value')::jsonb = e.value
      AND (a.new_values ->> 'unit') IS NOT DISTINCT FROM e.unit
      AND a.new_values ->> 'step' = e.step
      AND a.new_values ->> 'phase' = e.phase
      AND a.new_values ->> 'field' = e.field
      AND a.new_values ->> 'source' = e.source
      AND a.actor_id = e.entered_by)
""",
    ),
)
