"""Rules every membership change obeys: a reason, and at least one active tenant admin.

The checks run inside the command's transaction, after ``lock_memberships``: membership
changes of one tenant are serialised on the tenant's row, so two admins removing each other at
the same moment cannot leave the tenant without one.
"""

from __future__ import annotations

from uuid import UUID

from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.scope import TenantContext
from opencdmo.tenancy.queries import members, tenants

ADMIN_ROLE = "tenant_admin"
REASON_MAX = 1000


def require_reason(reason: str | None) -> str:
    """A role change or a change of a membership's status says why (it is audited)."""
    text = " ".join((reason or "").split())
    if not text:
        raise ValidationFailed(
            "Give a reason for the change: it is recorded in the audit trail.",
            details={"field": "reason"},
        )
    if len(text) > REASON_MAX:
        raise ValidationFailed(
            f"The reason is too long ({len(text)} characters, at most {REASON_MAX}).",
            details={"field": "reason"},
        )
    return text


async def lock_memberships(ctx: TenantContext) -> None:
    """Serialise membership and role changes of this tenant until the transaction ends."""
    await tenants.lock_for_membership_changes(ctx.tenant_id)


async def keep_an_admin(ctx: TenantContext, membership_id: UUID) -> None:
    """Refuse a change that takes this membership's admin role or activity away when it is the
    tenant's last active admin (call it for such changes only)."""
    admins = await members.active_holders(ADMIN_ROLE)
    if membership_id in admins and not admins - {membership_id}:
        raise Conflict(
            f"This is the only active tenant admin of {ctx.name}: make another member "
            "tenant_admin first, so that the tenant keeps someone who can administer it."
        )
