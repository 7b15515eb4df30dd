"""An upload's verification runs as a job: its ``transfer_jobs`` row keeps the outcome the
page and the API show once the worker is done, ``findings`` (every finding of a refusal) and
``error`` (why it stopped without an outcome, in words: the package is here already, or its
last attempt failed).

Revision ID: 0041
Revises: 0040
"""

from __future__ import annotations

from opencdmo.db.script import run

revision = "0041"
down_revision = "0040"
branch_labels = None
depends_on = None

COLUMNS = """
ALTER TABLE transfer_jobs
    ADD COLUMN findings jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN error text CHECK (length(error) <= 4000);
GRANT UPDATE (findings, error) ON transfer_jobs TO opencdmo_app;
"""


def upgrade() -> None:
    run(COLUMNS)


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
