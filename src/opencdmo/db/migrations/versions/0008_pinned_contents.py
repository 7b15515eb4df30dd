"""What a recipe revision's steps and QC methods were when saved: content-addressed, kept
for ever.

Every step, sampling point and release specification of a revision pins the content hash of
its library item. The content behind each hash is kept here, so a revision means the same
after its library item is upgraded or its fork edited: its checks, diffs, printable record
and signatures use the pinned content.

Revision ID: 0008
Revises: 0007
"""

from opencdmo.db.rls import append_only, protect_tenant_table
from opencdmo.db.script import run

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("""
CREATE TABLE pinned_contents (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    content_hash text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    kind text NOT NULL CHECK (kind IN ('unit_operation', 'method')),
    slug text NOT NULL,
    version text NOT NULL,
    content jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, content_hash)
);
""")
    run(protect_tenant_table("pinned_contents", "SELECT, INSERT"))
    run(append_only("pinned_contents"))


def downgrade() -> None:
    raise NotImplementedError("what approved revisions pinned is never dropped by a downgrade")
