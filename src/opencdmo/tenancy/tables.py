"""Tenancy tables: tenants are global; sites and memberships are tenant tables."""

from __future__ import annotations

from piccolo.columns import UUID, BigInt, Boolean, Integer, Text, Timestamptz
from piccolo.table import Table


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
    created_at = Timestamptz()


class Site(Table, tablename="sites"):
    tenant_id = UUID()
    id = UUID(primary_key=True)
    code = Text()
    name = Text()
    time_zone = Text()
    created_at = Timestamptz()


class Membership(Table, tablename="memberships"):
    tenant_id = UUID()
    id = UUID(primary_key=True)
    user_id = UUID()
    is_active = Boolean(default=True)
    created_at = Timestamptz()
