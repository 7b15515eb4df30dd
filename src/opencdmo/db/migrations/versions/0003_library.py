"""Tenant library: installed copies and forks of HUB versions, with their source and hash.

Revision ID: 0003
Revises: 0002
"""

from opencdmo.db.rls import protect_tenant_table
from opencdmo.db.script import run

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE library_items (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    source text NOT NULL CHECK (source IN ('installed', 'forked')),
    hub_item_id uuid NOT NULL REFERENCES hub_items (id),
    hub_version_id uuid NOT NULL REFERENCES hub_versions (id),
    kind text NOT NULL,
    slug text NOT NULL,
    name text NOT NULL,
    version text NOT NULL,
    content jsonb NOT NULL,
    content_hash text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    revision integer NOT NULL DEFAULT 1,
    author_id uuid REFERENCES users (id),
    published_item_id uuid REFERENCES hub_items (id),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id)
);
-- One installed copy per HUB item and tenant; forks are as many as the tenant makes.
CREATE UNIQUE INDEX library_items_installed ON library_items (tenant_id, hub_item_id)
    WHERE source = 'installed';
CREATE INDEX library_items_kind ON library_items (tenant_id, kind, name);

-- Counting installs across tenants without reading any tenant's rows: runs as the owner.
CREATE FUNCTION hub_count_install(p_item uuid) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public AS $$
    UPDATE hub_items SET install_count = install_count + 1 WHERE id = p_item
$$;
REVOKE ALL ON FUNCTION hub_count_install(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hub_count_install(uuid) TO opencdmo_app;
"""


def upgrade() -> None:
    run(TABLES)
    run(
        protect_tenant_table(
            "library_items",
            "SELECT, INSERT, UPDATE (hub_version_id, name, version, content, content_hash, revision,"
            " author_id, published_item_id, updated_at)",
        )
    )


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
