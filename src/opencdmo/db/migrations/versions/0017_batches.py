"""Batches and their control recipes (frozen, append-only), the per-tenant batch number
counters, and the tenant's batch number pattern.

Revision ID: 0017
Revises: 0016
"""

from opencdmo.db.rls import append_only, protect_tenant_table
from opencdmo.db.script import run

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TABLES = """
ALTER TABLE tenants
    ADD COLUMN batch_number_pattern text NOT NULL DEFAULT '{site}-{yy}-{seq:04}'
        CHECK (length(batch_number_pattern) BETWEEN 1 AND 100);
GRANT UPDATE (batch_number_pattern) ON tenants TO opencdmo_app;

CREATE TABLE batches (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    number text NOT NULL CHECK (length(btrim(number)) > 0),
    recipe_id uuid NOT NULL,
    revision integer NOT NULL,
    formula text NOT NULL,
    site_id uuid NOT NULL,
    sponsor text NOT NULL CHECK (length(btrim(sponsor)) > 0),
    planned_start timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'idle'
        CHECK (status IN ('idle', 'running', 'held', 'paused', 'stopped', 'aborted', 'complete')),
    donor_id text,
    coi_label text,
    apheresis_id text,
    created_by uuid REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, number),
    FOREIGN KEY (tenant_id, recipe_id) REFERENCES master_recipes (tenant_id, id),
    FOREIGN KEY (tenant_id, recipe_id, revision)
        REFERENCES recipe_revisions (tenant_id, recipe_id, revision),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id)
);
CREATE INDEX batches_status ON batches (tenant_id, status);
CREATE INDEX batches_planned_start ON batches (tenant_id, planned_start DESC, id);
CREATE INDEX batches_recipe ON batches (tenant_id, recipe_id);

CREATE TABLE control_recipes (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    batch_id uuid NOT NULL,
    document jsonb NOT NULL,
    content_hash text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, batch_id),
    FOREIGN KEY (tenant_id, batch_id) REFERENCES batches (tenant_id, id)
);

-- One counter per tenant and pattern key (the pattern with everything but the counter
-- filled in: a site and year each count from 1 where the pattern names them).
CREATE TABLE batch_number_counters (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    key text NOT NULL,
    last_value integer NOT NULL CHECK (last_value >= 0),
    PRIMARY KEY (tenant_id, key)
);
"""


def upgrade() -> None:
    run(TABLES)
    run(protect_tenant_table("batches", "SELECT, INSERT, UPDATE (status, updated_at)"))
    run(protect_tenant_table("control_recipes", "SELECT, INSERT"))
    run(append_only("control_recipes"))
    run(protect_tenant_table("batch_number_counters", "SELECT, INSERT, UPDATE (last_value)"))


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
