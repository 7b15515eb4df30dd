"""Equipment: the tenant's equipment units (of HUB equipment classes, per site) with their
status, due dates, cleaning validity and OPC UA connection description; each unit's
append-only logbook (use by a batch, cleaning, maintenance, calibration, status changes);
and the units bound to a batch's steps. A new kind of batch exception, equipment_not_ready.

Revision ID: 0025
Revises: 0024
"""

from opencdmo.db.rls import append_only, protect_tenant_table
from opencdmo.db.script import run

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

STATUSES = "('available', 'in_use', 'cleaning', 'maintenance', 'out_of_service')"

TABLES = f"""
ALTER TABLE batch_exceptions DROP CONSTRAINT batch_exceptions_kind_check,
    ADD CONSTRAINT batch_exceptions_kind_check CHECK (kind IN (
        'outside_limits', 'outside_normal', 'outside_par', 'required_missing', 'out_of_order',
        'late_entry', 'correction', 'manual_entry', 'verification_missing',
        'identity_mismatch', 'wrong_material', 'over_consumption', 'equipment_not_ready'));

CREATE TABLE equipment (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    code text NOT NULL CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$' AND length(code) <= 64),
    class_slug text NOT NULL CHECK (length(class_slug) BETWEEN 1 AND 64),
    name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    site_id uuid NOT NULL,
    status text NOT NULL DEFAULT 'available' CHECK (status IN {STATUSES}),
    qualification_due date,
    calibration_due date,
    clean_until timestamptz,
    opcua jsonb,
    created_by uuid REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id)
);
-- A code is unique in the tenant, case aside.
CREATE UNIQUE INDEX equipment_code ON equipment (tenant_id, lower(code));

CREATE TABLE equipment_logbook (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    equipment_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('use', 'cleaning', 'maintenance', 'calibration',
                                       'status')),
    note text NOT NULL DEFAULT '' CHECK (length(note) <= 2000),
    batch_id uuid,
    step text CHECK (length(step) BETWEEN 1 AND 64),
    used_from timestamptz,
    used_to timestamptz,
    clean_until timestamptz,
    calibration_due date,
    status_from text CHECK (status_from IN {STATUSES}),
    status_to text CHECK (status_to IN {STATUSES}),
    signature_id uuid,
    performed_by uuid NOT NULL REFERENCES users (id),
    performed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, equipment_id) REFERENCES equipment (tenant_id, id),
    FOREIGN KEY (tenant_id, batch_id) REFERENCES batches (tenant_id, id),
    FOREIGN KEY (tenant_id, signature_id) REFERENCES signatures (tenant_id, id),
    CHECK ((kind = 'use') = (batch_id IS NOT NULL)),
    CHECK (kind NOT IN ('cleaning', 'maintenance', 'calibration') OR signature_id IS NOT NULL),
    CHECK (kind <> 'cleaning' OR clean_until IS NOT NULL),
    CHECK (kind <> 'calibration' OR calibration_due IS NOT NULL),
    CHECK (kind <> 'status' OR status_to IS NOT NULL)
);
CREATE INDEX equipment_logbook_unit ON equipment_logbook (tenant_id, equipment_id, performed_at);

-- A unit bound to a step of a batch, until the step (or the batch) ends.
CREATE TABLE batch_equipment (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    batch_id uuid NOT NULL,
    step text NOT NULL CHECK (length(step) BETWEEN 1 AND 64),
    equipment_id uuid NOT NULL,
    bound_by uuid NOT NULL REFERENCES users (id),
    bound_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    released_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, batch_id) REFERENCES batches (tenant_id, id),
    FOREIGN KEY (tenant_id, equipment_id) REFERENCES equipment (tenant_id, id),
    CHECK (released_at IS NULL OR released_at >= bound_at)
);
-- A unit is in one batch's step at a time.
CREATE UNIQUE INDEX batch_equipment_in_use ON batch_equipment (tenant_id, equipment_id)
    WHERE released_at IS NULL;
CREATE INDEX batch_equipment_batch ON batch_equipment (tenant_id, batch_id);
"""

EQUIPMENT_GRANTS = (
    "SELECT, INSERT, UPDATE (class_slug, name, site_id, status, qualification_due, "
    "calibration_due, clean_until, opcua, updated_at)"
)


def upgrade() -> None:
    run(TABLES)
    run(protect_tenant_table("equipment", EQUIPMENT_GRANTS))
    run(protect_tenant_table("equipment_logbook", "SELECT, INSERT"))
    run(append_only("equipment_logbook"))
    run(protect_tenant_table("batch_equipment", "SELECT, INSERT, UPDATE (released_at)"))


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
