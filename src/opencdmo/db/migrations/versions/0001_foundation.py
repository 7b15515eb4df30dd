"""Foundation: application role, identity, tenancy, access, audit trail, signatures.

Revision ID: 0001
Revises:
"""

from opencdmo.db.rls import append_only, protect_tenant_table
from opencdmo.db.script import run

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'opencdmo_app') THEN
        CREATE ROLE opencdmo_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE
            NOREPLICATION NOINHERIT;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO opencdmo_app', current_database());
END $$;
GRANT USAGE ON SCHEMA public TO opencdmo_app;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
"""

GLOBAL_TABLES = """
CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email text NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '%_@_%'),
    full_name text NOT NULL CHECK (length(btrim(full_name)) > 0),
    password_hash text NOT NULL,
    is_active boolean NOT NULL DEFAULT true,
    member_of uuid[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT ON users TO opencdmo_app;
GRANT UPDATE (full_name, password_hash, is_active, member_of, password_changed_at)
    ON users TO opencdmo_app;

CREATE TABLE tenants (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,48}[a-z0-9]$'),
    name text NOT NULL CHECK (length(btrim(name)) > 0),
    kind text NOT NULL CHECK (kind IN ('cdmo', 'sponsor', 'publisher')),
    policy_version bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT ON tenants TO opencdmo_app;
GRANT UPDATE (name, kind, policy_version) ON tenants TO opencdmo_app;

CREATE TABLE sessions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash text NOT NULL UNIQUE,
    user_id uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    address text,
    user_agent text,
    ended_at timestamptz,
    end_reason text
);
CREATE INDEX sessions_user_open ON sessions (user_id) WHERE ended_at IS NULL;
GRANT SELECT, INSERT ON sessions TO opencdmo_app;
GRANT UPDATE (last_seen_at, ended_at, end_reason) ON sessions TO opencdmo_app;

CREATE TABLE login_failures (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email text NOT NULL,
    address text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX login_failures_email ON login_failures (email, failed_at);
CREATE INDEX login_failures_address ON login_failures (address, failed_at);
GRANT SELECT, INSERT, DELETE ON login_failures TO opencdmo_app;

-- Security events that belong to no tenant (failed logins, unknown tenants): one hash chain.
CREATE TABLE security_events (
    seq bigint PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    actor_id uuid,
    actor_name text NOT NULL,
    action text NOT NULL,
    detail json NOT NULL,
    request_id text,
    address text,
    prev_hash text NOT NULL,
    hash text NOT NULL
);
CREATE TABLE security_head (
    id integer PRIMARY KEY CHECK (id = 1),
    last_seq bigint NOT NULL,
    last_hash text NOT NULL
);
INSERT INTO security_head VALUES (1, 0, repeat('0', 64));
GRANT SELECT, INSERT ON security_events TO opencdmo_app;
GRANT SELECT, UPDATE ON security_head TO opencdmo_app;
"""

TENANT_TABLES = """
CREATE TABLE sites (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    code text NOT NULL CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_-]*$'),
    name text NOT NULL,
    time_zone text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, code)
);

CREATE TABLE memberships (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id),
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, user_id)
);

CREATE TABLE role_assignments (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    membership_id uuid NOT NULL,
    role text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, membership_id, role),
    FOREIGN KEY (tenant_id, membership_id) REFERENCES memberships (tenant_id, id)
);

CREATE TABLE api_tokens (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    name text NOT NULL,
    token_hash text NOT NULL,
    prefix text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, user_id) REFERENCES memberships (tenant_id, user_id)
);

CREATE TABLE audit_heads (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    last_seq bigint NOT NULL,
    last_hash text NOT NULL,
    PRIMARY KEY (tenant_id)
);

CREATE TABLE audit_events (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    seq bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    actor_id uuid,
    actor_name text NOT NULL,
    action text NOT NULL,
    entity_type text NOT NULL,
    entity_id text NOT NULL,
    old_values json,
    new_values json,
    reason text,
    request_id text,
    address text,
    prev_hash text NOT NULL,
    hash text NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, seq)
);
CREATE INDEX audit_events_time ON audit_events (tenant_id, occurred_at);
CREATE INDEX audit_events_entity ON audit_events (tenant_id, entity_type, entity_id);
CREATE INDEX audit_events_actor ON audit_events (tenant_id, actor_id);

CREATE TABLE signatures (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    record_type text NOT NULL,
    record_id text NOT NULL,
    record_version text NOT NULL,
    record_hash text NOT NULL CHECK (record_hash ~ '^[0-9a-f]{64}$'),
    signer_id uuid NOT NULL REFERENCES users (id),
    signer_name text NOT NULL,
    meaning text NOT NULL,
    reason text NOT NULL CHECK (length(btrim(reason)) > 0),
    signed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX signatures_record ON signatures (tenant_id, record_type, record_id);
"""

FUNCTIONS = """
-- One round trip per request: the user's membership and roles in the tenant named by the path,
-- read under that tenant's row-level security (the function runs with the caller's rights).
-- Call it outside a transaction: it sets app.tenant_id for the rest of the one it runs in.
CREATE FUNCTION app_member(p_tenant_slug text, p_user_id uuid)
RETURNS TABLE (tenant_id uuid, tenant_slug text, tenant_name text, tenant_kind text,
               policy_version bigint, membership_id uuid, roles text[], time_zone text)
LANGUAGE plpgsql AS $$
DECLARE
    t tenants%ROWTYPE;
BEGIN
    SELECT * INTO t FROM tenants WHERE slug = p_tenant_slug;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM set_config('app.tenant_id', t.id::text, true);
    RETURN QUERY
        SELECT t.id, t.slug, t.name, t.kind, t.policy_version, m.id,
               coalesce(array_agg(r.role ORDER BY r.role) FILTER (WHERE r.role IS NOT NULL),
                        '{}'),
               coalesce((SELECT s.time_zone FROM sites s ORDER BY s.code LIMIT 1), 'UTC')
        FROM memberships m
        LEFT JOIN role_assignments r
               ON r.tenant_id = m.tenant_id AND r.membership_id = m.id
        WHERE m.tenant_id = t.id AND m.user_id = p_user_id AND m.is_active
        GROUP BY m.id;
END $$;
GRANT EXECUTE ON FUNCTION app_member(text, uuid) TO opencdmo_app;

-- The same for a bearer token, which belongs to one tenant and one member.
CREATE FUNCTION app_token_member(p_tenant_slug text, p_token_hash text)
RETURNS TABLE (tenant_id uuid, tenant_slug text, tenant_name text, tenant_kind text,
               policy_version bigint, membership_id uuid, roles text[], time_zone text,
               user_id uuid, email text, full_name text, token_id uuid,
               token_last_used_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    t tenants%ROWTYPE;
BEGIN
    SELECT * INTO t FROM tenants WHERE slug = p_tenant_slug;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM set_config('app.tenant_id', t.id::text, true);
    RETURN QUERY
        SELECT t.id, t.slug, t.name, t.kind, t.policy_version, m.id,
               coalesce(array_agg(r.role ORDER BY r.role) FILTER (WHERE r.role IS NOT NULL),
                        '{}'),
               coalesce((SELECT s.time_zone FROM sites s ORDER BY s.code LIMIT 1), 'UTC'),
               u.id, u.email, u.full_name, k.id, k.last_used_at
        FROM api_tokens k
        JOIN users u ON u.id = k.user_id AND u.is_active
        JOIN memberships m ON m.tenant_id = k.tenant_id AND m.user_id = k.user_id AND m.is_active
        LEFT JOIN role_assignments r
               ON r.tenant_id = m.tenant_id AND r.membership_id = m.id
        WHERE k.tenant_id = t.id AND k.token_hash = p_token_hash AND k.revoked_at IS NULL
        GROUP BY m.tenant_id, m.id, u.id, k.tenant_id, k.id;
END $$;
GRANT EXECUTE ON FUNCTION app_token_member(text, text) TO opencdmo_app;
"""


def upgrade() -> None:
    run(ROLE)
    run(GLOBAL_TABLES)
    run(TENANT_TABLES)
    grants = {
        "sites": "SELECT, INSERT, UPDATE (name, time_zone)",
        "memberships": "SELECT, INSERT, UPDATE (is_active)",
        "role_assignments": "SELECT, INSERT, DELETE",
        "api_tokens": "SELECT, INSERT, UPDATE (last_used_at, revoked_at)",
        "audit_heads": "SELECT, INSERT, UPDATE (last_seq, last_hash)",
        "audit_events": "SELECT, INSERT",
        "signatures": "SELECT, INSERT",
    }
    for table, privileges in grants.items():
        run(protect_tenant_table(table, privileges))
    for table in ("audit_events", "signatures", "security_events"):
        run(append_only(table))
    run(FUNCTIONS)


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
