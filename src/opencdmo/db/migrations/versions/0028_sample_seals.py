"""Sample seals: each period of a unit's stored samples is sealed (every signal's count and
SHA-256 digest, and one digest over them) with an event in the tenant's audit trail, so that
a sample changed, added or removed behind the worker's back is found by ``opencdmo audit
verify``. (Written when the capture worker sealed; the job worker's ``equipment.seal`` and
``equipment.reseal`` do it now, into this table unchanged.) A period sealed again (samples stored late: a spool replay, a
server's history read after a reconnect) gets a new version; the newest one counts.
Append-only.

Capture workers: each live capture worker of a tenant, until when (renewed with its leases),
so that workers share the units fairly between them.

Revision ID: 0028
Revises: 0027
"""

from opencdmo.db.rls import append_only, protect_tenant_table
from opencdmo.db.script import run

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

TABLE = """
CREATE TABLE sample_seals (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    equipment_id uuid NOT NULL,
    period_start timestamptz NOT NULL,
    period_end timestamptz NOT NULL,
    version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    samples bigint NOT NULL CHECK (samples >= 0),
    signals jsonb NOT NULL,
    digest text NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
    sealed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, equipment_id, period_start, version),
    FOREIGN KEY (tenant_id, equipment_id) REFERENCES equipment (tenant_id, id),
    CHECK (period_end > period_start)
);
CREATE INDEX sample_seals_end ON sample_seals (tenant_id, equipment_id, period_end DESC);
"""

WORKERS = """
CREATE TABLE capture_workers (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    worker text NOT NULL CHECK (length(worker) BETWEEN 1 AND 200),
    seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, worker),
    CHECK (expires_at >= seen_at)
);
"""


def upgrade() -> None:
    run(TABLE)
    run(protect_tenant_table("sample_seals", "SELECT, INSERT"))
    run(append_only("sample_seals"))
    run(WORKERS)
    run(protect_tenant_table("capture_workers", "SELECT, INSERT, UPDATE (seen_at, expires_at)"))


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
