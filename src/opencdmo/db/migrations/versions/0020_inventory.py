"""Inventory: the tenant's material master, lots received into quarantine, their containers,
and each lot's status changes (append-only).

Revision ID: 0020
Revises: 0019
"""

from opencdmo.db.rls import append_only, protect_tenant_table
from opencdmo.db.script import run

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

STATUSES = "('quarantine', 'released', 'rejected', 'on_hold', 'consumed')"

TABLES = f"""
CREATE TABLE materials (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    code text NOT NULL CHECK (length(code) BETWEEN 1 AND 64),
    name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    material_type text NOT NULL CHECK (material_type IN (
        'raw_material', 'consumable', 'reagent', 'starting_material', 'intermediate',
        'product')),
    storage_condition text NOT NULL DEFAULT '' CHECK (length(storage_condition) <= 200),
    shelf_life_days integer CHECK (shelf_life_days BETWEEN 1 AND 36500),
    default_unit text NOT NULL CHECK (length(default_unit) BETWEEN 1 AND 64),
    library_item_id uuid,
    created_by uuid REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, code),
    FOREIGN KEY (tenant_id, library_item_id) REFERENCES library_items (tenant_id, id)
);

CREATE TABLE lots (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    material_id uuid NOT NULL,
    lot_number text NOT NULL CHECK (length(lot_number) BETWEEN 1 AND 120),
    supplier text NOT NULL CHECK (length(btrim(supplier)) BETWEEN 1 AND 200),
    supplier_lot text NOT NULL CHECK (length(btrim(supplier_lot)) BETWEEN 1 AND 120),
    quantity numeric NOT NULL CHECK (quantity > 0),
    unit text NOT NULL CHECK (length(unit) BETWEEN 1 AND 64),
    expiry_date date,
    status text NOT NULL DEFAULT 'quarantine' CHECK (status IN {STATUSES}),
    received_by uuid NOT NULL REFERENCES users (id),
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    coa_note text CHECK (length(coa_note) <= 4000),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, material_id, lot_number),
    FOREIGN KEY (tenant_id, material_id) REFERENCES materials (tenant_id, id)
);
CREATE INDEX lots_status ON lots (tenant_id, status, received_at);

CREATE TABLE lot_containers (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    lot_id uuid NOT NULL,
    number integer NOT NULL CHECK (number >= 1),
    quantity numeric NOT NULL CHECK (quantity > 0),
    unit text NOT NULL CHECK (length(unit) BETWEEN 1 AND 64),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, lot_id, number),
    FOREIGN KEY (tenant_id, lot_id) REFERENCES lots (tenant_id, id)
);

CREATE TABLE lot_status_changes (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    lot_id uuid NOT NULL,
    from_status text CHECK (from_status IN {STATUSES}),
    to_status text NOT NULL CHECK (to_status IN {STATUSES}),
    reason text NOT NULL CHECK (length(btrim(reason)) BETWEEN 1 AND 2000),
    changed_by uuid NOT NULL REFERENCES users (id),
    changed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    signature_id uuid,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, lot_id) REFERENCES lots (tenant_id, id),
    FOREIGN KEY (tenant_id, signature_id) REFERENCES signatures (tenant_id, id)
);
CREATE INDEX lot_status_changes_lot ON lot_status_changes (tenant_id, lot_id, changed_at);
"""


def upgrade() -> None:
    run(TABLES)
    run(protect_tenant_table("materials", "SELECT, INSERT"))
    run(protect_tenant_table("lots", "SELECT, INSERT, UPDATE (status, updated_at)"))
    run(protect_tenant_table("lot_containers", "SELECT, INSERT"))
    run(protect_tenant_table("lot_status_changes", "SELECT, INSERT"))
    run(append_only("lot_status_changes"))


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
