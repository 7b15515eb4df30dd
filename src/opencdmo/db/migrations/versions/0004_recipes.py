"""Master recipes: every save a revision; the lifecycle and its signatures.

Revision ID: 0004
Revises: 0003
"""

from opencdmo.db.rls import append_only, protect_tenant_table
from opencdmo.db.script import run

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE master_recipes (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    name text NOT NULL CHECK (length(btrim(name)) > 0),
    product text NOT NULL DEFAULT '',
    status text NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'in_review', 'approved', 'effective', 'superseded', 'retired')),
    current_revision integer NOT NULL DEFAULT 1,
    effective_revision integer,
    author_id uuid REFERENCES users (id),
    source_hub_version_id uuid REFERENCES hub_versions (id),
    effective_at timestamptz,
    retired_reason text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE recipe_revisions (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    recipe_id uuid NOT NULL,
    revision integer NOT NULL CHECK (revision > 0),
    content jsonb NOT NULL,
    content_hash text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    message text NOT NULL DEFAULT '',
    saved_by uuid REFERENCES users (id),
    saved_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, recipe_id, revision),
    FOREIGN KEY (tenant_id, recipe_id) REFERENCES master_recipes (tenant_id, id)
);
"""


def upgrade() -> None:
    run(TABLES)
    run(
        protect_tenant_table(
            "master_recipes",
            "SELECT, INSERT, UPDATE (name, product, status, current_revision, effective_revision, "
            "effective_at, "
            "retired_reason, updated_at)",
        )
    )
    run(protect_tenant_table("recipe_revisions", "SELECT, INSERT"))
    run(append_only("recipe_revisions"))


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
