"""Names of tenancy's records for the audit trail: members, people, sites, the organisation,
invitations (``audit.sentences``)."""

from __future__ import annotations

from opencdmo.audit.naming import uuids
from opencdmo.audit.sentences import Named, Resolver
from opencdmo.scope import TenantContext
from opencdmo.tenancy.queries.members import member_names, members
from opencdmo.tenancy.tables import Invitation, Site


async def _memberships(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    by_membership, _ = await member_names(uuids(ids), [])
    href = f"/t/{ctx.slug}/members"
    return {str(k): Named(v, href) for k, v in by_membership.items()}


async def _users(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    _, by_user = await member_names([], uuids(ids))
    href = f"/t/{ctx.slug}/members"
    return {str(k): Named(v, href) for k, v in by_user.items()}


async def _sites(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    wanted = uuids(ids)
    if not wanted:
        return {}
    rows = await Site.select(Site.id, Site.code, Site.name).where(Site.id.is_in(wanted))
    return {str(r["id"]): Named(f"{r['name']} ({r['code']})") for r in rows}


async def _tenants(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    return {str(ctx.tenant_id): Named(ctx.name, f"/t/{ctx.slug}/")}


async def _invitations(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    wanted = uuids(ids)
    if not wanted:
        return {}
    rows = await Invitation.select(Invitation.id, Invitation.email).where(
        Invitation.id.is_in(wanted)
    )
    return {str(r["id"]): Named(f"the invitation of {r['email']}") for r in rows}


async def _people(ctx: TenantContext) -> list[str]:
    return [m.full_name for m in await members()]


AUDIT_PEOPLE = _people
AUDIT_NAMES: dict[str, Resolver] = {
    "membership": _memberships,
    "user": _users,
    "site": _sites,
    "tenant": _tenants,
    "invitation": _invitations,
}
