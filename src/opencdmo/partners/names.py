"""Names of the partners context's records for the audit trail's sentences."""

from __future__ import annotations

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
