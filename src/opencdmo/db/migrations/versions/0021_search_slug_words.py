"""HUB search documents hold the slug word by word as well as whole, so that a slug part the
parser reads as a number when alone ("84e4d9": "84e4", "d9") is found by the query's words.

Revision ID: 0021
Revises: 0020
"""

from opencdmo.db.script import run

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Items published from now on get it from hub.content.search_text; these are the rest.
    run(
        "UPDATE hub_items SET search = search "
        "|| setweight(to_tsvector('english', replace(slug, '-', ' ')), 'A')"
    )


def downgrade() -> None:
    pass  # the extra words do no harm
