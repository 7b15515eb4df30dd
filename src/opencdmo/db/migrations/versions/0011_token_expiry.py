"""API tokens expire; password failures are counted by kind and source.

- ``api_tokens.expires_at``: every token has an expiry, chosen at creation within the
  tenant's limits (``tenants.token_default_days`` and ``token_max_days``, set by the tenant
  manifest). Tokens that exist already expire 90 days after this upgrade. The app role may
  not change an expiry (no UPDATE grant): a token is never extended. ``app_token_member``
  returns the expiry; the resolver refuses an expired token, cached or not.
- ``login_failures.kind`` (``sign_in`` or ``re_entry``) and ``source`` (a trusted browser's
  id for sign-in; the session or token for password re-entry): the throttle counts each
  apart (``opencdmo.identity.throttle``).

Revision ID: 0011
Revises: 0014
"""

from opencdmo.db.script import run

revision = "0011"
down_revision = "0014"
branch_labels = None
depends_on = None

LOOKUP_FUNCTION = """
CREATE FUNCTION app_token_member(p_tenant_slug text, p_token_hash text)
RETURNS TABLE (tenant_id uuid, tenant_slug text, tenant_name text, tenant_kind text,
               policy_version bigint, membership_id uuid, roles text[], time_zone text,
               user_id uuid, email text, full_name text, token_id uuid,
               token_last_used_at timestamptz, token_expires_at timestamptz)
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
               u.id, u.email, u.full_name, k.id, k.last_used_at, k.expires_at
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
    run("""
ALTER TABLE tenants
    ADD COLUMN token_default_days integer NOT NULL DEFAULT 90,
    ADD COLUMN token_max_days integer NOT NULL DEFAULT 365,
    ADD CONSTRAINT tenants_token_days
        CHECK (token_default_days BETWEEN 1 AND token_max_days AND token_max_days <= 3650);
GRANT UPDATE (token_default_days, token_max_days) ON tenants TO opencdmo_app;

ALTER TABLE api_tokens
    ADD COLUMN expires_at timestamptz NOT NULL DEFAULT (now() + interval '90 days');
ALTER TABLE api_tokens ALTER COLUMN expires_at DROP DEFAULT;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_expiry CHECK (expires_at > created_at);

ALTER TABLE login_failures
    ADD COLUMN kind text NOT NULL DEFAULT 'sign_in' CHECK (kind IN ('sign_in', 're_entry')),
    ADD COLUMN source text CHECK (length(source) <= 200);
ALTER TABLE login_failures ALTER COLUMN kind DROP DEFAULT;
DROP INDEX login_failures_email;
DROP INDEX login_failures_address;
CREATE INDEX login_failures_email ON login_failures (email, kind, failed_at);
CREATE INDEX login_failures_address ON login_failures (address, kind, failed_at);

DROP FUNCTION app_token_member(text, text);
""")
    run(LOOKUP_FUNCTION)


def downgrade() -> None:
    raise NotImplementedError("token expiries are security records: not dropped by a downgrade")
