"""Importing a received tech-transfer package: the receiver's mapping of each gap the
analysis found (per package, per gap: use an equivalent of its own, install from the HUB, or
fork the sender's content), saved as it goes and changed until the import; and each import
with its lineage (the sender, its recipe, revision and content hash, the sender's content as
it was, the mapping as applied) and the draft recipe and revision it created. Imports are
append-only.

Revision ID: 0034
Revises: 0033
"""

from opencdmo.db.rls import append_only, protect_tenant_table
from opencdmo.db.script import run

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE transfer_mappings (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    package_id uuid NOT NULL,
    gap_kind text NOT NULL CHECK (gap_kind IN ('item', 'equipment_class', 'material')),
    gap_ref text NOT NULL CHECK (length(gap_ref) BETWEEN 1 AND 200),
    resolution text NOT NULL CHECK (resolution IN ('use', 'install', 'fork')),
    target_id uuid,
    target text NOT NULL DEFAULT '' CHECK (length(target) <= 200),
    decided_by uuid NOT NULL REFERENCES users (id),
    decided_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, package_id, gap_kind, gap_ref),
    FOREIGN KEY (tenant_id, package_id) REFERENCES transfer_packages (tenant_id, id)
);

CREATE TABLE transfer_imports (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    package_id uuid NOT NULL,
    recipe_id uuid NOT NULL,
    revision integer NOT NULL CHECK (revision >= 1),
    sender_tenant_id uuid NOT NULL,
    sender_name text NOT NULL CHECK (length(sender_name) BETWEEN 1 AND 200),
    sender_recipe_id uuid NOT NULL,
    sender_revision integer NOT NULL CHECK (sender_revision >= 1),
    content_hash text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    sender_content jsonb NOT NULL,
    mapping jsonb NOT NULL,
    imported_by uuid NOT NULL REFERENCES users (id),
    imported_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    -- A package imports once.
    UNIQUE (tenant_id, package_id),
    FOREIGN KEY (tenant_id, package_id) REFERENCES transfer_packages (tenant_id, id),
    FOREIGN KEY (tenant_id, recipe_id) REFERENCES master_recipes (tenant_id, id)
);
-- The last import of a sender's recipe (a later package of it is a new revision).
CREATE INDEX transfer_imports_sender
    ON transfer_imports (tenant_id, sender_tenant_id, sender_recipe_id, imported_at DESC);
"""


def upgrade() -> None:
    run(TABLES)
    run(
        protect_tenant_table(
            "transfer_mappings",
            "SELECT, INSERT, UPDATE (resolution, target_id, target, decided_by, decided_at)",
        )
    )
    run(protect_tenant_table("transfer_imports", "SELECT, INSERT"))
    run(append_only("transfer_imports"))


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
