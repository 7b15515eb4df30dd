"""Materials in batches: what is left in each container, lots a batch produced (their origin)
and a patient's starting material with its chain-of-identity identifiers, the consumptions a
batch records in its steps, reservations of containers for a batch, and the genealogy links
(lot into batch, batch into lot) that traces walk.

Revision ID: 0022
Revises: 0021
"""

from opencdmo.db.rls import append_only, protect_tenant_table
from opencdmo.db.script import run

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

TABLES = """
ALTER TABLE batch_exceptions DROP CONSTRAINT batch_exceptions_kind_check,
    ADD CONSTRAINT batch_exceptions_kind_check CHECK (kind IN (
        'outside_limits', 'outside_normal', 'outside_par', 'required_missing', 'out_of_order',
        'late_entry', 'correction', 'manual_entry', 'verification_missing',
        'identity_mismatch', 'wrong_material', 'over_consumption'));

ALTER TABLE lot_containers ADD COLUMN remaining numeric;
UPDATE lot_containers SET remaining = quantity;
ALTER TABLE lot_containers ALTER COLUMN remaining SET NOT NULL,
    ADD CHECK (remaining >= 0 AND remaining <= quantity);
GRANT UPDATE (remaining) ON lot_containers TO opencdmo_app;

ALTER TABLE lots
    ADD COLUMN origin_batch_id uuid,
    ADD COLUMN origin_step text CHECK (length(origin_step) <= 64),
    ADD COLUMN donor_id text CHECK (length(donor_id) BETWEEN 1 AND 120),
    ADD COLUMN coi_label text CHECK (length(coi_label) BETWEEN 1 AND 120),
    ADD COLUMN apheresis_id text CHECK (length(apheresis_id) BETWEEN 1 AND 120),
    ADD FOREIGN KEY (tenant_id, origin_batch_id) REFERENCES batches (tenant_id, id),
    ADD CHECK ((origin_batch_id IS NULL) = (origin_step IS NULL));
CREATE INDEX lots_origin ON lots (tenant_id, origin_batch_id) WHERE origin_batch_id IS NOT NULL;
CREATE INDEX lots_supplier_lot ON lots (tenant_id, supplier_lot);

-- One use of a container in a step of a batch: the quantity as the operator gave it and as
-- taken off the container (in the container's unit).
CREATE TABLE batch_consumptions (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    batch_id uuid NOT NULL,
    step text NOT NULL CHECK (length(step) BETWEEN 1 AND 64),
    material text CHECK (length(material) BETWEEN 1 AND 64),
    container_id uuid NOT NULL,
    lot_id uuid NOT NULL,
    material_id uuid NOT NULL,
    quantity numeric NOT NULL CHECK (quantity > 0),
    unit text NOT NULL CHECK (length(unit) BETWEEN 1 AND 64),
    container_quantity numeric NOT NULL CHECK (container_quantity > 0),
    container_unit text NOT NULL CHECK (length(container_unit) BETWEEN 1 AND 64),
    consumed_by uuid NOT NULL REFERENCES users (id),
    consumed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, batch_id) REFERENCES batches (tenant_id, id),
    FOREIGN KEY (tenant_id, container_id) REFERENCES lot_containers (tenant_id, id),
    FOREIGN KEY (tenant_id, lot_id) REFERENCES lots (tenant_id, id),
    FOREIGN KEY (tenant_id, material_id) REFERENCES materials (tenant_id, id)
);
CREATE INDEX batch_consumptions_batch ON batch_consumptions (tenant_id, batch_id, consumed_at);
CREATE INDEX batch_consumptions_lot ON batch_consumptions (tenant_id, lot_id);

-- A container (part of it) kept for a batch: not available to other batches while active.
CREATE TABLE batch_reservations (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    batch_id uuid NOT NULL,
    material text NOT NULL CHECK (length(material) BETWEEN 1 AND 64),
    container_id uuid NOT NULL,
    quantity numeric NOT NULL CHECK (quantity >= 0),
    reserved_by uuid NOT NULL REFERENCES users (id),
    reserved_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    released_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, batch_id) REFERENCES batches (tenant_id, id),
    FOREIGN KEY (tenant_id, container_id) REFERENCES lot_containers (tenant_id, id)
);
CREATE INDEX batch_reservations_container ON batch_reservations (tenant_id, container_id)
    WHERE released_at IS NULL;
CREATE INDEX batch_reservations_batch ON batch_reservations (tenant_id, batch_id);

-- The genealogy graph: a lot went into a batch, or a batch produced a lot. Written with the
-- consumption or the output lot; traces walk it both ways on the two indexes.
CREATE TABLE genealogy_links (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    parent_id uuid NOT NULL,
    parent_kind text NOT NULL CHECK (parent_kind IN ('lot', 'batch')),
    child_id uuid NOT NULL,
    child_kind text NOT NULL CHECK (child_kind IN ('lot', 'batch')),
    quantity numeric CHECK (quantity > 0),
    unit text CHECK (length(unit) BETWEEN 1 AND 64),
    linked_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    CHECK (parent_kind <> child_kind)
);
CREATE INDEX genealogy_links_parent ON genealogy_links (tenant_id, parent_id, child_id);
CREATE INDEX genealogy_links_child ON genealogy_links (tenant_id, child_id, parent_id);
"""


def upgrade() -> None:
    run(TABLES)
    run(protect_tenant_table("batch_consumptions", "SELECT, INSERT"))
    run(append_only("batch_consumptions"))
    grants = "SELECT, INSERT, UPDATE (quantity, released_at)"
    run(protect_tenant_table("batch_reservations", grants))
    run(protect_tenant_table("genealogy_links", "SELECT, INSERT"))
    run(append_only("genealogy_links"))


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
