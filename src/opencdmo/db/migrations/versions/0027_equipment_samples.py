"""Equipment samples and capture leases. Samples: every change of every captured signal, partitioned by month of its
source time, with a default partition so that no sample is ever refused, and a function the
capture worker calls to make the coming months' partitions ahead of time. One row per
(unit, signal, source time): a replay stores nothing twice. Append-only. Leases: which
capture worker captures a unit, until when (a worker renews its leases every few seconds;
another takes an expired one).

Raw SQL throughout: Piccolo cannot declare a partitioned table or its partitions.

Revision ID: 0027
Revises: 0026
"""

from opencdmo.db.rls import TENANT_SETTING, append_only, protect_tenant_table
from opencdmo.db.script import run

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE equipment_samples (
    tenant_id uuid NOT NULL,
    equipment_id uuid NOT NULL,
    signal text NOT NULL CHECK (length(signal) BETWEEN 1 AND 64),
    value double precision,
    text_value text CHECK (length(text_value) <= 2000),
    -- an OPC UA status code is an unsigned 32-bit number (Bad codes do not fit an int4)
    status_code bigint NOT NULL DEFAULT 0 CHECK (status_code BETWEEN 0 AND 4294967295),
    source_time timestamptz NOT NULL,
    server_time timestamptz,
    stored_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, equipment_id, signal, source_time),
    FOREIGN KEY (tenant_id, equipment_id) REFERENCES equipment (tenant_id, id)
) PARTITION BY RANGE (source_time);
"""

QUOTED_TENANT = TENANT_SETTING.replace("'", "''")  # inside a string literal of the function

PARTITION_PROTECTION = f"""
CREATE FUNCTION equipment_samples_protect(part text) RETURNS void
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', part);
    EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', part);
    EXECUTE format(
        'CREATE POLICY tenant_isolation ON public.%I USING (tenant_id = {QUOTED_TENANT}) '
        'WITH CHECK (tenant_id = {QUOTED_TENANT})', part);
    EXECUTE format(
        'CREATE TRIGGER %I BEFORE TRUNCATE ON public.%I FOR EACH STATEMENT '
        'EXECUTE FUNCTION refuse_change()', part || '_no_truncate', part);
END $$;
REVOKE ALL ON FUNCTION equipment_samples_protect(text) FROM PUBLIC;

-- The month partitions from this month to months_ahead months on; returns how many it made.
-- A month whose samples already went to the default partition stays there (its partition
-- cannot be made without moving them; they are found through the parent all the same).
CREATE FUNCTION equipment_samples_partitions(months_ahead integer DEFAULT 2) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    first date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    month date;
    part text;
    made integer := 0;
BEGIN
    IF months_ahead NOT BETWEEN 0 AND 24 THEN
        RAISE EXCEPTION 'months_ahead must be between 0 and 24, not %', months_ahead;
    END IF;
    -- one maker at a time: two workers starting together do not race on the same month
    PERFORM pg_advisory_xact_lock(hashtext('equipment_samples_partitions'));
    FOR i IN 0..months_ahead LOOP
        month := (first + make_interval(months => i))::date;
        part := 'equipment_samples_p' || to_char(month, 'YYYYMM');
        CONTINUE WHEN to_regclass('public.' || part) IS NOT NULL;
        BEGIN
            EXECUTE format(
                'CREATE TABLE public.%I PARTITION OF public.equipment_samples FOR VALUES FROM (%L) TO (%L)',
                part, month::timestamp AT TIME ZONE 'UTC',
                (month + interval '1 month')::timestamp AT TIME ZONE 'UTC');
            PERFORM equipment_samples_protect(part);
            made := made + 1;
        EXCEPTION WHEN check_violation THEN
            RAISE NOTICE 'samples of % are in the default partition: left there', month;
        END;
    END LOOP;
    RETURN made;
END $$;
REVOKE ALL ON FUNCTION equipment_samples_partitions(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION equipment_samples_partitions(integer) TO opencdmo_app;

CREATE TABLE equipment_samples_default PARTITION OF equipment_samples DEFAULT;
SELECT equipment_samples_protect('equipment_samples_default');
SELECT equipment_samples_partitions(2);
"""


LEASES = """
CREATE TABLE capture_leases (
    tenant_id uuid NOT NULL,
    equipment_id uuid NOT NULL,
    worker text NOT NULL CHECK (length(worker) BETWEEN 1 AND 200),
    acquired_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, equipment_id),
    FOREIGN KEY (tenant_id, equipment_id) REFERENCES equipment (tenant_id, id),
    CHECK (expires_at >= acquired_at)
);
"""


def upgrade() -> None:
    run(TABLES)
    run(LEASES)
    run(
        protect_tenant_table(
            "capture_leases", "SELECT, INSERT, UPDATE (worker, acquired_at, expires_at)"
        )
    )
    run(protect_tenant_table("equipment_samples", "SELECT, INSERT"))
    run(append_only("equipment_samples"))
    run(PARTITION_PROTECTION)


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
