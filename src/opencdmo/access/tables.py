"""Role grants per membership: the casbin grouping policy (g, user, role, tenant) lives here."""

from __future__ import annotations

from piccolo.columns import UUID, Text, Timestamptz
from piccolo.table import Table


class RoleAssignment(Table, tablename="role_assignments"):
    tenant_id = UUID()
    id = UUID(primary_key=True)
    membership_id = UUID()
    role = Text()
    created_at = Timestamptz()
