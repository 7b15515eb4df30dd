"""Rules every membership change obeys: a reason, and at least one active tenant admin.

The checks run inside the command's transaction, after ``lock_memberships``: membership
changes of one tenant are serialised on the tenant's row, so two admins removing each other at
the same moment cannot leave the tenant without one.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.scope import TenantContext

ADMIN_ROLE = "tenant_admin"
REASON_MAX = 1000

# Active tenant admins (an active membership of an active user): this one, and the others.
_ADMINS = """
SELECT count(*) FILTER (WHERE m.id = $1) AS this, count(*) FILTER (WHERE m.id <> $1) AS others
FROM memberships m
JOIN users u ON u.id = m.user_id AND u.is_active
JOIN role_assignments r ON r.tenant_id = m.tenant_id AND r.membership_id = m.id
WHERE r.role = $2 AND m.is_active
"""


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


async def lock_memberships(connection: Any, ctx: TenantContext) -> None:
    """Serialise membership and role changes of this tenant until the transaction ends.

    ``FOR NO KEY UPDATE`` (not ``FOR UPDATE``) so that inserts elsewhere in the tenant, whose
    foreign keys take a key-share lock on the tenant row, do not wait for it.
    """
    await connection.execute("SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE", ctx.tenant_id)


async def keep_an_admin(connection: Any, ctx: TenantContext, membership_id: UUID) -> None:
    """Refuse a change that takes this membership's admin role or activity away when it is the
    tenant's last active admin (call it for such changes only)."""
    counts = await connection.fetchrow(_ADMINS, membership_id, ADMIN_ROLE)
    if counts["this"] and not counts["others"]:
        raise Conflict(
            f"This is the only active tenant admin of {ctx.name}: make another member "
            "tenant_admin first, so that the tenant keeps someone who can administer it."
        )
