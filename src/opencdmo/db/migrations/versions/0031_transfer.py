"""Tech transfer: each tenant's Ed25519 signing key for the packages it sends (its private
key encrypted at rest with AES-GCM under a key derived from the application's secret and the
tenant id), the sender keys of other installations it trusts (by fingerprint, added and
removed by an administrator, a removed one kept with who removed it, when and why), and the
packages it sent (the archive's SHA-256, size and blob key, the QA signature that approved
it for transfer).

Revision ID: 0031
Revises: 0030
"""

from opencdmo.db.rls import protect_tenant_table
from opencdmo.db.script import run

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE transfer_signing_keys (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    algorithm text NOT NULL CHECK (algorithm = 'Ed25519'),
    public_key bytea NOT NULL CHECK (length(public_key) = 32),
    fingerprint text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    encrypted_private_key bytea NOT NULL CHECK (length(encrypted_private_key) = 48),
    nonce bytea NOT NULL CHECK (length(nonce) = 12),
    created_by uuid REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id)
);
-- One signing key per tenant.
CREATE UNIQUE INDEX transfer_signing_keys_one ON transfer_signing_keys (tenant_id);

CREATE TABLE transfer_trusted_keys (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    fingerprint text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    public_key bytea NOT NULL CHECK (length(public_key) = 32),
    label text NOT NULL CHECK (length(label) BETWEEN 1 AND 200),
    added_by uuid NOT NULL REFERENCES users (id),
    added_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    removed_by uuid REFERENCES users (id),
    removed_at timestamptz,
    removal_reason text CHECK (length(removal_reason) BETWEEN 1 AND 2000),
    PRIMARY KEY (tenant_id, id),
    CHECK ((removed_at IS NULL) = (removed_by IS NULL)),
    CHECK ((removed_at IS NULL) = (removal_reason IS NULL))
);
-- A key is trusted once at a time.
CREATE UNIQUE INDEX transfer_trusted_current
    ON transfer_trusted_keys (tenant_id, fingerprint) WHERE removed_at IS NULL;

CREATE TABLE transfer_packages (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL,
    direction text NOT NULL CHECK (direction IN ('sent', 'received')),
    recipe_id uuid,
    revision integer CHECK (revision >= 1),
    content_hash text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes bigint NOT NULL CHECK (size_bytes > 0),
    status text NOT NULL CHECK (status IN (
        'sent', 'received', 'verified', 'in_mapping', 'imported', 'rejected')),
    storage_key text NOT NULL,
    signature_id uuid,
    sender_fingerprint text NOT NULL CHECK (sender_fingerprint ~ '^[0-9a-f]{64}$'),
    created_by uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, recipe_id) REFERENCES master_recipes (tenant_id, id),
    FOREIGN KEY (tenant_id, signature_id) REFERENCES signatures (tenant_id, id),
    CHECK (direction <> 'sent' OR (recipe_id IS NOT NULL AND revision IS NOT NULL
        AND signature_id IS NOT NULL))
);
CREATE INDEX transfer_packages_recipe ON transfer_packages (tenant_id, recipe_id);
"""


def upgrade() -> None:
    run(TABLES)
    run(protect_tenant_table("transfer_signing_keys", "SELECT, INSERT"))
    run(
        protect_tenant_table(
            "transfer_trusted_keys",
            "SELECT, INSERT, UPDATE (removed_by, removed_at, removal_reason)",
        )
    )
    run(protect_tenant_table("transfer_packages", "SELECT, INSERT, UPDATE (status)"))


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
