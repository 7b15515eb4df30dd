"""Tenants, sites, memberships and role grants: the rules of the tenancy context."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from opencdmo.access.policy import roles as known_roles
from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.tx import global_transaction, tenant_transaction
from opencdmo.errors import Conflict, NotFound, ValidationFailed
from opencdmo.scope import Actor, RequestMeta, TenantContext
from opencdmo.tenancy.rules import ADMIN_ROLE, keep_an_admin, lock_memberships, require_reason
from opencdmo.tenancy.tables import Site, Tenant

KINDS = ("cdmo", "sponsor", "publisher")


async def tenant_by_slug(slug: str) -> dict[str, Any] | None:
    async with global_transaction():
        row = await Tenant.select().where(Tenant.slug == slug).first()
    return dict(row) if row else None


async def internal_context(
    tenant_id: UUID, actor: Actor, meta: RequestMeta
) -> TenantContext | None:
    """A scope for work with no tenant request behind it (CLI, provisioning, sign-in events)."""
    async with global_transaction():
        row = await Tenant.select().where(Tenant.id == tenant_id).first()
    if row is None:
        return None
    return _mint(row, actor, meta)


def _mint(
    row: dict[str, Any],
    actor: Actor,
    meta: RequestMeta,
    *,
    membership_id: UUID | None = None,
    roles: Iterable[str] = (),
    time_zone: str = "UTC",
) -> TenantContext:
    return TenantContext(
        tenant_id=row["id"],
        slug=row["slug"],
        name=row["name"],
        kind=row["kind"],
        actor=actor,
        membership_id=membership_id,
        roles=tuple(roles),
        policy_version=row["policy_version"],
        time_zone=time_zone,
        meta=meta,
    )


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}, not '{kind}'.")


async def create_tenant(
    slug: str, name: str, kind: str, actor: Actor, meta: RequestMeta
) -> TenantContext:
    check_kind(kind)
    async with global_transaction() as connection:
        if await Tenant.exists().where(Tenant.slug == slug):
            raise Conflict(f"A tenant with slug '{slug}' already exists.")
        row = await connection.fetchrow(
            "INSERT INTO tenants (slug, name, kind) VALUES ($1, $2, $3) RETURNING *",
            slug,
            name,
            kind,
        )
    ctx = _mint(dict(row), actor, meta)
    async with tenant_transaction(ctx):
        await audit.start_chain(ctx)
        await audit.record(
            ctx,
            "tenant.created",
            "tenant",
            ctx.tenant_id,
            new={"slug": slug, "name": name, "kind": kind},
        )
    return ctx


async def update_tenant(ctx: TenantContext, name: str, kind: str) -> bool:
    await authorize(ctx, "tenant", "provision")
    check_kind(kind)
    async with tenant_transaction(ctx) as connection:
        old = await connection.fetchrow(
            "SELECT name, kind FROM tenants WHERE id = $1 FOR UPDATE", ctx.tenant_id
        )
        if (old["name"], old["kind"]) == (name, kind):
            return False
        await connection.execute(
            "UPDATE tenants SET name = $2, kind = $3 WHERE id = $1", ctx.tenant_id, name, kind
        )
        await audit.record(
            ctx,
            "tenant.updated",
            "tenant",
            ctx.tenant_id,
            old=dict(old),
            new={"name": name, "kind": kind},
        )
    return True


async def set_signature_flow(ctx: TenantContext, approvers: int, unique_signers: bool) -> bool:
    """The master recipe signature flow: how many QA approvals a revision needs (1 to 3), and
    whether one person may sign two of its stages; audited."""
    await authorize(ctx, "tenant", "provision")
    if not 1 <= approvers <= 3:
        raise ValidationFailed("recipe_approvers must be 1, 2 or 3.")
    async with tenant_transaction(ctx) as connection:
        old = await connection.fetchrow(
            "SELECT recipe_approvers, recipe_unique_signers FROM tenants WHERE id = $1 FOR UPDATE",
            ctx.tenant_id,
        )
        new = {"recipe_approvers": approvers, "recipe_unique_signers": unique_signers}
        if dict(old) == new:
            return False
        await connection.execute(
            "UPDATE tenants SET recipe_approvers = $2, recipe_unique_signers = $3 WHERE id = $1",
            ctx.tenant_id,
            approvers,
            unique_signers,
        )
        await audit.record(
            ctx, "tenant.signature_flow_changed", "tenant", ctx.tenant_id, old=dict(old), new=new
        )
    return True


async def signature_flow(ctx: TenantContext) -> tuple[int, bool]:
    """(QA approvals a master recipe revision needs, whether signers must differ)."""
    async with tenant_transaction(ctx) as connection:
        row = await connection.fetchrow(
            "SELECT recipe_approvers, recipe_unique_signers FROM tenants WHERE id = $1",
            ctx.tenant_id,
        )
    return int(row["recipe_approvers"]), bool(row["recipe_unique_signers"])


def check_time_zone(zone: str) -> None:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(f"'{zone}' is not a known time zone (e.g. Europe/Berlin).") from None


async def list_sites(ctx: TenantContext) -> list[dict[str, Any]]:
    async with tenant_transaction(ctx):
        return list(await Site.select().order_by(Site.code))


async def upsert_site(ctx: TenantContext, code: str, name: str, time_zone: str) -> str | None:
    """Create or update a site; returns 'created', 'updated' or None when unchanged."""
    await authorize(ctx, "tenant", "provision")
    check_time_zone(time_zone)
    async with tenant_transaction(ctx) as connection:
        old = await Site.select().where(Site.code == code).first()
        if old is None:
            row = await connection.fetchrow(
                "INSERT INTO sites (tenant_id, code, name, time_zone) VALUES ($1, $2, $3, $4) "
                "RETURNING id",
                ctx.tenant_id,
                code,
                name,
                time_zone,
            )
            await audit.record(
                ctx,
                "site.created",
                "site",
                row["id"],
                new={"code": code, "name": name, "time_zone": time_zone},
            )
            return "created"
        if (old["name"], old["time_zone"]) == (name, time_zone):
            return None
        await connection.execute(
            "UPDATE sites SET name = $2, time_zone = $3 WHERE id = $1", old["id"], name, time_zone
        )
        await audit.record(
            ctx,
            "site.updated",
            "site",
            old["id"],
            old={"name": old["name"], "time_zone": old["time_zone"]},
            new={"name": name, "time_zone": time_zone},
        )
        return "updated"


# --- members and roles -----------------------------------------------------------------------

MEMBERS_QUERY = """
SELECT m.id, m.user_id, m.is_active, m.created_at, u.email, u.full_name, u.is_active AS user_active,
       coalesce(array_agg(r.role ORDER BY r.role) FILTER (WHERE r.role IS NOT NULL), '{}') AS roles
FROM memberships m JOIN users u ON u.id = m.user_id
LEFT JOIN role_assignments r ON r.tenant_id = m.tenant_id AND r.membership_id = m.id
WHERE ($1::uuid IS NULL OR m.id = $1)
GROUP BY m.tenant_id, m.id, u.id ORDER BY u.full_name, u.email
"""


async def list_members(ctx: TenantContext) -> list[dict[str, Any]]:
    async with tenant_transaction(ctx) as connection:
        return [dict(row) for row in await connection.fetch(MEMBERS_QUERY, None)]


async def get_member(ctx: TenantContext, membership_id: UUID) -> dict[str, Any]:
    async with tenant_transaction(ctx) as connection:
        row = await connection.fetchrow(MEMBERS_QUERY, membership_id)
    if row is None:
        raise NotFound("No such member.")
    return dict(row)


def check_roles(roles: Iterable[str]) -> list[str]:
    wanted = sorted(set(roles))
    unknown = [role for role in wanted if role not in known_roles()]
    if unknown:
        raise ValidationFailed(
            f"Unknown role(s): {', '.join(unknown)}. Roles: {', '.join(known_roles())}.",
            details={"field": "roles"},
        )
    return wanted


async def _bump_policy(connection: Any, ctx: TenantContext) -> None:
    await connection.execute(
        "UPDATE tenants SET policy_version = policy_version + 1 WHERE id = $1", ctx.tenant_id
    )


async def add_member(ctx: TenantContext, user_id: UUID, roles: Iterable[str]) -> UUID:
    """Make a user a member with ``roles``: provisioning (manifests, the operator's CLI); a
    tenant admin invites instead (``tenancy.invitations``)."""
    await authorize(ctx, "members", "manage")
    return await enrol(ctx, user_id, roles)


async def enrol(ctx: TenantContext, user_id: UUID, roles: Iterable[str]) -> UUID:
    """``add_member`` for a command that carries its own authorisation: an accepted invitation
    (made by someone who could manage members) enrols the person who accepts it."""
    wanted = check_roles(roles)
    async with tenant_transaction(ctx) as connection:
        await lock_memberships(connection, ctx)
        membership_id = await connection.fetchval(
            "INSERT INTO memberships (tenant_id, user_id) VALUES ($1, $2) "
            "ON CONFLICT (tenant_id, user_id) DO NOTHING RETURNING id",
            ctx.tenant_id,
            user_id,
        )
        if membership_id is None:
            raise Conflict("This user is already a member of this tenant.")
        await connection.execute(
            "UPDATE users SET member_of = array_append(array_remove(member_of, $2), $2) "
            "WHERE id = $1",
            user_id,
            ctx.tenant_id,
        )
        await audit.record(
            ctx,
            "member.added",
            "membership",
            membership_id,
            new={"user_id": user_id, "roles": wanted},
        )
        await _write_roles(connection, ctx, membership_id, [], wanted, reason=None)
    assert isinstance(membership_id, UUID)
    return membership_id


async def set_roles(
    ctx: TenantContext,
    membership_id: UUID,
    roles: Iterable[str],
    reason: str | None = None,
    *,
    only_add: bool = False,
) -> bool:
    """Make the member's roles exactly ``roles`` (or add them, with ``only_add``); a change
    needs a reason, and the tenant's last active admin keeps the admin role."""
    await authorize(ctx, "roles", "manage")
    wanted = check_roles(roles)
    async with tenant_transaction(ctx) as connection:
        await lock_memberships(connection, ctx)
        member = await connection.fetchrow(
            "SELECT id FROM memberships WHERE id = $1 FOR UPDATE", membership_id
        )
        if member is None:
            raise NotFound("No such member.")
        current = sorted(await _roles_of(connection, membership_id))
        if only_add:
            wanted = sorted(set(current) | set(wanted))
        if current == wanted:
            return False
        reason = require_reason(reason)
        if ADMIN_ROLE in current and ADMIN_ROLE not in wanted:
            await keep_an_admin(connection, ctx, membership_id)
        await _write_roles(connection, ctx, membership_id, current, wanted, reason)
    return True


async def _roles_of(connection: Any, membership_id: UUID) -> list[str]:
    rows = await connection.fetch(
        "SELECT role FROM role_assignments WHERE membership_id = $1", membership_id
    )
    return [row["role"] for row in rows]


async def _write_roles(
    connection: Any,
    ctx: TenantContext,
    membership_id: UUID,
    current: list[str],
    wanted: list[str],
    reason: str | None,
) -> None:
    removed = sorted(set(current) - set(wanted))
    added = sorted(set(wanted) - set(current))
    if removed:
        await connection.execute(
            "DELETE FROM role_assignments WHERE membership_id = $1 AND role = ANY($2::text[])",
            membership_id,
            removed,
        )
    for role in added:
        await connection.execute(
            "INSERT INTO role_assignments (tenant_id, membership_id, role) VALUES ($1, $2, $3)",
            ctx.tenant_id,
            membership_id,
            role,
        )
    if removed or added:
        await _bump_policy(connection, ctx)
        await audit.record(
            ctx,
            "member.roles_changed",
            "membership",
            membership_id,
            old={"roles": current},
            new={"roles": wanted},
            reason=reason,
        )


async def set_member_active(
    ctx: TenantContext, membership_id: UUID, active: bool, reason: str | None = None
) -> bool:
    """Deactivate or reactivate a membership, with a reason; never the tenant's last admin."""
    await authorize(ctx, "members", "manage")
    async with tenant_transaction(ctx) as connection:
        await lock_memberships(connection, ctx)
        member = await connection.fetchrow(
            "SELECT id, user_id, is_active FROM memberships WHERE id = $1 FOR UPDATE", membership_id
        )
        if member is None:
            raise NotFound("No such member.")
        if member["is_active"] == active:
            return False
        if not active and member["user_id"] == ctx.user_id:
            raise Conflict("You cannot deactivate your own membership.")
        reason = require_reason(reason)
        if not active:
            await keep_an_admin(connection, ctx, membership_id)
        await connection.execute(
            "UPDATE memberships SET is_active = $2 WHERE id = $1", membership_id, active
        )
        change = (
            "array_append(array_remove(member_of, $2), $2)"
            if active
            else "array_remove(member_of, $2)"
        )
        await connection.execute(
            f"UPDATE users SET member_of = {change} WHERE id = $1", member["user_id"], ctx.tenant_id
        )
        await _bump_policy(connection, ctx)
        action = "member.reactivated" if active else "member.deactivated"
        await audit.record(
            ctx,
            action,
            "membership",
            membership_id,
            old={"is_active": member["is_active"]},
            new={"is_active": active},
            reason=reason,
        )
    return True


async def membership_of(ctx: TenantContext, user_id: UUID) -> UUID | None:
    async with tenant_transaction(ctx) as connection:
        value = await connection.fetchval("SELECT id FROM memberships WHERE user_id = $1", user_id)
    return value if isinstance(value, UUID) else None


async def user_tenants(member_of: Iterable[UUID]) -> list[dict[str, Any]]:
    """The tenants a user belongs to, for the tenant switcher (membership is checked on entry)."""
    ids = list(member_of)
    if not ids:
        return []
    async with global_transaction():
        rows = (
            await Tenant.select(Tenant.slug, Tenant.name, Tenant.kind)
            .where(Tenant.id.is_in(ids))
            .order_by(Tenant.name)
        )
    return list(rows)
