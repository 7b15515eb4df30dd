"""Single sign-on through each tenant's OpenID provider.

``tenants.sso``: the tenant's provider as its manifest gives it (issuer, client id, the NAME
of the environment variable holding the client secret - never the secret -, scopes, allowed
email domains, group-to-role mapping, whether password sign-in stays on, how people sign).

``sso_identities`` (global, like ``users``): the provider's ``(issuer, subject)`` -> the person
it names, and the tenant whose provider first linked it (``linked_by_tenant``). One person per issuer and subject:
a sign-in through another issuer can never take the link over.

``sso_requests`` (global: it exists before anyone is signed in): one authorization request
(for the tenant ``for_tenant``) each, keyed by the SHA-256 of its ``state``, with its nonce and PKCE verifier; used once.
A signing re-authentication also records who asked and, once the provider confirmed a fresh
sign-in, the hash of the one-time signing grant it gives (used once too).

``users.signing_password_hash``: the signing password a person sets in a tenant that signs
with one under single sign-on. ``signatures.method``: how the signer re-authenticated
(``password``, ``signing_password``, ``reauthentication``).

Revision ID: 0039
Revises: 0038
"""

from opencdmo.db.script import run

revision = "0039"
down_revision = "0038"
branch_labels = None
depends_on = None

TABLES = """
ALTER TABLE tenants ADD COLUMN sso jsonb;
ALTER TABLE users ADD COLUMN signing_password_hash text;
ALTER TABLE signatures ADD COLUMN method text NOT NULL DEFAULT 'password'
    CHECK (method IN ('password', 'signing_password', 'reauthentication'));

CREATE TABLE sso_identities (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    issuer text NOT NULL CHECK (length(issuer) <= 2000),
    subject text NOT NULL CHECK (length(subject) <= 255),
    user_id uuid NOT NULL REFERENCES users (id),
    linked_by_tenant uuid NOT NULL REFERENCES tenants (id),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_sign_in_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (issuer, subject)
);
CREATE INDEX sso_identities_user ON sso_identities (user_id);

CREATE TABLE sso_requests (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    state_hash text NOT NULL UNIQUE,
    for_tenant uuid NOT NULL REFERENCES tenants (id),
    purpose text NOT NULL CHECK (purpose IN ('sign_in', 'signing')),
    nonce text NOT NULL,
    code_verifier text NOT NULL,
    next text NOT NULL DEFAULT '' CHECK (length(next) <= 2000),
    user_id uuid REFERENCES users (id),
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    used_at timestamptz,
    grant_hash text UNIQUE,
    grant_used_at timestamptz,
    CHECK (purpose = 'sign_in' OR user_id IS NOT NULL)
);
CREATE INDEX sso_requests_started ON sso_requests (started_at);

GRANT UPDATE (sso) ON tenants TO opencdmo_app;
GRANT UPDATE (signing_password_hash) ON users TO opencdmo_app;
GRANT SELECT, INSERT, UPDATE (user_id, last_sign_in_at) ON sso_identities TO opencdmo_app;
GRANT SELECT, INSERT, DELETE, UPDATE (used_at, grant_hash, grant_used_at)
    ON sso_requests TO opencdmo_app;
"""


def upgrade() -> None:
    run(TABLES)


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
