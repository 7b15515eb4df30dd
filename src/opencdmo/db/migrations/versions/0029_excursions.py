"""Equipment values in batch records and excursion exceptions.

- ``batch_entries.equipment_source``: for an entry taken from the equipment, the samples it
  came from (unit, signal, sample times, aggregate).
- ``tenants.excursion_debounce_seconds``: how long a bound signal may stay outside its
  phase's limits before it is an excursion (``batch_exceptions`` in the manifest).
- A new kind of batch exception, ``equipment_excursion``.
- ``excursion_cursors``: per unit bound to a batch step and per signal, how far its stored
  samples have been evaluated and the excursion open at that point (locked by the evaluator).
- ``batch_excursions``: one row per excursion raised (its exception), with its start, end,
  extreme value and the limits it left; the end and extreme are set once, when it ends.

Revision ID: 0029
Revises: 0028
"""

from opencdmo.db.rls import protect_tenant_table
from opencdmo.db.script import run

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

TABLES = """
ALTER TABLE batch_exceptions DROP CONSTRAINT batch_exceptions_kind_check,
    ADD CONSTRAINT batch_exceptions_kind_check CHECK (kind IN (
        'outside_limits', 'outside_normal', 'outside_par', 'required_missing', 'out_of_order',
        'late_entry', 'correction', 'manual_entry', 'verification_missing',
        'identity_mismatch', 'wrong_material', 'over_consumption', 'equipment_not_ready',
        'equipment_excursion'));

ALTER TABLE tenants
    ADD COLUMN excursion_debounce_seconds integer NOT NULL DEFAULT 60
        CHECK (excursion_debounce_seconds BETWEEN 1 AND 86400);
GRANT UPDATE (excursion_debounce_seconds) ON tenants TO opencdmo_app;

ALTER TABLE batch_entries ADD COLUMN equipment_source jsonb,
    ADD CONSTRAINT batch_entries_equipment_source_check
        CHECK (equipment_source IS NULL OR source = 'equipment');

CREATE TABLE excursion_cursors (
    tenant_id uuid NOT NULL,
    binding_id uuid NOT NULL,
    signal text NOT NULL CHECK (length(signal) BETWEEN 1 AND 64),
    cursor_at timestamptz,
    open_phase text CHECK (length(open_phase) BETWEEN 1 AND 64),
    open_started_at timestamptz,
    open_extreme double precision,
    open_exception_id uuid,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, binding_id, signal),
    FOREIGN KEY (tenant_id, binding_id) REFERENCES batch_equipment (tenant_id, id),
    FOREIGN KEY (tenant_id, open_exception_id) REFERENCES batch_exceptions (tenant_id, id),
    CHECK ((open_started_at IS NULL) = (open_phase IS NULL)),
    CHECK ((open_started_at IS NULL) = (open_extreme IS NULL)),
    CHECK (open_exception_id IS NULL OR open_started_at IS NOT NULL)
);

CREATE TABLE batch_excursions (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    exception_id uuid NOT NULL,
    batch_id uuid NOT NULL,
    binding_id uuid NOT NULL,
    equipment_id uuid NOT NULL,
    step text NOT NULL CHECK (length(step) BETWEEN 1 AND 64),
    phase text NOT NULL CHECK (length(phase) BETWEEN 1 AND 64),
    signal text NOT NULL CHECK (length(signal) BETWEEN 1 AND 64),
    unit text CHECK (length(unit) BETWEEN 1 AND 40),
    low double precision,
    high double precision,
    started_at timestamptz NOT NULL,
    ended_at timestamptz,
    extreme double precision NOT NULL,
    raised_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, exception_id),
    FOREIGN KEY (tenant_id, exception_id) REFERENCES batch_exceptions (tenant_id, id),
    FOREIGN KEY (tenant_id, batch_id) REFERENCES batches (tenant_id, id),
    FOREIGN KEY (tenant_id, binding_id) REFERENCES batch_equipment (tenant_id, id),
    FOREIGN KEY (tenant_id, equipment_id) REFERENCES equipment (tenant_id, id),
    CHECK (low IS NOT NULL OR high IS NOT NULL),
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX batch_excursions_batch ON batch_excursions (tenant_id, batch_id);

-- An excursion's end is set once: an ended excursion does not change again.
CREATE FUNCTION batch_excursions_end_once() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.ended_at IS NOT NULL THEN
        RAISE EXCEPTION 'excursion % has ended: it does not change', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER batch_excursions_end_once BEFORE UPDATE ON batch_excursions
    FOR EACH ROW EXECUTE FUNCTION batch_excursions_end_once();
"""


def upgrade() -> None:
    run(TABLES)
    run(
        protect_tenant_table(
            "excursion_cursors",
            "SELECT, INSERT, UPDATE (cursor_at, open_phase, open_started_at, open_extreme, "
            "open_exception_id, updated_at)",
        )
    )
    run(protect_tenant_table("batch_excursions", "SELECT, INSERT, UPDATE (ended_at, extreme)"))


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
