"""Master recipes published to the HUB: the tenant's HUB item a recipe is published as.

Revision ID: 0006
Revises: 0005
"""

from opencdmo.db.script import run

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("""
ALTER TABLE master_recipes ADD COLUMN published_item_id uuid REFERENCES hub_items (id);
GRANT UPDATE (published_item_id) ON master_recipes TO opencdmo_app;
""")


def downgrade() -> None:
    run("ALTER TABLE master_recipes DROP COLUMN published_item_id")
