"""Indexes for the dashboard's work queues: a tenant's recipes by state (awaiting signature,
drafts, returned) and by when they were made effective (recently effective).

Revision ID: 0016
Revises: 0010
"""

from opencdmo.db.script import run

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("""
CREATE INDEX master_recipes_status ON master_recipes (tenant_id, status);
CREATE INDEX master_recipes_effective ON master_recipes (tenant_id, effective_at DESC)
    WHERE effective_revision IS NOT NULL;
""")


def downgrade() -> None:
    run("DROP INDEX master_recipes_effective; DROP INDEX master_recipes_status;")
