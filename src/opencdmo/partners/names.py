"""Names of the partners context's records for the audit trail's sentences."""

from __future__ import annotations

from opencdmo.audit.coverage import Coverage
from opencdmo.audit.naming import uuids
from opencdmo.audit.sentences import Named, Resolver
from opencdmo.partners.tables import PartnerLink
from opencdmo.scope import TenantContext
from opencdmo.tenancy import service as tenancy


async def _links(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    wanted = uuids(ids)
    if not wanted:
        return {}
    rows = await PartnerLink.select(PartnerLink.id, PartnerLink.partner_tenant_id).where(
        PartnerLink.id.is_in(wanted)
    )
    names = await tenancy.tenants_by_id(r["partner_tenant_id"] for r in rows)
    href = f"/t/{ctx.slug}/settings/partners"
    return {
        str(r["id"]): Named(
            f"the relationship with {names[r['partner_tenant_id']].name}"
            if r["partner_tenant_id"] in names
            else "a partner relationship",
            href,
        )
        for r in rows
    }


AUDIT_NAMES: dict[str, Resolver] = {"partner_link": _links}


# Raw SQL: runs on the verifier's own snapshot connection. Each relationship (this tenant's
# side of it): the event that proposed it, its status as the last decision left it
# (accepted, declined, revoked; proposed when none), and whether it shares batch records as
# the last change of sharing left it (shared from the proposal on).
AUDIT_COVERAGE = (
    Coverage(
        "partner relationship",
        """
WITH events AS (
    SELECT a.entity_id, a.action, a.seq, a.new_values
    FROM audit_events a
    WHERE a.tenant_id = $1 AND a.entity_type = 'partner_link'
)
SELECT p.id::text AS id, 'the relationship ' || p.id::text AS what
FROM partner_links p
WHERE p.tenant_id = $1 AND (
    NOT EXISTS (
        SELECT 1 FROM events e WHERE e.entity_id = p.id::text AND e.action = 'partner.proposed')
    OR p.status IS DISTINCT FROM coalesce((
        SELECT e.new_values ->> 'status' FROM events e
        WHERE e.entity_id = p.id::text
          AND e.action IN ('partner.accepted', 'partner.declined', 'partner.revoked')
        ORDER BY e.seq DESC LIMIT 1), 'proposed')
    OR p.share_batch_records IS DISTINCT FROM coalesce((
        SELECT (e.new_values ->> 'share_batch_records')::boolean FROM events e
        WHERE e.entity_id = p.id::text AND e.action = 'partner.sharing_changed'
        ORDER BY e.seq DESC LIMIT 1), true))
""",
    ),
)
