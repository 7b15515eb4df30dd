"""Roles granted at one site: a member's permissions scoped below the tenant.

A tenant-wide role applies at every site of the tenant; a site role only at its site
(``opencdmo.access.service.can(ctx, obj, act, site_id=...)``). Every grant and revocation is
a command: authorised (``roles:manage``), with a reason, in one unit of work with its audit
event, and it moves the tenant's policy version so every process rebuilds its enforcer.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from opencdmo.access.policy import roles as known_roles
from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.tx import tenant_transaction, unit_of_work
from opencdmo.errors import NotFound, ValidationFailed
from opencdmo.scope import TenantContext
from opencdmo.tenancy.tables import Membership, Site, SiteRoleAssignment, Tenant


@dataclass(frozen=True, order=True)
class SiteRole:
    site_code: str
    role: str


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
    row = await Site.select(Site.id).where(Site.code == code).first()
    if row is None:
        raise ValidationFailed(f"This tenant has no site '{code}'.", details={"field": "site"})
    site_id = row["id"]
    assert isinstance(site_id, UUID)
    return site_id


async def _lock_member(membership_id: UUID) -> None:
    found = (
        await Membership.select(Membership.id)
        .where(Membership.id == membership_id)
        .lock_rows("UPDATE")
        .first()
    )
    if found is None:
        raise NotFound("No such member.")


async def _bump_policy(ctx: TenantContext) -> None:
    await Tenant.update({Tenant.policy_version: Tenant.policy_version + 1}).where(
        Tenant.id == ctx.tenant_id
    )


async def _insert(ctx: TenantContext, membership_id: UUID, site_id: UUID, role: str) -> bool:
    inserted = (
        await SiteRoleAssignment.insert(
            SiteRoleAssignment(
                tenant_id=ctx.tenant_id, membership_id=membership_id, site_id=site_id, role=role
            )
        )
        .on_conflict(
            target=(
                SiteRoleAssignment.tenant_id,
                SiteRoleAssignment.membership_id,
                SiteRoleAssignment.site_id,
                SiteRoleAssignment.role,
            ),
            action="DO NOTHING",
        )
        .returning(SiteRoleAssignment.id)
    )
    return bool(inserted)


async def _delete(ctx: TenantContext, membership_id: UUID, site_id: UUID, role: str) -> bool:
    removed = (
        await SiteRoleAssignment.delete()
        .where(
            (SiteRoleAssignment.membership_id == membership_id)
            & (SiteRoleAssignment.site_id == site_id)
            & (SiteRoleAssignment.role == role)
        )
        .returning(SiteRoleAssignment.id)
    )
    return bool(removed)


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
        write = _insert if granting else _delete
        if not await write(ctx, membership_id, site_id, role):
            return False
        await _bump_policy(ctx)
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
        member = await Membership.select(Membership.id).where(Membership.id == membership_id)
        if not member:
            raise NotFound("No such member.")
        rows = await SiteRoleAssignment.select(
            SiteRoleAssignment.site_id, SiteRoleAssignment.role
        ).where(SiteRoleAssignment.membership_id == membership_id)
        if not rows:
            return []
        codes = {
            r["id"]: r["code"]
            for r in await Site.select(Site.id, Site.code).where(
                Site.id.is_in([r["site_id"] for r in rows])
            )
        }
    return sorted(SiteRole(codes[r["site_id"]], r["role"]) for r in rows)
