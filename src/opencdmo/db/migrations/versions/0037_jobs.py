"""Background jobs: a queue on one table, worked by ``opencdmo worker``.

``background_jobs`` is a **global** table (no ``tenant_id`` column, no row-level security):
the worker claims jobs of every tenant with ``FOR UPDATE SKIP LOCKED`` before it knows whose
they are. A job carries the tenant it runs for (``for_tenant``) and who asked (``actor_id``,
none: the system actor); the worker runs it in that tenant's scope. No route reads this
table: what a person waits for (a package's verification) is shown from a tenant table the
job writes its progress to (``transfer_jobs``), under the tenant's policy.

A job is enqueued in the transaction of the command that asks for it, so it commits or rolls
back with the command's data; ``pg_notify('opencdmo_jobs', kind)`` wakes the workers when that
transaction commits. ``dedupe_key`` (unique when set) makes enqueueing the same work twice a
no-op (a periodic run, a retried request). A running job proves it is alive through
``heartbeat_at``; one whose worker has stopped (killed) is taken again once its heartbeat is
older than ``job_stale_seconds``.

``lots.status`` gains ``expired``: the lot expiry job stores it once the expiry date has
passed (it was only computed when read), audited as the system actor.

Revision ID: 0037
Revises: 0036
"""

from opencdmo.db.script import run

revision = "0037"
down_revision = "0036"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE background_jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind text NOT NULL CHECK (length(kind) BETWEEN 1 AND 100),
    for_tenant uuid REFERENCES tenants (id),
    actor_id uuid REFERENCES users (id),
    args jsonb NOT NULL DEFAULT '{}'::jsonb,
    dedupe_key text UNIQUE CHECK (length(dedupe_key) <= 400),
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    run_after timestamptz NOT NULL DEFAULT clock_timestamp(),
    locked_by text CHECK (length(locked_by) <= 200),
    heartbeat_at timestamptz,
    error text CHECK (length(error) <= 4000),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz
);
CREATE INDEX background_jobs_ready ON background_jobs (run_after) WHERE state = 'queued';
CREATE INDEX background_jobs_running ON background_jobs (heartbeat_at) WHERE state = 'running';
GRANT SELECT, INSERT ON background_jobs TO opencdmo_app;
GRANT UPDATE (state, attempts, run_after, locked_by, heartbeat_at, error, finished_at)
    ON background_jobs TO opencdmo_app;

ALTER TABLE lots DROP CONSTRAINT lots_status_check;
ALTER TABLE lots ADD CONSTRAINT lots_status_check
    CHECK (status IN ('quarantine', 'released', 'rejected', 'on_hold', 'consumed', 'expired'));
"""


def upgrade() -> None:
    run(TABLES)


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
