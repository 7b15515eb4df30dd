"""Names of equipment units for the audit trail (``audit.sentences``): the unit's code."""

from __future__ import annotations

from opencdmo.audit.coverage import Coverage
from opencdmo.audit.naming import uuids
from opencdmo.audit.sentences import Named, Resolver
from opencdmo.equipment import queries, seals
from opencdmo.scope import TenantContext


async def _units(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    found = await queries.codes(list(uuids(ids)))
    return {i: Named(f"equipment {c}", f"/t/{ctx.slug}/equipment/{c}") for i, c in found.items()}


async def _seals(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    found = await queries.seal_names(list(uuids(ids)))
    return {
        i: Named(
            f"the samples of {code} from {start:%Y-%m-%d %H:%M} UTC",
            f"/t/{ctx.slug}/equipment/{code}",
        )
        for i, (code, start) in found.items()
    }


AUDIT_NAMES: dict[str, Resolver] = {"equipment": _units, "sample_seal": _seals}

# Raw SQL: it runs on the verifier's own snapshot.
AUDIT_COVERAGE = (
    *seals.AUDIT_COVERAGE,
    # Each unit as registered: an event recorded its registration.
    Coverage(
        "equipment unit",
        """
SELECT u.id::text AS id, u.code AS what
FROM equipment u
WHERE u.tenant_id = $1 AND NOT EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.tenant_id = u.tenant_id
      AND a.entity_type = 'equipment' AND a.entity_id = u.id::text
      AND a.action = 'equipment.registered'
      AND a.new_values ->> 'code' = u.code)
""",
    ),
    # Each logbook entry (work signed by its performer, a status change, a use by a batch
    # step): the event that recorded it, with its note and its performer.
    Coverage(
        "equipment logbook entry",
        """
SELECT e.id::text AS id, e.kind || ': ' || left(e.note, 60) AS what
FROM equipment_logbook e
WHERE e.tenant_id = $1 AND NOT EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.tenant_id = e.tenant_id
      AND a.entity_type = 'equipment' AND a.entity_id = e.equipment_id::text
      AND a.new_values ->> 'entry_id' = e.id::text
      AND a.new_values ->> 'note' = e.note
      AND (e.kind = 'use' OR a.actor_id IS NOT DISTINCT FROM e.performed_by)
      AND (e.signature_id IS NULL OR a.new_values ->> 'signature_id' = e.signature_id::text))
""",
    ),
    # Each binding of a unit to a batch step: the event that recorded it.
    Coverage(
        "equipment used in a batch",
        """
SELECT b.id::text AS id, b.step || ': equipment ' || b.equipment_id::text AS what
FROM batch_equipment b
WHERE b.tenant_id = $1 AND NOT EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.tenant_id = b.tenant_id
      AND a.entity_type = 'batch' AND a.entity_id = b.batch_id::text
      AND a.action = 'batch.equipment_bound'
      AND a.new_values ->> 'binding_id' = b.id::text
      AND a.new_values ->> 'equipment_id' = b.equipment_id::text
      AND a.new_values ->> 'step' = b.step
      AND a.actor_id = b.bound_by)
""",
    ),
)
