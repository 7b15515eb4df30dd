"""Dashboard, members and roles: pages and JSON API."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.response import Redirect, Template

from opencdmo.access.policy import roles as known_roles
from opencdmo.errors import AppError, NotAuthenticated, ValidationFailed
from opencdmo.identity import service as identity
from opencdmo.scope import TenantContext
from opencdmo.tenancy import service
from opencdmo.tenancy.schemas import (
    MemberAdd,
    MemberOut,
    MemberStatus,
    RolesUpdate,
    SiteOut,
    TenantOut,
)
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data, page
from opencdmo.web.principal import principal_of


@get("/", include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> Redirect:
    principal = principal_of(request.scope)
    if principal.session is None:
        return Redirect("/login", status_code=303)
    tenants = await service.user_tenants(principal.session.member_of)
    return Redirect(f"/t/{tenants[0]['slug']}/" if tenants else "/account", status_code=303)


@get(
    ["/t/{slug:str}", "/t/{slug:str}/"],
    opt=requires("tenant", "read"),
    include_in_schema=False,
)
async def dashboard(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    sites = await service.list_sites(ctx)
    members = await service.list_members(ctx)
    return await page(
        request,
        "tenancy/dashboard.html",
        sites=sites,
        member_count=sum(1 for m in members if m["is_active"]),
    )


async def _members_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    *,
    status: int = 200,
    error: str | None = None,
    notice: str | None = None,
) -> Template:
    members = await service.list_members(ctx)
    return await page(
        request,
        "tenancy/members.html",
        block="members",
        status_code=status,
        members=members,
        roles=known_roles(),
        error=error,
        notice=notice,
    )


@get(
    "/t/{slug:str}/members",
    opt=requires("members", "read"),
    include_in_schema=False,
)
async def members_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    return await _members_page(request, ctx)


async def _add_member(ctx: TenantContext, data: MemberAdd) -> UUID:
    service.check_roles(data.roles)  # validate everything before the first write
    user = await identity.find_user(data.email)
    if user is None:
        if not data.full_name or not data.initial_password:
            raise ValidationFailed(
                f"No user has the email {data.email}: give a full name and an initial password "
                "to create one.",
                details={"field": "full_name"},
            )
        user = await identity.create_user(
            data.email, data.full_name, data.initial_password, actor=ctx.actor, meta=ctx.meta
        )
    return await service.add_member(ctx, user.id, data.roles)


def _roles_from(data: dict[str, Any]) -> list[str]:
    value = data.get("roles", [])
    return [value] if isinstance(value, str) else list(value)


@post(
    "/t/{slug:str}/members",
    opt=requires("members", "manage"),
    include_in_schema=False,
    status_code=200,
)
async def members_add(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    data = await form_data(request)
    try:
        await _add_member(
            ctx,
            MemberAdd(
                email=str(data.get("email", "")),
                roles=_roles_from(data),
                full_name=str(data.get("full_name") or "") or None,
                initial_password=str(data.get("initial_password") or "") or None,
            ),
        )
    except AppError as exc:
        if exc.status_code not in (409, 422):
            raise
        return await _members_page(request, ctx, status=exc.status_code, error=exc.message)
    return await _members_page(request, ctx, notice=f"{data.get('email')} added.")


@post(
    "/t/{slug:str}/members/{member_id:uuid}/roles",
    opt=requires("roles", "manage"),
    include_in_schema=False,
    status_code=200,
)
async def members_roles(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], member_id: FromPath[UUID]
) -> Template:
    data = await form_data(request)
    member = await service.get_member(ctx, member_id)
    changed = await service.set_roles(
        ctx, member_id, _roles_from(data), str(data.get("reason") or "") or None
    )
    notice = f"Roles of {member['full_name']} updated." if changed else "No change."
    return await _members_page(request, ctx, notice=notice)


@post(
    "/t/{slug:str}/members/{member_id:uuid}/status",
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
    try:
        await service.set_member_active(
            ctx, member_id, active, str(data.get("reason") or "") or None
        )
    except AppError as exc:
        if exc.status_code != 409:
            raise
        return await _members_page(request, ctx, status=409, error=exc.message)
    verb = "reactivated" if active else "deactivated"
    return await _members_page(request, ctx, notice=f"{member['full_name']} {verb}.")


# --- JSON API -------------------------------------------------------------------------------


def _member_out(row: dict[str, Any]) -> MemberOut:
    return MemberOut(
        row["id"],
        row["user_id"],
        row["email"],
        row["full_name"],
        row["is_active"],
        list(row["roles"]),
        row["created_at"],
    )


@get(
    "/api/v1/t/{slug:str}",
    opt=requires("tenant", "read"),
    tags=["tenancy"],
)
async def api_tenant(ctx: NamedDependency[TenantContext]) -> TenantOut:
    """The tenant, its sites and my roles in it."""
    sites = [SiteOut(s["code"], s["name"], s["time_zone"]) for s in await service.list_sites(ctx)]
    return TenantOut(ctx.slug, ctx.name, ctx.kind, sites, list(ctx.roles))


@get(
    "/api/v1/t/{slug:str}/members",
    opt=requires("members", "read"),
    tags=["tenancy"],
)
async def api_members(ctx: NamedDependency[TenantContext]) -> list[MemberOut]:
    """Members of the tenant with their roles."""
    return [_member_out(row) for row in await service.list_members(ctx)]


@get(
    "/api/v1/t/{slug:str}/members/{member_id:uuid}",
    opt=requires("members", "read"),
    tags=["tenancy"],
)
async def api_member(ctx: NamedDependency[TenantContext], member_id: FromPath[UUID]) -> MemberOut:
    """One member."""
    return _member_out(await service.get_member(ctx, member_id))


@post(
    "/api/v1/t/{slug:str}/members",
    opt=requires("members", "manage"),
    tags=["tenancy"],
    status_code=201,
)
async def api_member_add(
    ctx: NamedDependency[TenantContext], data: JSONBody[MemberAdd]
) -> MemberOut:
    """Add an existing user, or create one (full name and initial password), with roles."""
    if ctx.user_id is None:
        raise NotAuthenticated("A user is required.")
    return _member_out(await service.get_member(ctx, await _add_member(ctx, data)))


@put(
    "/api/v1/t/{slug:str}/members/{member_id:uuid}/roles",
    opt=requires("roles", "manage"),
    tags=["tenancy"],
)
async def api_member_roles(
    ctx: NamedDependency[TenantContext], member_id: FromPath[UUID], data: JSONBody[RolesUpdate]
) -> MemberOut:
    """Set the member's roles to exactly this list (audited with the reason)."""
    await service.set_roles(ctx, member_id, data.roles, data.reason)
    return _member_out(await service.get_member(ctx, member_id))


@put(
    "/api/v1/t/{slug:str}/members/{member_id:uuid}/status",
    opt=requires("members", "manage"),
    tags=["tenancy"],
)
async def api_member_status(
    ctx: NamedDependency[TenantContext], member_id: FromPath[UUID], data: JSONBody[MemberStatus]
) -> MemberOut:
    """Deactivate or reactivate a membership."""
    await service.set_member_active(ctx, member_id, data.active, data.reason)
    return _member_out(await service.get_member(ctx, member_id))


route_handlers = [
    home,
    dashboard,
    members_page,
    members_add,
    members_roles,
    members_status,
    api_tenant,
    api_members,
    api_member,
    api_member_add,
    api_member_roles,
    api_member_status,
]
