"""Tenants, sites, memberships and role grants: the rules of the tenancy context."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from opencdmo.access.policy import roles as known_roles
from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.tx import global_transaction, tenant_transaction
from opencdmo.errors import Conflict, NotFound, ValidationFailed
from opencdmo.scope import Actor, RequestMeta, TenantContext
from opencdmo.tenancy.queries import members, tenants
from opencdmo.tenancy.queries.members import MemberRow
from opencdmo.tenancy.queries.tenants import SiteRow, TenantRef, TenantRow
from opencdmo.tenancy.rules import ADMIN_ROLE, keep_an_admin, lock_memberships, require_reason

KINDS = ("cdmo", "sponsor", "publisher")


async def tenant_by_slug(slug: str) -> TenantRow | None:
    async with global_transaction():
        return await tenants.tenant_by_slug(slug)


async def internal_context(
    tenant_id: UUID, actor: Actor, meta: RequestMeta
) -> TenantContext | None:
    """A scope for work with no tenant request behind it (CLI, provisioning, sign-in events)."""
    async with global_transaction():
        row = await tenants.tenant(tenant_id)
    if row is None:
        return None
    return _mint(row, actor, meta)


def _mint(row: TenantRow, actor: Actor, meta: RequestMeta) -> TenantContext:
    return TenantContext(
        tenant_id=row.id,
        slug=row.slug,
        name=row.name,
        kind=row.kind,
        actor=actor,
        membership_id=None,
        roles=(),
        policy_version=row.policy_version,
        meta=meta,
    )


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}, not '{kind}'.")


async def create_tenant(
    slug: str, name: str, kind: str, actor: Actor, meta: RequestMeta
) -> TenantContext:
    check_kind(kind)
    async with global_transaction():
        if await tenants.slug_taken(slug):
            raise Conflict(f"A tenant with slug '{slug}' already exists.")
        row = await tenants.insert_tenant(slug, name, kind)
    ctx = _mint(row, actor, meta)
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
    async with tenant_transaction(ctx):
        old = await tenants.this_tenant(ctx.tenant_id, lock=True)
        if (old.name, old.kind) == (name, kind):
            return False
        await tenants.set_name_and_kind(ctx.tenant_id, name, kind)
        await audit.record(
            ctx,
            "tenant.updated",
            "tenant",
            ctx.tenant_id,
            old={"name": old.name, "kind": old.kind},
            new={"name": name, "kind": kind},
        )
    return True


async def set_signature_flow(ctx: TenantContext, approvers: int, unique_signers: bool) -> bool:
    """The master recipe signature flow: how many QA approvals a revision needs (1 to 3), and
    whether one person may sign two of its stages; audited."""
    await authorize(ctx, "tenant", "provision")
    if not 1 <= approvers <= 3:
        raise ValidationFailed("recipe_approvers must be 1, 2 or 3.")
    async with tenant_transaction(ctx):
        row = await tenants.this_tenant(ctx.tenant_id, lock=True)
        old = {
            "recipe_approvers": row.recipe_approvers,
            "recipe_unique_signers": row.recipe_unique_signers,
        }
        new = {"recipe_approvers": approvers, "recipe_unique_signers": unique_signers}
        if old == new:
            return False
        await tenants.set_signature_flow(ctx.tenant_id, approvers, unique_signers)
        await audit.record(
            ctx, "tenant.signature_flow_changed", "tenant", ctx.tenant_id, old=old, new=new
        )
    return True


async def signature_flow(ctx: TenantContext) -> tuple[int, bool]:
    """(QA approvals a master recipe revision needs, whether signers must differ)."""
    async with tenant_transaction(ctx):
        row = await tenants.this_tenant(ctx.tenant_id)
    return row.recipe_approvers, row.recipe_unique_signers


def check_time_zone(zone: str) -> None:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(f"'{zone}' is not a known time zone (e.g. Europe/Berlin).") from None


async def list_sites(ctx: TenantContext) -> list[SiteRow]:
    async with tenant_transaction(ctx):
        return await tenants.sites()


async def upsert_site(ctx: TenantContext, code: str, name: str, time_zone: str) -> str | None:
    """Create or update a site; returns 'created', 'updated' or None when unchanged."""
    await authorize(ctx, "tenant", "provision")
    check_time_zone(time_zone)
    async with tenant_transaction(ctx):
        old = await tenants.site_by_code(code)
        if old is None:
            site_id = await tenants.insert_site(ctx.tenant_id, code, name, time_zone)
            await audit.record(
                ctx,
                "site.created",
                "site",
                site_id,
                new={"code": code, "name": name, "time_zone": time_zone},
            )
            return "created"
        if (old.name, old.time_zone) == (name, time_zone):
            return None
        await tenants.update_site(old.id, name, time_zone)
        await audit.record(
            ctx,
            "site.updated",
            "site",
            old.id,
            old={"name": old.name, "time_zone": old.time_zone},
            new={"name": name, "time_zone": time_zone},
        )
        return "updated"


# --- members and roles -----------------------------------------------------------------------


async def list_members(ctx: TenantContext) -> list[MemberRow]:
    async with tenant_transaction(ctx):
        return await members.members()


async def people_names(ctx: TenantContext, user_ids: Iterable[UUID]) -> dict[UUID, str]:
    """Printed names of this tenant's members, by user id (in the open transaction)."""
    async with tenant_transaction(ctx):
        _, by_user = await members.member_names([], list(set(user_ids)))
    return by_user


async def get_member(ctx: TenantContext, membership_id: UUID) -> MemberRow:
    async with tenant_transaction(ctx):
        row = await members.member(membership_id)
    if row is None:
        raise NotFound("No such member.")
    return row


def check_roles(roles: Iterable[str]) -> list[str]:
    wanted = sorted(set(roles))
    unknown = [role for role in wanted if role not in known_roles()]
    if unknown:
        raise ValidationFailed(
            f"Unknown role(s): {', '.join(unknown)}. Roles: {', '.join(known_roles())}.",
            details={"field": "roles"},
        )
    return wanted


async def add_member(ctx: TenantContext, user_id: UUID, roles: Iterable[str]) -> UUID:
    """Make a user a member with ``roles``: provisioning (manifests, the operator's CLI); a
    tenant admin invites instead (``tenancy.invitations``)."""
    await authorize(ctx, "members", "manage")
    return await enrol(ctx, user_id, roles)


async def enrol(ctx: TenantContext, user_id: UUID, roles: Iterable[str]) -> UUID:
    """``add_member`` for a command that carries its own authorisation: an accepted invitation
    (made by someone who could manage members) enrols the person who accepts it."""
    wanted = check_roles(roles)
    async with tenant_transaction(ctx):
        await lock_memberships(ctx)
        membership_id = await members.insert_membership(ctx.tenant_id, user_id)
        if membership_id is None:
            raise Conflict("This user is already a member of this tenant.")
        await members.list_in_member_of(user_id, ctx.tenant_id, listed=True)
        await audit.record(
            ctx,
            "member.added",
            "membership",
            membership_id,
            new={"user_id": user_id, "roles": wanted},
        )
        await _write_roles(ctx, membership_id, [], wanted, reason=None)
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
    async with tenant_transaction(ctx):
        await lock_memberships(ctx)
        if await members.membership(membership_id, lock=True) is None:
            raise NotFound("No such member.")
        current = sorted(await members.roles_of(membership_id))
        if only_add:
            wanted = sorted(set(current) | set(wanted))
        if current == wanted:
            return False
        reason = require_reason(reason)
        if ADMIN_ROLE in current and ADMIN_ROLE not in wanted:
            await keep_an_admin(ctx, membership_id)
        await _write_roles(ctx, membership_id, current, wanted, reason)
    return True


async def _write_roles(
    ctx: TenantContext,
    membership_id: UUID,
    current: list[str],
    wanted: list[str],
    reason: str | None,
) -> None:
    removed = sorted(set(current) - set(wanted))
    added = sorted(set(wanted) - set(current))
    if not (removed or added):
        return
    await members.remove_roles(membership_id, removed)
    await members.add_roles(ctx.tenant_id, membership_id, added)
    await tenants.bump_policy(ctx.tenant_id)
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
    async with tenant_transaction(ctx):
        await lock_memberships(ctx)
        member = await members.membership(membership_id, lock=True)
        if member is None:
            raise NotFound("No such member.")
        if member.is_active == active:
            return False
        if not active and member.user_id == ctx.user_id:
            raise Conflict("You cannot deactivate your own membership.")
        reason = require_reason(reason)
        if not active:
            await keep_an_admin(ctx, membership_id)
        await members.set_membership_active(membership_id, active)
        await members.list_in_member_of(member.user_id, ctx.tenant_id, listed=active)
        await tenants.bump_policy(ctx.tenant_id)
        action = "member.reactivated" if active else "member.deactivated"
        await audit.record(
            ctx,
            action,
            "membership",
            membership_id,
            old={"is_active": member.is_active},
            new={"is_active": active},
            reason=reason,
        )
    return True


async def membership_of(ctx: TenantContext, user_id: UUID) -> UUID | None:
    async with tenant_transaction(ctx):
        return await members.membership_of(user_id)


async def user_tenants(member_of: Iterable[UUID]) -> list[TenantRef]:
    """The tenants a user belongs to, for the tenant switcher (membership is checked on entry)."""
    ids = list(member_of)
    if not ids:
        return []
    async with global_transaction():
        return await tenants.tenant_refs(ids)


async def tenants_by_id(tenant_ids: Iterable[UUID]) -> dict[UUID, TenantRow]:
    """Tenants by id (a partner's name and slug): a global read, joining the open transaction."""
    found: dict[UUID, TenantRow] = {}
    async with global_transaction():
        for tenant_id in set(tenant_ids):
            row = await tenants.tenant(tenant_id)
            if row is not None:
                found[tenant_id] = row
    return found
