"""The electronic batch record's entries: append-only, one current entry per field.

Revision ID: 0018
Revises: 0017
"""

from opencdmo.db.rls import append_only, protect_tenant_table
from opencdmo.db.script import run

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE batch_entries (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    batch_id uuid NOT NULL,
    step text NOT NULL CHECK (length(step) BETWEEN 1 AND 64),
    phase text NOT NULL CHECK (length(phase) BETWEEN 1 AND 64),
    field text NOT NULL CHECK (length(field) BETWEEN 1 AND 64),
    value jsonb NOT NULL,
    unit text,
    source text NOT NULL DEFAULT 'manual'
        CHECK (source IN ('manual', 'equipment', 'calculated')),
    entered_by uuid NOT NULL REFERENCES users (id),
    entered_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    device_time timestamptz,
    idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    supersedes uuid,
    reason text,
    check_result text NOT NULL
        CHECK (check_result IN ('in_limits', 'outside_normal', 'outside_par', 'invalid')),
    message text NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, batch_id) REFERENCES batches (tenant_id, id),
    FOREIGN KEY (tenant_id, supersedes) REFERENCES batch_entries (tenant_id, id),
    CHECK (supersedes IS NULL OR length(btrim(coalesce(reason, ''))) > 0)
);
-- A retried submission finds the first entry by its key.
CREATE UNIQUE INDEX batch_entries_idempotency
    ON batch_entries (tenant_id, batch_id, idempotency_key);
-- One first entry per field, and each entry corrected at most once: a field's entries form
-- one chain, whose newest entry is the field's current value.
CREATE UNIQUE INDEX batch_entries_first_per_field
    ON batch_entries (tenant_id, batch_id, step, phase, field) WHERE supersedes IS NULL;
CREATE UNIQUE INDEX batch_entries_corrected_once
    ON batch_entries (tenant_id, supersedes) WHERE supersedes IS NOT NULL;
CREATE INDEX batch_entries_batch ON batch_entries (tenant_id, batch_id, entered_at, id);
"""


def upgrade() -> None:
    run(TABLES)
    run(protect_tenant_table("batch_entries", "SELECT, INSERT"))
    run(append_only("batch_entries"))


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
