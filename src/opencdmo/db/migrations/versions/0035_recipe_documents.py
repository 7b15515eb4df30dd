"""Recipe documents: the files attached to a master recipe (an SOP, a development report, a
risk assessment, other), each a stored file with a title and a kind, who attached it and
when; removed with who, when and why, the row kept (only those three columns ever change,
once). The tech-transfer package carries the documents not removed.

Revision ID: 0035
Revises: 0034
"""

from opencdmo.db.rls import protect_tenant_table
from opencdmo.db.script import run

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None

TABLE = """
CREATE TABLE recipe_documents (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    recipe_id uuid NOT NULL,
    file_id uuid NOT NULL,
    title text NOT NULL CHECK (
        length(title) BETWEEN 1 AND 200 AND btrim(title) <> '' AND title !~ '[[:cntrl:]]'),
    kind text NOT NULL CHECK (kind IN ('sop', 'development_report', 'risk_assessment', 'other')),
    added_by uuid NOT NULL REFERENCES users (id),
    added_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    removed_by uuid REFERENCES users (id),
    removed_at timestamptz,
    removal_reason text CHECK (length(removal_reason) BETWEEN 1 AND 2000),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, recipe_id) REFERENCES master_recipes (tenant_id, id),
    FOREIGN KEY (tenant_id, file_id) REFERENCES stored_files (tenant_id, id),
    CHECK ((removed_at IS NULL) = (removed_by IS NULL)
           AND (removed_at IS NULL) = (removal_reason IS NULL)),
    CHECK (removed_at IS NULL OR removed_at >= added_at)
);
CREATE INDEX recipe_documents_of_recipe ON recipe_documents (tenant_id, recipe_id, added_at);

-- A removal is final: a removed document is never changed again, nor any other column.
CREATE FUNCTION recipe_documents_removal_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.removed_at IS NOT NULL
       OR (NEW.tenant_id, NEW.id, NEW.recipe_id, NEW.file_id, NEW.title, NEW.kind,
           NEW.added_by, NEW.added_at)
          IS DISTINCT FROM (OLD.tenant_id, OLD.id, OLD.recipe_id, OLD.file_id, OLD.title,
                            OLD.kind, OLD.added_by, OLD.added_at) THEN
        RAISE EXCEPTION 'a recipe document is only ever marked removed, once';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER recipe_documents_removal_only BEFORE UPDATE ON recipe_documents
    FOR EACH ROW EXECUTE FUNCTION recipe_documents_removal_only();
CREATE TRIGGER recipe_documents_no_delete BEFORE DELETE ON recipe_documents
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER recipe_documents_no_truncate BEFORE TRUNCATE ON recipe_documents
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
"""


def upgrade() -> None:
    run(TABLE)
    run(
        protect_tenant_table(
            "recipe_documents",
            "SELECT, INSERT, UPDATE (removed_by, removed_at, removal_reason)",
        )
    )


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
