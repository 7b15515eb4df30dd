"""BatchML imports: a master recipe imported from another system's BatchML document, with
the document's identity (its SHA-256, its MasterRecipe ID and version, its name and size),
who imported it and when, and the gap report: every element of the document that has no
counterpart in the tenant (kind, the document's id and name, why). One per draft recipe the
import created; append-only.

Revision ID: 0032
Revises: 0031
"""

from opencdmo.db.rls import append_only, protect_tenant_table
from opencdmo.db.script import run

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None

TABLE = """
CREATE TABLE batchml_imports (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    recipe_id uuid NOT NULL,
    document_sha256 text NOT NULL CHECK (document_sha256 ~ '^[0-9a-f]{64}$'),
    document_id text NOT NULL CHECK (length(document_id) BETWEEN 1 AND 500),
    document_version text NOT NULL DEFAULT '' CHECK (length(document_version) <= 500),
    document_name text NOT NULL DEFAULT '' CHECK (length(document_name) <= 500),
    size_bytes integer NOT NULL CHECK (size_bytes > 0),
    gaps jsonb NOT NULL CHECK (jsonb_typeof(gaps) = 'array'),
    imported_by uuid REFERENCES users (id),
    imported_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, recipe_id),
    FOREIGN KEY (tenant_id, recipe_id) REFERENCES master_recipes (tenant_id, id)
);
CREATE INDEX batchml_imports_newest ON batchml_imports (tenant_id, imported_at DESC);
"""


def upgrade() -> None:
    run(TABLE)
    run(protect_tenant_table("batchml_imports", "SELECT, INSERT"))
    run(append_only("batchml_imports"))


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
