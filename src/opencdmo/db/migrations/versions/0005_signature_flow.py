"""Per-tenant signature flow for master recipes: how many QA approvals a revision needs.

Revision ID: 0005
Revises: 0004
"""

from opencdmo.db.script import run

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("""
ALTER TABLE tenants ADD COLUMN recipe_approvers integer NOT NULL DEFAULT 1
    CHECK (recipe_approvers BETWEEN 1 AND 3);
GRANT UPDATE (recipe_approvers) ON tenants TO opencdmo_app;
""")


def downgrade() -> None:
    run("ALTER TABLE tenants DROP COLUMN recipe_approvers")
