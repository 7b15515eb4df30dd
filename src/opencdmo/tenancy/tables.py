"""Tenancy tables: tenants are global; sites, memberships, role grants and invitations are
tenant tables (their foreign keys include ``tenant_id``; queries join on the id alone, which
row-level security already keeps inside the tenant)."""

from __future__ import annotations

from piccolo.columns import JSONB, UUID, Array, BigInt, Boolean, Integer, Text, Timestamptz
from piccolo.table import Table

from opencdmo.db.clock import DatabaseTime


class Tenant(Table, tablename="tenants"):
    id = UUID(primary_key=True)
    slug = Text(unique=True)
    name = Text()
    kind = Text()
    policy_version = BigInt(default=1)
    recipe_approvers = Integer(default=1)
    recipe_unique_signers = Boolean(default=True)
    token_default_days = Integer(default=90)
    token_max_days = Integer(default=365)
    batch_number_pattern = Text(default="{site}-{yy}-{seq:04}")
    exception_severities = JSONB(default={})
    late_entry_minutes = Integer(default=30)
    excursion_debounce_seconds = Integer(default=60)
    sso = JSONB(null=True, default=None)
    created_at = Timestamptz(default=DatabaseTime("now()"))


class Site(Table, tablename="sites"):
    tenant_id = UUID()
    id = UUID(primary_key=True)
    code = Text()
    name = Text()
    time_zone = Text()
    created_at = Timestamptz(default=DatabaseTime("now()"))


class Membership(Table, tablename="memberships"):
    tenant_id = UUID()
    id = UUID(primary_key=True)
    user_id = UUID()
    is_active = Boolean(default=True)
    created_at = Timestamptz(default=DatabaseTime("now()"))


class RoleAssignment(Table, tablename="role_assignments"):
    """A role granted to a member in the whole tenant (the casbin grouping policy
    ``g, user, role, tenant`` that ``opencdmo.access`` builds its enforcer from)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    membership_id = UUID()
    role = Text()
    created_at = Timestamptz(default=DatabaseTime("now()"))


class SiteRoleAssignment(Table, tablename="site_role_assignments"):
    """A role granted to a member at one site only."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    membership_id = UUID()
    site_id = UUID()
    role = Text()
    created_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))


class Invitation(Table, tablename="invitations"):
    tenant_id = UUID()
    id = UUID(primary_key=True)
    email = Text()
    roles = Array(Text())
    token_hash = Text()
    invited_by = UUID(null=True, default=None)
    invited_by_name = Text()
    created_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    expires_at = Timestamptz()
    status = Text(default="pending")
    closed_at = Timestamptz(null=True, default=None)
    accepted_by = UUID(null=True, default=None)
    mail_state = Text(null=True, default=None)  # queued, sent, failed (None: not e-mailed)
    mailed_at = Timestamptz(null=True, default=None)
    mail_error = Text(null=True, default=None)
