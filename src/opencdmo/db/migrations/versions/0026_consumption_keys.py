"""A batch's consumptions carry the key their client made for them, so that a retry (a lost
answer, a second tap) is given the first use instead of using the container again.

Revision ID: 0026
Revises: 0025
"""

from opencdmo.db.script import run

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run(
        """
ALTER TABLE batch_consumptions ADD COLUMN idempotency_key text
    CHECK (length(idempotency_key) BETWEEN 1 AND 200);
CREATE UNIQUE INDEX batch_consumptions_idempotency
    ON batch_consumptions (tenant_id, batch_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
"""
    )


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
