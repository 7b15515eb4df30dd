"""Roles granted at one site: permissions scoped below the tenant (batches, equipment and
inventory are per site). A member's tenant-wide roles apply at every site; a site role only
at its site.

Revision ID: 0014
Revises: 0012
"""

from opencdmo.db.rls import protect_tenant_table
from opencdmo.db.script import run

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("""
CREATE TABLE site_role_assignments (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    membership_id uuid NOT NULL,
    site_id uuid NOT NULL,
    role text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, membership_id, site_id, role),
    FOREIGN KEY (tenant_id, membership_id) REFERENCES memberships (tenant_id, id),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id)
);
""")
    run(protect_tenant_table("site_role_assignments", "SELECT, INSERT, DELETE"))


def downgrade() -> None:
    run("DROP TABLE site_role_assignments")
