"""Setpoint writes and the OPC UA trust list. A batch's setpoint writes: each attempt to write
a phase's parameter values to the nodes of the unit bound to its step, claimed before the
write (one open write per unit, one attempt per idempotency key) and finished with its
outcome and each value's read-back. The tenant's trusted OPC UA server certificates (DER,
SHA-256 thumbprint, subject, expiry), added and removed by an administrator; a removed one
stays with who removed it, when and why. A new kind of batch exception, setpoint_failed.

Revision ID: 0030
Revises: 0029
"""

from opencdmo.db.rls import protect_tenant_table
from opencdmo.db.script import run

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

TABLES = """
ALTER TABLE batch_exceptions DROP CONSTRAINT batch_exceptions_kind_check,
    ADD CONSTRAINT batch_exceptions_kind_check CHECK (kind IN (
        'outside_limits', 'outside_normal', 'outside_par', 'required_missing', 'out_of_order',
        'late_entry', 'correction', 'manual_entry', 'verification_missing',
        'identity_mismatch', 'wrong_material', 'over_consumption', 'equipment_not_ready',
        'equipment_excursion', 'setpoint_failed'));

CREATE TABLE batch_setpoint_writes (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    batch_id uuid NOT NULL,
    step text NOT NULL CHECK (length(step) BETWEEN 1 AND 64),
    phase text NOT NULL CHECK (length(phase) BETWEEN 1 AND 64),
    equipment_id uuid NOT NULL,
    idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    requested jsonb NOT NULL,
    results jsonb,
    outcome text CHECK (outcome IN ('ok', 'failed', 'abandoned')),
    written_by uuid NOT NULL REFERENCES users (id),
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, batch_id) REFERENCES batches (tenant_id, id),
    FOREIGN KEY (tenant_id, equipment_id) REFERENCES equipment (tenant_id, id),
    CHECK ((outcome IS NULL) = (finished_at IS NULL))
);
-- One attempt per key (a retry is given the first), one open write per unit.
CREATE UNIQUE INDEX batch_setpoint_writes_key
    ON batch_setpoint_writes (tenant_id, batch_id, idempotency_key);
CREATE UNIQUE INDEX batch_setpoint_writes_open
    ON batch_setpoint_writes (tenant_id, equipment_id) WHERE finished_at IS NULL;

CREATE TABLE opcua_trusted_certificates (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    thumbprint text NOT NULL CHECK (thumbprint ~ '^([0-9A-F]{2}:){31}[0-9A-F]{2}$'),
    certificate bytea NOT NULL CHECK (length(certificate) BETWEEN 1 AND 65536),
    subject text NOT NULL CHECK (length(subject) <= 2000),
    not_after timestamptz NOT NULL,
    added_by uuid NOT NULL REFERENCES users (id),
    added_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    removed_by uuid REFERENCES users (id),
    removed_at timestamptz,
    removal_reason text CHECK (length(removal_reason) BETWEEN 1 AND 2000),
    PRIMARY KEY (tenant_id, id),
    CHECK ((removed_at IS NULL) = (removed_by IS NULL)),
    CHECK ((removed_at IS NULL) = (removal_reason IS NULL))
);
-- A certificate is trusted once at a time.
CREATE UNIQUE INDEX opcua_trusted_current
    ON opcua_trusted_certificates (tenant_id, thumbprint) WHERE removed_at IS NULL;
"""


def upgrade() -> None:
    run(TABLES)
    run(
        protect_tenant_table(
            "batch_setpoint_writes", "SELECT, INSERT, UPDATE (results, outcome, finished_at)"
        )
    )
    run(
        protect_tenant_table(
            "opcua_trusted_certificates",
            "SELECT, INSERT, UPDATE (removed_by, removed_at, removal_reason)",
        )
    )


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
