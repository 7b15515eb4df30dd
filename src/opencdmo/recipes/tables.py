"""Master recipes and their revisions (tenant tables; revisions are append-only)."""

from __future__ import annotations

from piccolo.columns import JSONB, UUID, Integer, Text, Timestamptz
from piccolo.table import Table


class MasterRecipe(Table, tablename="master_recipes"):
    tenant_id = UUID()
    id = UUID(primary_key=True)
    name = Text()
    product = Text(default="")
    status = Text(default="draft")
    current_revision = Integer(default=1)
    effective_revision = Integer(null=True, default=None)
    author_id = UUID(null=True, default=None)
    source_hub_version_id = UUID(null=True, default=None)
    effective_at = Timestamptz(null=True, default=None)
    retired_reason = Text(null=True, default=None)
    published_item_id = UUID(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class RecipeRevision(Table, tablename="recipe_revisions"):
    tenant_id = UUID()
    id = UUID(primary_key=True)
    recipe_id = UUID()
    revision = Integer()
    content = JSONB()
    content_hash = Text()
    message = Text(default="")
    saved_by = UUID(null=True, default=None)
    saved_at = Timestamptz()


class PinnedContent(Table, tablename="pinned_contents"):
    """The content of a library item as a recipe revision pinned it (append-only)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    content_hash = Text()
    kind = Text()
    slug = Text()
    version = Text()
    content = JSONB()
    created_at = Timestamptz()


class BatchmlImport(Table, tablename="batchml_imports"):
    """A draft master recipe imported from a BatchML document: the document's identity and
    the gap report (append-only)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    recipe_id = UUID()
    document_sha256 = Text()
    document_id = Text()
    document_version = Text(default="")
    document_name = Text(default="")
    size_bytes = Integer()
    gaps = JSONB()
    imported_by = UUID(null=True, default=None)
    imported_at = Timestamptz()


class RecipeDocument(Table, tablename="recipe_documents"):
    """A file attached to a master recipe (an SOP, a report...): kept when removed, with who,
    when and why."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    recipe_id = UUID()
    file_id = UUID()
    title = Text()
    kind = Text()
    added_by = UUID()
    added_at = Timestamptz()
    removed_by = UUID(null=True, default=None)
    removed_at = Timestamptz(null=True, default=None)
    removal_reason = Text(null=True, default=None)
