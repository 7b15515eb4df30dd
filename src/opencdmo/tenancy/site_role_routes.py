"""A member's roles at one site, through the JSON API."""

from __future__ import annotations

from uuid import UUID

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from opencdmo.scope import TenantContext
from opencdmo.tenancy import site_roles
from opencdmo.tenancy.schemas import SiteRoleChange, SiteRoleOut, SiteRoleResult
from opencdmo.web.guards import requires

ONE = "/members/{member_id:uuid}/site-roles"


async def _listed(ctx: TenantContext, member_id: UUID) -> list[SiteRoleOut]:
    return [SiteRoleOut(r.site_code, r.role) for r in await site_roles.site_roles(ctx, member_id)]


@get(ONE, opt=requires("members", "read"), tags=["members"])
async def api_site_roles(
    ctx: NamedDependency[TenantContext], member_id: FromPath[UUID]
) -> list[SiteRoleOut]:
    """The member's roles granted at one site only (tenant-wide roles apply at every site)."""
    return await _listed(ctx, member_id)


@post(ONE, opt=requires("roles", "manage"), tags=["members"], status_code=200)
async def api_grant_site_role(
    ctx: NamedDependency[TenantContext],
    member_id: FromPath[UUID],
    data: JSONBody[SiteRoleChange],
) -> SiteRoleResult:
    """Grant a role at one site, with the reason (audited)."""
    changed = await site_roles.grant(ctx, member_id, data.site, data.role, data.reason)
    return SiteRoleResult(changed, await _listed(ctx, member_id))


@post(ONE + "/revoke", opt=requires("roles", "manage"), tags=["members"], status_code=200)
async def api_revoke_site_role(
    ctx: NamedDependency[TenantContext],
    member_id: FromPath[UUID],
    data: JSONBody[SiteRoleChange],
) -> SiteRoleResult:
    """Take a role at one site away, with the reason (audited)."""
    changed = await site_roles.revoke(ctx, member_id, data.site, data.role, data.reason)
    return SiteRoleResult(changed, await _listed(ctx, member_id))


# The JSON API of a tenant, under /api/v1/t/{slug} (the app mounts it in the context's router).
api = [api_site_roles, api_grant_site_role, api_revoke_site_role]
