"""Invitations into a tenant, and sign-ins recorded in the tenant a session enters.

A tenant admin invites a person by email; the invitation stores only a hash of its single-use
token, expires, and is accepted by the person (signing in, or choosing a name and password).
At most one invitation per address is pending in a tenant. ``sessions.tenants_entered`` lists
the tenants a session has entered, so a sign-in is recorded once in each of those, and only
there.

Revision ID: 0012
Revises: 0009
"""

from opencdmo.db.rls import protect_tenant_table
from opencdmo.db.script import run

revision = "0012"
down_revision = "0009"
branch_labels = None
depends_on = None

INVITATIONS = """
CREATE TABLE invitations (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    email text NOT NULL CHECK (email = lower(email) AND email LIKE '%_@_%'
                               AND length(email) <= 320),
    roles text[] NOT NULL DEFAULT '{}',
    token_hash text NOT NULL CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    invited_by uuid REFERENCES users (id),
    invited_by_name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'accepted', 'revoked', 'expired')),
    closed_at timestamptz,
    accepted_by uuid REFERENCES users (id),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, token_hash),
    CHECK ((status = 'pending') = (closed_at IS NULL)),
    CHECK ((status = 'accepted') = (accepted_by IS NOT NULL))
);
-- One pending invitation per address and tenant: concurrent invitations conflict here.
CREATE UNIQUE INDEX invitations_one_pending ON invitations (tenant_id, email)
    WHERE status = 'pending';
"""


def upgrade() -> None:
    run(INVITATIONS)
    run(
        protect_tenant_table(
            "invitations", "SELECT, INSERT, UPDATE (status, closed_at, accepted_by)"
        )
    )
    run("""
ALTER TABLE sessions ADD COLUMN tenants_entered uuid[] NOT NULL DEFAULT '{}';
GRANT UPDATE (tenants_entered) ON sessions TO opencdmo_app;
""")


def downgrade() -> None:
    run("ALTER TABLE sessions DROP COLUMN tenants_entered")
    run("DROP TABLE invitations")
