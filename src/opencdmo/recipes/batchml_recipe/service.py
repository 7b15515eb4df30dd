"""The commands and reads of BatchML: a recipe revision exported, a document imported as a
draft master recipe with its gap report (one unit of work), and the gap reports read."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.tx import tenant_transaction, unit_of_work
from opencdmo.errors import Conflict
from opencdmo.hub import library_queries as copies
from opencdmo.recipes import batchml_queries as imports
from opencdmo.recipes import queries
from opencdmo.recipes.batchml_queries import ImportRow, NewImport
from opencdmo.recipes.batchml_recipe._document import MasterRecipeDoc, read_document
from opencdmo.recipes.batchml_recipe._export import MissingPin, RecipeHead, revision_to_batchml
from opencdmo.recipes.batchml_recipe._mapping import map_document, steps_of
from opencdmo.recipes.batchml_recipe._quality import methods_of
from opencdmo.recipes.batchml_recipe._resolution import Resolver, known
from opencdmo.recipes.batchml_recipe._tree import one_line
from opencdmo.recipes.queries import RecipeRow
from opencdmo.recipes.service import _pins as pins
from opencdmo.recipes.service._revisions import create_in, save_in
from opencdmo.scope import TenantContext

IMPORTED = "recipe.imported_from_batchml"


@dataclass(frozen=True)
class Exported:
    xml: bytes
    file_name: str
    revision: int


def _status(row: RecipeRow, revision: int) -> str:
    if revision == row.effective_revision:
        return "effective"
    if revision == row.current_revision:
        return row.status
    return "superseded"


async def library_names() -> dict[str, str]:
    """The names of the tenant's equipment classes and materials by slug (BatchML shows a
    slug with its name), in the open transaction."""
    held = await copies.typed_copies("material", "equipment_class")
    return {c.slug: c.content.name for c in held}


async def master_recipe_batchml(
    ctx: TenantContext, recipe_id: UUID, revision: int | None = None
) -> Exported:
    """A revision of the recipe as BatchML (default: the effective one; a 409 when there is
    none and no revision is named)."""
    async with tenant_transaction(ctx):
        row = await queries.recipe(recipe_id)
        number = revision if revision is not None else row.effective_revision
        if number is None:
            raise Conflict(
                "This recipe has no effective revision: name the revision to export (?revision=N).",
                details={"status": row.status},
            )
        content = await queries.content(recipe_id, number)
        hashed = await queries.stored_hash(recipe_id, number)
        saved = next(r.saved_at for r in await queries.revisions(recipe_id) if r.revision == number)
        pinned = await pins.pinned_of(content)
        names = await library_names()
    effective_at = row.effective_at if number == row.effective_revision else None
    status = _status(row, number)
    head = RecipeHead(
        str(row.id), row.name, row.product, number, status, hashed, saved, effective_at
    )
    try:
        xml = revision_to_batchml(head, content, pinned, exported_at=datetime.now(UTC), names=names)
    except MissingPin as exc:
        raise Conflict(f"Revision {number} cannot be exported as BatchML: {exc}.") from None
    return Exported(xml, f"{_file_stem(row.name)}-revision-{number}.batchml.xml", number)


def _file_stem(name: str) -> str:
    stem = "".join(c if c.isascii() and c.isalnum() else "-" for c in name.lower())
    return "-".join(part for part in stem.split("-") if part)[:80] or "master-recipe"


@dataclass(frozen=True)
class Imported:
    recipe_id: UUID
    import_id: UUID
    gaps: list[dict[str, str]]


async def import_batchml(ctx: TenantContext, data: bytes) -> Imported:
    """A BatchML master recipe as a new draft master recipe, in one unit of work: the
    document read and validated first (refused whole, nothing written, when it is not one),
    each operation mapped onto the library's unit operations (installed or forked from the HUB
    at the version the document names when the library lacks it), the content that maps
    saved as the draft's revision, and the gap report stored with the draft and audited."""
    await authorize(ctx, "recipes", "edit")
    doc = read_document(data)
    async with unit_of_work(ctx):
        await copies.take_install_turn(ctx.tenant_id)  # imports and installs take turns
        resolver = await Resolver(ctx).start()
        resolved = await resolver.steps(steps_of(doc))
        methods = await resolver.methods(methods_of(doc))
        mapped = map_document(doc, resolved, await known(), methods)
        name = one_line(doc.name) or "Imported master recipe"
        recipe_id = await create_in(ctx, name, one_line(doc.product))
        message = (
            f"Imported from BatchML: master recipe {doc.id} version {doc.version}, "
            f"document SHA-256 {doc.sha256}"
        )
        revision = await save_in(ctx, recipe_id, mapped.content, 1, message[:1000])
        gaps = [gap.as_dict() for gap in mapped.gaps]
        new = NewImport(
            recipe_id, doc.sha256, doc.id[:500], doc.version[:500], doc.name[:500], doc.size, gaps
        )
        import_id = await imports.insert_import(ctx.tenant_id, new, ctx.user_id)
        await audit.record(
            ctx,
            IMPORTED,
            "master_recipe",
            recipe_id,
            new={
                "import_id": import_id,
                "document_sha256": doc.sha256,
                "document_id": new.document_id,
                "document_version": new.document_version,
                "revision": revision,
                "gaps": len(gaps),
            },
        )
    return Imported(recipe_id, import_id, gaps)


async def get_import(ctx: TenantContext, import_id: UUID) -> ImportRow:
    async with tenant_transaction(ctx):
        return await imports.import_row(import_id)


async def import_of(ctx: TenantContext, recipe_id: UUID) -> ImportRow | None:
    async with tenant_transaction(ctx):
        return await imports.import_of(recipe_id)


async def recent_imports(ctx: TenantContext) -> list[ImportRow]:
    async with tenant_transaction(ctx):
        return await imports.recent_imports()


CSV_COLUMNS = ("kind", "ref", "name", "reason")


def _cell(text: str) -> str:
    """A cell a spreadsheet shows as text (never runs it as a formula)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def gaps_csv(row: ImportRow) -> str:
    """The gap report as CSV: one line per gap, a header first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["Kind", "Document id", "Name", "Why"])
    for gap in row.gaps:
        writer.writerow([_cell(str(gap.get(c, ""))) for c in CSV_COLUMNS])
    return out.getvalue()


__all__ = [
    "IMPORTED",
    "Exported",
    "Imported",
    "MasterRecipeDoc",
    "gaps_csv",
    "get_import",
    "import_batchml",
    "import_of",
    "master_recipe_batchml",
    "recent_imports",
]
