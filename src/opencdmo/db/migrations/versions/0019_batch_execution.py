"""Batch execution: the state of every phase, typed exceptions and their disposition,
deviations, second-person verifications, chain-of-identity checks, the chain of custody, the
batch's release or rejection, and the tenant's exception rules.

Revision ID: 0019
Revises: 0018
"""

from opencdmo.db.rls import append_only, protect_tenant_table
from opencdmo.db.script import run

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

STATES = "('idle', 'running', 'held', 'paused', 'stopped', 'aborted', 'complete')"

TABLES = f"""
ALTER TABLE tenants
    ADD COLUMN exception_severities jsonb NOT NULL DEFAULT '{{}}'::jsonb
        CHECK (jsonb_typeof(exception_severities) = 'object'),
    ADD COLUMN late_entry_minutes integer NOT NULL DEFAULT 30
        CHECK (late_entry_minutes BETWEEN 1 AND 10080);
GRANT UPDATE (exception_severities, late_entry_minutes) ON tenants TO opencdmo_app;

ALTER TABLE batches
    ADD COLUMN started_at timestamptz,
    ADD COLUMN ended_at timestamptz,
    ADD COLUMN disposition text CHECK (disposition IN ('released', 'rejected')),
    ADD COLUMN disposition_signature_id uuid,
    ADD COLUMN dispositioned_at timestamptz,
    ADD FOREIGN KEY (tenant_id, disposition_signature_id) REFERENCES signatures (tenant_id, id),
    ADD CHECK ((disposition IS NULL) = (disposition_signature_id IS NULL));
GRANT UPDATE (started_at, ended_at, disposition, disposition_signature_id, dispositioned_at)
    ON batches TO opencdmo_app;

-- One row per phase of the control recipe, made with the batch: its place in recipe order
-- and its ISA-88 state (operations and unit procedures take theirs from their phases).
CREATE TABLE batch_phases (
    tenant_id uuid NOT NULL,
    batch_id uuid NOT NULL,
    position integer NOT NULL CHECK (position >= 0),
    procedure text NOT NULL,
    step text NOT NULL,
    phase text NOT NULL,
    status text NOT NULL DEFAULT 'idle' CHECK (status IN {STATES}),
    started_at timestamptz,
    started_by uuid REFERENCES users (id),
    ended_at timestamptz,
    ended_by uuid REFERENCES users (id),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, batch_id, step, phase),
    UNIQUE (tenant_id, batch_id, position),
    FOREIGN KEY (tenant_id, batch_id) REFERENCES batches (tenant_id, id)
);

CREATE TABLE deviations (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    batch_id uuid NOT NULL,
    number text NOT NULL CHECK (length(number) BETWEEN 1 AND 120),
    classification text NOT NULL CHECK (classification IN ('minor', 'major', 'critical')),
    description text NOT NULL CHECK (length(btrim(description)) > 0),
    impact text,
    root_cause text,
    capa_reference text,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    opened_by uuid NOT NULL REFERENCES users (id),
    opened_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    closed_by uuid REFERENCES users (id),
    closed_at timestamptz,
    close_signature_id uuid,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, number),
    FOREIGN KEY (tenant_id, batch_id) REFERENCES batches (tenant_id, id),
    FOREIGN KEY (tenant_id, close_signature_id) REFERENCES signatures (tenant_id, id),
    CHECK ((status = 'closed') = (close_signature_id IS NOT NULL))
);
CREATE INDEX deviations_batch ON deviations (tenant_id, batch_id, opened_at);

-- Raised by the system, never typed in: the kind, its severity from the tenant's table when
-- it was raised, and what it is about. A disposition is given once.
CREATE TABLE batch_exceptions (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    batch_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN (
        'outside_limits', 'outside_normal', 'outside_par', 'required_missing', 'out_of_order',
        'late_entry', 'correction', 'manual_entry', 'verification_missing',
        'identity_mismatch')),
    severity text NOT NULL CHECK (severity IN ('minor', 'major', 'critical')),
    step text,
    phase text,
    field text,
    entry_id uuid,
    message text NOT NULL CHECK (length(message) BETWEEN 1 AND 2000),
    raised_by uuid REFERENCES users (id),
    raised_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    disposition text CHECK (disposition IN ('accepted', 'escalated')),
    disposition_comment text,
    dispositioned_by uuid REFERENCES users (id),
    dispositioned_at timestamptz,
    deviation_id uuid,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, batch_id) REFERENCES batches (tenant_id, id),
    FOREIGN KEY (tenant_id, entry_id) REFERENCES batch_entries (tenant_id, id),
    FOREIGN KEY (tenant_id, deviation_id) REFERENCES deviations (tenant_id, id),
    CHECK ((disposition IS NULL) = (dispositioned_by IS NULL)),
    CHECK (disposition IS DISTINCT FROM 'escalated' OR deviation_id IS NOT NULL),
    CHECK (disposition IS DISTINCT FROM 'accepted'
           OR length(btrim(coalesce(disposition_comment, ''))) > 0)
);
CREATE INDEX batch_exceptions_batch ON batch_exceptions (tenant_id, batch_id, raised_at, id);
CREATE INDEX batch_exceptions_open ON batch_exceptions (tenant_id, batch_id)
    WHERE disposition IS NULL;

-- A second person's e-signature on a performed phase: verified, or witnessed.
CREATE TABLE batch_verifications (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    batch_id uuid NOT NULL,
    step text NOT NULL,
    phase text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('verified', 'witnessed')),
    signature_id uuid NOT NULL,
    verified_by uuid NOT NULL REFERENCES users (id),
    verified_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, batch_id, step, phase, kind),
    FOREIGN KEY (tenant_id, batch_id, step, phase)
        REFERENCES batch_phases (tenant_id, batch_id, step, phase),
    FOREIGN KEY (tenant_id, signature_id) REFERENCES signatures (tenant_id, id)
);

-- The COI label scanned or typed on the container at a step, and whether it matched.
CREATE TABLE batch_identity_checks (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    batch_id uuid NOT NULL,
    step text NOT NULL CHECK (length(step) BETWEEN 1 AND 64),
    scanned text NOT NULL CHECK (length(scanned) BETWEEN 1 AND 200),
    matched boolean NOT NULL,
    checked_by uuid NOT NULL REFERENCES users (id),
    checked_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, batch_id) REFERENCES batches (tenant_id, id)
);
CREATE INDEX batch_identity_checks_step
    ON batch_identity_checks (tenant_id, batch_id, step, checked_at);

-- Who held the material, where, from when (until the next row of the batch).
CREATE TABLE batch_custody (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    batch_id uuid NOT NULL,
    holder_id uuid NOT NULL REFERENCES users (id),
    location text NOT NULL CHECK (length(btrim(location)) BETWEEN 1 AND 200),
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, batch_id) REFERENCES batches (tenant_id, id)
);
CREATE INDEX batch_custody_batch ON batch_custody (tenant_id, batch_id, received_at);
"""


def upgrade() -> None:
    run(TABLES)
    run(
        protect_tenant_table(
            "batch_phases",
            "SELECT, INSERT, UPDATE (status, started_at, started_by, ended_at, ended_by, "
            "updated_at)",
        )
    )
    run(
        protect_tenant_table(
            "deviations",
            "SELECT, INSERT, UPDATE (impact, root_cause, capa_reference, status, closed_by, "
            "closed_at, close_signature_id, updated_at)",
        )
    )
    run(
        protect_tenant_table(
            "batch_exceptions",
            "SELECT, INSERT, UPDATE (disposition, disposition_comment, dispositioned_by, "
            "dispositioned_at, deviation_id)",
        )
    )
    for table in ("batch_verifications", "batch_identity_checks", "batch_custody"):
        run(protect_tenant_table(table, "SELECT, INSERT"))
        run(append_only(table))


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
