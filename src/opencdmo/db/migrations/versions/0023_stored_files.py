"""Stored files (the tenant's record of each blob it keeps: hash, size, type, name, key, who
and when; append-only) and a lot's certificate of analysis as one of them.

Revision ID: 0023
Revises: 0022
"""

from opencdmo.db.rls import append_only, protect_tenant_table
from opencdmo.db.script import run

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE stored_files (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes bigint NOT NULL CHECK (size_bytes > 0),
    content_type text NOT NULL CHECK (length(content_type) BETWEEN 1 AND 200),
    filename text NOT NULL CHECK (
        length(filename) BETWEEN 1 AND 200 AND btrim(filename) <> ''
        AND filename !~ '[[:cntrl:]]'),
    -- The key is the tenant's own, made from the hash: never another tenant's blob.
    storage_key text NOT NULL CHECK (storage_key = 'tenants/' || tenant_id::text || '/' || sha256),
    uploaded_by uuid NOT NULL REFERENCES users (id),
    uploaded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX stored_files_sha256 ON stored_files (tenant_id, sha256);

ALTER TABLE lots ADD COLUMN coa_file_id uuid;
ALTER TABLE lots ADD CONSTRAINT lots_coa_file
    FOREIGN KEY (tenant_id, coa_file_id) REFERENCES stored_files (tenant_id, id);
"""


def upgrade() -> None:
    run(TABLES)
    run(protect_tenant_table("stored_files", "SELECT, INSERT"))
    run(append_only("stored_files"))
    run("GRANT UPDATE (coa_file_id) ON lots TO opencdmo_app;")


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
