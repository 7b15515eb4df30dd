"""Exports built by the job worker rather than in a request: the batch record's BatchML and
the audit trail (CSV or JSON). ``exports`` keeps each request: its kind, its subject (the
batch, or the audit filter and format), who asked and when, its state (queued, running, done,
failed), why it failed in words, and once done the stored file (blob store key, file name,
media type, size, SHA-256) and when it was finished. Exports are kept.

Revision ID: 0044
Revises: 0043
"""

from __future__ import annotations

from opencdmo.db.rls import protect_tenant_table
from opencdmo.db.script import run

revision = "0044"
down_revision = "0043"
branch_labels = None
depends_on = None

TABLE = """
CREATE TABLE exports (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('batch_record_xml', 'audit_trail')),
    subject jsonb NOT NULL,
    requested_by uuid NOT NULL REFERENCES users (id),
    requested_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'done', 'failed')),
    error text CHECK (length(error) <= 4000),
    storage_key text CHECK (length(storage_key) <= 400),
    file_name text CHECK (length(file_name) <= 400),
    media_type text CHECK (length(media_type) <= 200),
    size_bytes bigint CHECK (size_bytes >= 0),
    sha256 text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    finished_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    CHECK ((state = 'done') = (storage_key IS NOT NULL AND sha256 IS NOT NULL)),
    CHECK ((state = 'failed') = (error IS NOT NULL))
);
CREATE INDEX exports_requested ON exports (tenant_id, requested_by, requested_at);
"""


def upgrade() -> None:
    run(TABLE)
    run(protect_tenant_table("exports", "SELECT, INSERT, UPDATE"))


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
