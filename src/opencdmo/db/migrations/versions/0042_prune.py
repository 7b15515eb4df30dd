"""The job worker may remove what is spent: finished background jobs past their retention
(``OPENCDMO_JOB_RETENTION_DAYS``) and single sign-on requests older than a day (each is valid
for minutes and used once). Neither is a GMP record: the audit trail holds what the jobs did,
and a signature records how its signer re-authenticated.

Revision ID: 0042
Revises: 0041
"""

from opencdmo.db.script import run

revision = "0042"
down_revision = "0041"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("GRANT DELETE ON background_jobs TO opencdmo_app")


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
