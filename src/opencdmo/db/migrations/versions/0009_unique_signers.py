"""Per-tenant signature flow: whether one person may sign two stages of a master recipe
revision (default: no).

Revision ID: 0009
Revises: 0008
"""

from opencdmo.db.script import run

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("""
ALTER TABLE tenants ADD COLUMN recipe_unique_signers boolean NOT NULL DEFAULT true;
GRANT UPDATE (recipe_unique_signers) ON tenants TO opencdmo_app;
""")


def downgrade() -> None:
    run("ALTER TABLE tenants DROP COLUMN recipe_unique_signers")
