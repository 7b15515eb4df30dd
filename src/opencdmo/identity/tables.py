"""Identity tables: users, sessions and login failures are global; API tokens belong to a tenant."""

from __future__ import annotations

from piccolo.columns import UUID, Array, Boolean, Text, Timestamptz
from piccolo.table import Table


class User(Table, tablename="users"):
    id = UUID(primary_key=True)
    email = Text(unique=True)
    full_name = Text()
    password_hash = Text()
    is_active = Boolean(default=True)
    member_of = Array(UUID())
    created_at = Timestamptz()
    password_changed_at = Timestamptz()


class Session(Table, tablename="sessions"):
    id = UUID(primary_key=True)
    token_hash = Text(unique=True)
    user_id = UUID()
    created_at = Timestamptz()
    last_seen_at = Timestamptz()
    expires_at = Timestamptz()
    address = Text(null=True, default=None)
    user_agent = Text(null=True, default=None)
    ended_at = Timestamptz(null=True, default=None)
    end_reason = Text(null=True, default=None)
    tenants_entered = Array(UUID())


class LoginFailure(Table, tablename="login_failures"):
    id = UUID(primary_key=True)
    kind = Text()  # sign_in or re_entry
    email = Text()
    address = Text()
    source = Text(null=True, default=None)  # a trusted browser, or the session or token
    failed_at = Timestamptz()


class ApiToken(Table, tablename="api_tokens"):
    tenant_id = UUID()
    id = UUID(primary_key=True)
    user_id = UUID()
    name = Text()
    token_hash = Text()
    prefix = Text()
    created_at = Timestamptz()
    expires_at = Timestamptz()
    last_used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)
