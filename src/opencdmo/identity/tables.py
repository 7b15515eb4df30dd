"""Identity tables: users, sessions and login failures are global; API tokens belong to a tenant.

Each table declares the columns of the migrations exactly (``tests/integration/
test_tables_match_identity.py`` compares them with the database). Defaults that the database
gives from its clock (``now()``, ``clock_timestamp()``) are given by ``identity.queries``
on insert, so that every time the throttle and the sessions compare comes from one clock.
"""

from __future__ import annotations

from piccolo.columns import UUID, Array, Boolean, ForeignKey, Text, Timestamptz
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
    signing_password_hash = Text(null=True, default=None)
    notify_by_email = Boolean(default=True)


class Session(Table, tablename="sessions"):
    id = UUID(primary_key=True)
    token_hash = Text(unique=True)
    user_id = ForeignKey(User, null=False)
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
    email = Text()
    address = Text()
    failed_at = Timestamptz()
    kind = Text()  # sign_in or re_entry
    source = Text(null=True, default=None)  # a trusted browser, or the session or token


class ApiToken(Table, tablename="api_tokens"):
    tenant_id = UUID()
    id = UUID(primary_key=True)
    # The database's key is (tenant_id, user_id) -> memberships: always a user of the tenant.
    user_id = ForeignKey(User, null=False)
    name = Text()
    token_hash = Text()
    prefix = Text()
    created_at = Timestamptz()
    last_used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)
    expires_at = Timestamptz()


class SsoIdentity(Table, tablename="sso_identities"):
    """A provider's ``(issuer, subject)`` -> the person it names (global, like users)."""

    id = UUID(primary_key=True)
    issuer = Text()
    subject = Text()
    user_id = ForeignKey(User, null=False)
    linked_by_tenant = UUID()
    created_at = Timestamptz()
    last_sign_in_at = Timestamptz()


class SsoRequest(Table, tablename="sso_requests"):
    """One authorization request (state, nonce, PKCE verifier), used once."""

    id = UUID(primary_key=True)
    state_hash = Text(unique=True)
    for_tenant = UUID()
    purpose = Text()
    nonce = Text()
    code_verifier = Text()
    next = Text(default="")
    user_id = UUID(null=True, default=None)
    started_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    grant_hash = Text(null=True, default=None)
    grant_used_at = Timestamptz(null=True, default=None)
