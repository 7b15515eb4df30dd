"""Members and roles: pages and JSON API (the dashboard is the work context's)."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any
from uuid import UUID

from litestar import Request, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.response import Redirect, Template

from opencdmo.access.policy import roles as known_roles
from opencdmo.access.service import can
from opencdmo.errors import AppError, ValidationFailed
from opencdmo.scope import TenantContext
from opencdmo.tenancy import invitations, service
from opencdmo.tenancy.queries.members import MemberRow
from opencdmo.tenancy.schemas import (
    MemberOut,
    MemberStatus,
    RolesUpdate,
    SiteOut,
    TenantOut,
)
from opencdmo.web.guards import requires, signed_in
from opencdmo.web.pages import form_data, form_struct, page
from opencdmo.web.principal import principal_of


@get("/", include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> Redirect:
    """Signed in: the one tenant, or the list to choose from; a tenant is never chosen for a
    person who belongs to several."""
    principal = principal_of(request.scope)
    if principal.session is None:
        return Redirect("/login", status_code=303)
    tenants = await service.user_tenants(principal.session.member_of)
    if len(tenants) == 1:
        return Redirect(f"/t/{tenants[0].slug}/", status_code=303)
    return Redirect("/tenants" if tenants else "/account", status_code=303)


@get("/tenants", guards=[signed_in], include_in_schema=False)
async def tenants_page(request: Request[Any, Any, Any]) -> Template:
    """The tenants I belong to: choosing one signs me into it (recorded there only)."""
    return await page(request, "tenancy/tenants.html")


@dataclass(frozen=True)
class Problem:
    """A refused form, shown again as typed, with the message next to its field."""

    message: str
    field: str | None = None
    values: dict[str, Any] = dataclass_field(default_factory=dict)
    member_id: UUID | None = None  # the member row whose form it was


def problem_of(exc: AppError, values: dict[str, Any], member_id: UUID | None = None) -> Problem:
    details = exc.details if isinstance(exc.details, dict) else {}
    field = details.get("field")
    return Problem(exc.message, field if isinstance(field, str) else None, values, member_id)


async def members_page_for(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    *,
    status: int = 200,
    problem: Problem | None = None,
    invite: Problem | None = None,
    notice: str | None = None,
    link: str | None = None,
    link_mailed: bool = False,
) -> Template:
    """The Members page (or its fragment): members, pending invitations (with whether each
    was e-mailed), the invite form."""
    members = await service.list_members(ctx)
    manage = await can(ctx, "members", "manage")
    return await page(
        request,
        "tenancy/members.html",
        block="members",
        status_code=status,
        members=members,
        invitations=await invitations.pending(ctx) if manage else [],
        manage=manage,
        roles=known_roles(),
        problem=problem,
        invite=invite,
        notice=notice,
        link=link,
        link_mailed=link_mailed,
    )


@get(
    "/members",
    opt=requires("members", "read"),
    include_in_schema=False,
)
async def members_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    return await members_page_for(request, ctx)


def roles_from(data: dict[str, Any]) -> list[str]:
    value = data.get("roles", [])
    return [value] if isinstance(value, str) else list(value)


@post(
    "/members/{member_id:uuid}/roles",
    opt=requires("roles", "manage"),
    include_in_schema=False,
    status_code=200,
)
async def members_roles(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], member_id: FromPath[UUID]
) -> Template:
    data = await form_data(request)
    member = await service.get_member(ctx, member_id)
    roles, reason = roles_from(data), str(data.get("reason") or "")
    try:
        update, _ = await form_struct(request, RolesUpdate)  # the API's struct and limits
        changed = await service.set_roles(ctx, member_id, update.roles, update.reason)
    except AppError as exc:
        if exc.status_code not in (409, 422):
            raise
        typed = {"roles": roles, "reason": reason}
        return await members_page_for(
            request, ctx, status=exc.status_code, problem=problem_of(exc, typed, member_id)
        )
    notice = f"Roles of {member.full_name} updated." if changed else "No change."
    return await members_page_for(request, ctx, notice=notice)


@post(
    "/members/{member_id:uuid}/status",
    opt=requires("members", "manage"),
    include_in_schema=False,
    status_code=200,
)
async def members_status(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], member_id: FromPath[UUID]
) -> Template:
    data = await form_data(request)
    flag = str(data.get("active", "")).lower()
    if flag not in {"true", "false"}:
        raise ValidationFailed("'active' must be true or false.", details={"field": "active"})
    active = flag == "true"
    member = await service.get_member(ctx, member_id)
    reason = str(data.get("reason") or "")
    try:
        await service.set_member_active(ctx, member_id, active, reason)
    except AppError as exc:
        if exc.status_code not in (409, 422):
            raise
        typed = {"status_reason": reason}
        return await members_page_for(
            request, ctx, status=exc.status_code, problem=problem_of(exc, typed, member_id)
        )
    verb = "reactivated" if active else "deactivated"
    return await members_page_for(request, ctx, notice=f"{member.full_name} {verb}.")


# --- JSON API -------------------------------------------------------------------------------


def _member_out(row: MemberRow) -> MemberOut:
    return MemberOut(
        row.id,
        row.user_id,
        row.email,
        row.full_name,
        row.is_active,
        list(row.roles),
        row.created_at,
    )


@get(
    "/",
    opt=requires("tenant", "read"),
    tags=["tenancy"],
)
async def api_tenant(ctx: NamedDependency[TenantContext]) -> TenantOut:
    """The tenant, its sites and my roles in it."""
    sites = [SiteOut(s.code, s.name, s.time_zone) for s in await service.list_sites(ctx)]
    return TenantOut(ctx.slug, ctx.name, ctx.kind, sites, list(ctx.roles))


@get(
    "/members",
    opt=requires("members", "read"),
    tags=["tenancy"],
)
async def api_members(ctx: NamedDependency[TenantContext]) -> list[MemberOut]:
    """Members of the tenant with their roles."""
    return [_member_out(row) for row in await service.list_members(ctx)]


@get(
    "/members/{member_id:uuid}",
    opt=requires("members", "read"),
    tags=["tenancy"],
)
async def api_member(ctx: NamedDependency[TenantContext], member_id: FromPath[UUID]) -> MemberOut:
    """One member."""
    return _member_out(await service.get_member(ctx, member_id))


@put(
    "/members/{member_id:uuid}/roles",
    opt=requires("roles", "manage"),
    tags=["tenancy"],
)
async def api_member_roles(
    ctx: NamedDependency[TenantContext], member_id: FromPath[UUID], data: JSONBody[RolesUpdate]
) -> MemberOut:
    """Set the member's roles to exactly this list; a change needs a reason (audited), and the
    tenant's last active admin keeps the admin role (409)."""
    await service.set_roles(ctx, member_id, data.roles, data.reason)
    return _member_out(await service.get_member(ctx, member_id))


@put(
    "/members/{member_id:uuid}/status",
    opt=requires("members", "manage"),
    tags=["tenancy"],
)
async def api_member_status(
    ctx: NamedDependency[TenantContext], member_id: FromPath[UUID], data: JSONBody[MemberStatus]
) -> MemberOut:
    """Deactivate or reactivate a membership, with a reason; never the last active admin (409)."""
    await service.set_member_active(ctx, member_id, data.active, data.reason)
    return _member_out(await service.get_member(ctx, member_id))


# Pages of a tenant, under /t/{slug} (the app mounts them in the context's router).
pages = [
    members_page,
    members_roles,
    members_status,
]

# The JSON API of a tenant, under /api/v1/t/{slug} (the app mounts it likewise).
api = [
    api_tenant,
    api_members,
    api_member,
    api_member_roles,
    api_member_status,
]

# Routes outside a tenant.
route_handlers = [
    home,
    tenants_page,
]
