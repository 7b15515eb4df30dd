"""A field's entries are found by an index: each new entry reads the entry of its idempotency
key and the entries of its field, and without this index (the unique one covers first entries
only) that read scanned every entry of the batch, so an entry cost more the fuller the batch.

Revision ID: 0043
Revises: 0042
"""

from opencdmo.db.script import run

revision = "0043"
down_revision = "0042"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run(
        "CREATE INDEX batch_entries_field ON batch_entries (tenant_id, batch_id, step, phase, field)"
    )


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
