"""Roles granted at one site: a member's permissions scoped below the tenant.

A tenant-wide role applies at every site of the tenant; a site role only at its site
(``opencdmo.access.service.can(ctx, obj, act, site_id=...)``). Every grant and revocation is
a command: authorised (``roles:manage``), with a reason, in one unit of work with its audit
event, and it moves the tenant's policy version so every process rebuilds its enforcer.
"""

from __future__ import annotations

from uuid import UUID

from opencdmo.access.policy import roles as known_roles
from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.tx import tenant_transaction, unit_of_work
from opencdmo.errors import NotFound, ValidationFailed
from opencdmo.scope import TenantContext
from opencdmo.tenancy.queries import members, tenants
from opencdmo.tenancy.queries.members import SiteRole


def _checked(role: str, reason: str) -> str:
    if role not in known_roles():
        raise ValidationFailed(
            f"'{role}' is not a role. Roles: {', '.join(known_roles())}.",
            details={"field": "role"},
        )
    reason = " ".join(reason.split())
    if not reason:
        raise ValidationFailed("A change of roles needs a reason.", details={"field": "reason"})
    return reason


async def _site_id(code: str) -> UUID:
    site = await tenants.site_by_code(code)
    if site is None:
        raise ValidationFailed(f"This tenant has no site '{code}'.", details={"field": "site"})
    return site.id


async def _lock_member(membership_id: UUID) -> None:
    if await members.membership(membership_id, lock=True) is None:
        raise NotFound("No such member.")


async def _change(
    ctx: TenantContext,
    membership_id: UUID,
    site_code: str,
    role: str,
    reason: str,
    *,
    granting: bool,
) -> bool:
    """One grant or revocation: authorised, with a reason, the member's row locked, the
    policy version moved and the change audited, in one unit of work."""
    await authorize(ctx, "roles", "manage")
    reason = _checked(role, reason)
    async with unit_of_work(ctx):
        await _lock_member(membership_id)
        site_id = await _site_id(site_code)
        if granting:
            changed = await members.add_site_role(ctx.tenant_id, membership_id, site_id, role)
        else:
            changed = await members.remove_site_role(membership_id, site_id, role)
        if not changed:
            return False
        await tenants.bump_policy(ctx.tenant_id)
        change = {"site": site_code, "role": role}
        await audit.record(
            ctx,
            "member.site_role_granted" if granting else "member.site_role_revoked",
            "membership",
            membership_id,
            old=None if granting else change,
            new=change if granting else None,
            reason=reason,
        )
    return True


async def grant(
    ctx: TenantContext, membership_id: UUID, site_code: str, role: str, reason: str
) -> bool:
    """Grant ``role`` to the member at the site; False when they already hold it there."""
    return await _change(ctx, membership_id, site_code, role, reason, granting=True)


async def revoke(
    ctx: TenantContext, membership_id: UUID, site_code: str, role: str, reason: str
) -> bool:
    """Take ``role`` at the site away from the member; False when they did not hold it."""
    return await _change(ctx, membership_id, site_code, role, reason, granting=False)


async def site_roles(ctx: TenantContext, membership_id: UUID) -> list[SiteRole]:
    """The member's site roles, by site code and role."""
    async with tenant_transaction(ctx):
        if await members.membership(membership_id) is None:
            raise NotFound("No such member.")
        return await members.site_roles(membership_id)
