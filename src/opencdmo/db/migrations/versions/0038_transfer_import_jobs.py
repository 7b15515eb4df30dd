"""A received package's import runs as a job too: ``transfer_jobs`` (the progress a person
watches) takes the ``import`` stage besides ``upload`` and ``verify``.

Revision ID: 0038
Revises: 0037
"""

from __future__ import annotations

from opencdmo.db.script import run

revision = "0038"
down_revision = "0037"
branch_labels = None
depends_on = None

STAGES = """
ALTER TABLE transfer_jobs DROP CONSTRAINT transfer_jobs_stage_check;
ALTER TABLE transfer_jobs ADD CONSTRAINT transfer_jobs_stage_check
    CHECK (stage IN ('upload', 'verify', 'import'));
"""


def upgrade() -> None:
    run(STAGES)


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
