"""Storage locations and container moves: the tenant's storage as a tree (site, room, storage
unit, rack, box, position), each container's location and the append-only history of its
moves, whether its label has been printed; and per material a reorder level and the
suppliers approved for it.

Revision ID: 0024
Revises: 0023
"""

from opencdmo.db.rls import append_only, protect_tenant_table
from opencdmo.db.script import run

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

KINDS = (
    "('site', 'room', 'freezer', 'fridge', 'incubator', 'shelf', 'ln2_tank', 'rack', 'box', "
    "'position')"
)

TABLES = f"""
CREATE TABLE storage_locations (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    parent_id uuid,
    site_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN {KINDS}),
    code text NOT NULL CHECK (length(btrim(code)) BETWEEN 1 AND 64),
    name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    storage_condition text NOT NULL DEFAULT '' CHECK (length(storage_condition) <= 200),
    created_by uuid REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    retired_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, site_id, id),
    CHECK ((kind = 'site') = (parent_id IS NULL)),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id),
    -- A child is at its parent's site.
    FOREIGN KEY (tenant_id, site_id, parent_id)
        REFERENCES storage_locations (tenant_id, site_id, id)
);
-- A code is unique among the siblings in use (case aside); one root location per site.
CREATE UNIQUE INDEX storage_locations_sibling_code
    ON storage_locations (tenant_id, parent_id, lower(code))
    WHERE parent_id IS NOT NULL AND retired_at IS NULL;
CREATE UNIQUE INDEX storage_locations_site_root
    ON storage_locations (tenant_id, site_id) WHERE parent_id IS NULL;
CREATE INDEX storage_locations_parent ON storage_locations (tenant_id, parent_id);

ALTER TABLE lot_containers
    ADD COLUMN location_id uuid,
    ADD COLUMN label_printed_at timestamptz,
    ADD COLUMN label_printed_by uuid REFERENCES users (id),
    ADD FOREIGN KEY (tenant_id, location_id) REFERENCES storage_locations (tenant_id, id);
CREATE INDEX lot_containers_location ON lot_containers (tenant_id, location_id);
CREATE INDEX lot_containers_to_label ON lot_containers (tenant_id, lot_id)
    WHERE label_printed_at IS NULL;

CREATE TABLE container_moves (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    container_id uuid NOT NULL,
    from_location_id uuid,
    to_location_id uuid NOT NULL,
    reason text CHECK (length(reason) <= 2000),
    moved_by uuid NOT NULL REFERENCES users (id),
    moved_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, container_id) REFERENCES lot_containers (tenant_id, id),
    FOREIGN KEY (tenant_id, from_location_id) REFERENCES storage_locations (tenant_id, id),
    FOREIGN KEY (tenant_id, to_location_id) REFERENCES storage_locations (tenant_id, id)
);
CREATE INDEX container_moves_container ON container_moves (tenant_id, container_id, moved_at);

ALTER TABLE materials
    ADD COLUMN reorder_level numeric CHECK (reorder_level >= 0),
    ADD COLUMN approved_suppliers text[] NOT NULL DEFAULT '{{}}'
        CHECK (cardinality(approved_suppliers) <= 100);
"""


def upgrade() -> None:
    run(TABLES)
    run(protect_tenant_table("storage_locations", "SELECT, INSERT, UPDATE (retired_at)"))
    run(protect_tenant_table("container_moves", "SELECT, INSERT"))
    run(append_only("container_moves"))
    run(
        "GRANT UPDATE (location_id, label_printed_at, label_printed_by) ON lot_containers "
        "TO opencdmo_app;"
        "GRANT UPDATE (reorder_level, approved_suppliers) ON materials TO opencdmo_app;"
    )


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
