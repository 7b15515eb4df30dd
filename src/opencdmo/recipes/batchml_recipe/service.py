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
from opencdmo.errors import Conflict, Forbidden
from opencdmo.hub import library_queries as copies
from opencdmo.hub import publication_queries
from opencdmo.hub import queries as hub_queries
from opencdmo.hub.model import UnitOperation, decode
from opencdmo.recipes import batchml_queries as imports
from opencdmo.recipes import queries
from opencdmo.recipes.batchml_queries import ImportRow, NewImport
from opencdmo.recipes.batchml_recipe._document import MasterRecipeDoc, read_document
from opencdmo.recipes.batchml_recipe._export import RecipeHead, revision_to_batchml
from opencdmo.recipes.batchml_recipe._mapping import Known, Resolved, map_document, steps_of
from opencdmo.recipes.batchml_recipe._tree import Step, one_line
from opencdmo.recipes.content import Library
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
        held = await copies.typed_copies("material", "equipment_class")
        names = {c.slug: c.content.name for c in held}
    effective_at = row.effective_at if number == row.effective_revision else None
    status = _status(row, number)
    head = RecipeHead(
        str(row.id), row.name, row.product, number, status, hashed, saved, effective_at
    )
    xml = revision_to_batchml(head, content, pinned, exported_at=datetime.now(UTC), names=names)
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
        resolved = await _resolve_all(ctx, steps_of(doc))
        mapped = map_document(doc, resolved, await _known())
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


async def _resolve_all(ctx: TenantContext, steps: list[Step]) -> dict[str, Resolved]:
    """Each operation's unit operation, by element id; the library read again after a copy
    from the HUB, so that two steps of one unit operation share one copy."""
    library = await pins.library(ctx)
    done: dict[tuple[str, str, str], Resolved] = {}
    found: dict[str, Resolved] = {}
    for step in steps:
        element = step.element
        key = (element.building_block, element.building_block_version, element.name)
        if key not in done:
            done[key] = await _resolve(ctx, step, library)
            if done[key].library_item_id not in library and done[key].library_item_id:
                library = await pins.library(ctx)
        found[element.id] = done[key]
    return found


def _same(library: Library, slug: str, version: str | None) -> list[Resolved]:
    found = []
    for item_id, entry in library.items():
        content = entry.content
        if not isinstance(content, UnitOperation) or content.slug != slug:
            continue
        if version is None or content.version == version:
            found.append(Resolved(item_id, entry.content_hash, content))
    return found


async def _resolve(ctx: TenantContext, step: Step, library: Library) -> Resolved:
    """The library unit operation of an operation: the one the document names (slug and
    version), installed or forked from the HUB when only the HUB has it; else another version
    of it, else one of the same name (each with a note); else none, and why."""
    element = step.element
    slug, version = element.building_block, element.building_block_version or element.version
    if slug:
        exact = _same(library, slug, version or None)
        if exact:
            return exact[0]
        from_hub = await _from_hub(ctx, slug, version)
        if from_hub is not None:
            return from_hub
        other = _same(library, slug, None)
        if other:
            chosen = other[0]
            assert chosen.content is not None
            note = (
                f"version {version or '(none)'} of {slug} is neither in the library nor on the "
                f"HUB: mapped to version {chosen.content.version}"
            )
            return Resolved(chosen.library_item_id, chosen.content_hash, chosen.content, note)
    wanted = element.name.casefold()
    for item_id, entry in library.items():
        content = entry.content
        if isinstance(content, UnitOperation) and content.name.casefold() == wanted:
            note = f"mapped by its name to unit operation {content.slug} {content.version}"
            if not slug:
                return Resolved(item_id, entry.content_hash, content, note)
            note = f"no unit operation {slug} {version} in the library or on the HUB: {note}"
            return Resolved(item_id, entry.content_hash, content, note)
    named = f"{slug} {version}".strip() or "(no building block)"
    return Resolved(
        None, note=f"no unit operation {named} or named '{element.name}' in the library or HUB"
    )


async def _from_hub(ctx: TenantContext, slug: str, version: str) -> Resolved | None:
    """The HUB's unit operation of that slug and version, copied into the library (installed
    when the library has no copy of the item, forked at that version when it has another)."""
    from opencdmo.hub import library

    if not version:
        return None
    for item_id in await publication_queries.visible_items("unit_operation", slug):
        chosen = await hub_queries.version_content(item_id, version)
        if chosen is None or chosen.yanked_at is not None:
            continue
        try:
            if await copies.installed_copy(item_id) is None:
                await library.install(ctx, item_id, version)
                copy_id = await copies.installed_copy(item_id)
            else:
                copy_id = await library.fork(ctx, item_id, version)
        except Forbidden:
            note = f"unit operation {slug} {version} is on the HUB, but you may not install it"
            return Resolved(None, note=note)
        content = decode(chosen.content)
        assert isinstance(content, UnitOperation)
        assert copy_id is not None
        return Resolved(str(copy_id), chosen.content_hash, content)
    return None


async def _known() -> Known:
    """The equipment classes and materials the library or the HUB hold, by slug."""
    held = await copies.typed_copies("equipment_class", "material")
    classes = {c.slug for c in held if c.kind == "equipment_class"}
    materials = {c.slug for c in held if c.kind == "material"}
    classes |= await publication_queries.visible_slugs("equipment_class")
    materials |= await publication_queries.visible_slugs("material")
    return Known(frozenset(classes), frozenset(materials))


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
