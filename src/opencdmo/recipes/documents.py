"""A master recipe's documents (an SOP, a development report, a risk assessment, other): attach
one with a title and a kind, list them, download one as stored, remove one with a reason
(the row is kept, marked removed). ``recipes:edit`` attaches and removes; ``recipes:read``
lists and downloads.

Only PDF, PNG and JPEG files (by their bytes) are attached: they are the documents a
tech-transfer package carries, and the package refuses members that are archives, so a Word
or Excel file (a ZIP container) is refused here with a message saying to attach it as PDF,
rather than sent and refused at the receiver (or unpacked by it).

Order of work (ARCHITECTURE.md section 4): the recipe is checked, the file stored as a
content-addressed blob (before any transaction: slow, and harmless if the command then fails),
then one unit of work with the recipe locked writes the stored file's row, the document and
the audit event together. Locking the recipe serialises a recipe's document changes with
each other and with an export, which checks that the documents it packed are still the
recipe's when it commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opencdmo import fields
from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.tx import read_view, unit_of_work
from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.fields import visible
from opencdmo.labels import label
from opencdmo.recipes import document_queries as q
from opencdmo.recipes import queries as recipes
from opencdmo.recipes.document_queries import DocumentRow
from opencdmo.recipes.queries import RecipeRow
from opencdmo.scope import TenantContext
from opencdmo.storage import service as storage
from opencdmo.storage.blobs import blobs
from opencdmo.storage.queries import StoredFileRow
from opencdmo.storage.streams import CheckedReader
from opencdmo.storage.uploads import JPEG, PDF, PNG, Upload, accept, sniff
from opencdmo.tenancy import service as tenancy

ENTITY = "master_recipe"
ADDED = "recipe.document_added"
REMOVED = "recipe.document_removed"
KINDS = {k: label(k) for k in ("sop", "development_report", "risk_assessment")} | {
    "other": "Other document"
}
DOCUMENT_TYPES = (PDF, PNG, JPEG)
TITLE_MAX = 200
REASON_MAX = 1000
FIELD = "file"
# The local file header of a ZIP archive: .docx, .xlsx, .pptx, .odt... are ZIP containers.
ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class DocumentView:
    row: DocumentRow
    file: StoredFileRow
    added_by_name: str
    removed_by_name: str | None

    @property
    def kind_name(self) -> str:
        return KINDS.get(self.row.kind, self.row.kind)


def accept_document(filename: str, declared_type: str, data: bytes, max_bytes: int) -> Upload:
    """The uploaded document, or a 422 saying what is wrong with it (empty, too big, an
    office file or other archive, not a PDF, PNG or JPEG by its bytes)."""
    if data.startswith(ZIP_MAGIC) and len(data) <= max_bytes:
        raise ValidationFailed(
            f"{FIELD}: the file is a ZIP archive (Word, Excel and PowerPoint files are): a "
            "tech-transfer package does not carry archives. Save the document as PDF and "
            "attach that.",
            details={"field": FIELD},
        )
    return accept(
        filename, declared_type, data, max_bytes=max_bytes, kinds=DOCUMENT_TYPES, field=FIELD
    )


def check_upload(upload: Upload) -> None:
    """The service's own check of an upload the edge accepted: its bytes are a document's."""
    kind = sniff(upload.data, DOCUMENT_TYPES)
    if not upload.data or kind is None or kind.content_type != upload.content_type:
        raise ValidationFailed(
            f"{FIELD}: a recipe document is a PDF, PNG or JPEG file.", details={"field": FIELD}
        )


def check_title(title: str) -> str:
    text = fields.folded_text(title, "title", "The title", limit=TITLE_MAX)
    if not text or not visible(text):
        raise ValidationFailed("The title is required.", details={"field": "title"})
    return text


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValidationFailed(
            "kind: one of " + ", ".join(f"{k} ({v})" for k, v in KINDS.items()) + ".",
            details={"field": "kind"},
        )
    return kind


def check_reason(reason: str) -> str:
    return fields.check_reason(reason, purpose="remove a document", limit=REASON_MAX)


def _open_for_change(row: RecipeRow) -> None:
    if row.status == "retired":
        raise Conflict(
            f"The recipe {row.name} is retired: its documents are kept as they are.",
            details={"status": row.status},
        )


def file_values(stored: StoredFileRow) -> dict[str, Any]:
    """The document's file as the audit trail keeps it."""
    return {
        "file_id": str(stored.id),
        "sha256": stored.sha256,
        "size_bytes": stored.size_bytes,
        "content_type": stored.content_type,
        "filename": stored.filename,
    }


# --- commands ---------------------------------------------------------------------------------


async def add_document(
    ctx: TenantContext, recipe_id: UUID, upload: Upload, title: str, kind: str
) -> DocumentView:
    """Attach a document to the recipe (see the module for the order of work)."""
    title, kind = check_title(title), check_kind(kind)
    check_upload(upload)
    async with read_view(ctx):
        await authorize(ctx, "recipes", "edit")
        _open_for_change(await recipes.recipe(recipe_id))
    blob = await storage.put(ctx, upload)
    async with unit_of_work(ctx):
        await authorize(ctx, "recipes", "edit")
        row = await recipes.recipe(recipe_id, lock=True)
        _open_for_change(row)
        stored = await storage.record(ctx, blob, upload)
        assert ctx.user_id is not None  # storage.record refuses an actor without one
        document_id = await q.insert_document(
            ctx.tenant_id, recipe_id, stored.id, title, kind, ctx.user_id
        )
        await audit.record(
            ctx,
            ADDED,
            ENTITY,
            recipe_id,
            new={
                "document_id": str(document_id),
                "title": title,
                "kind": kind,
                "file": file_values(stored),
            },
        )
    return await document(ctx, recipe_id, document_id)


async def remove_document(
    ctx: TenantContext, recipe_id: UUID, document_id: UUID, reason: str
) -> DocumentView:
    """Mark the document removed, with the reason; one already removed is a 409."""
    why = check_reason(reason)
    async with unit_of_work(ctx):
        await authorize(ctx, "recipes", "edit")
        recipe = await recipes.recipe(recipe_id, lock=True)
        row = await q.document(recipe_id, document_id, lock=True)
        if not row.current:
            raise Conflict(
                f"The document {row.title} was removed already (removed meanwhile?); reload "
                "the recipe to see its documents.",
                details={"document_id": str(document_id)},
            )
        _open_for_change(recipe)
        assert ctx.user_id is not None
        await q.mark_removed(document_id, ctx.user_id, why)
        stored = (await storage.stored_files(ctx, [row.file_id]))[row.file_id]
        await audit.record(
            ctx,
            REMOVED,
            ENTITY,
            recipe_id,
            old={"document_id": str(document_id), "title": row.title, "kind": row.kind},
            new={"document_id": str(document_id), "removed": True, "sha256": stored.sha256},
            reason=why,
        )
    return await document(ctx, recipe_id, document_id)


# --- reads ------------------------------------------------------------------------------------


async def recipe_of(ctx: TenantContext, recipe_id: UUID) -> RecipeRow:
    """The recipe (another tenant's is not found), before anything sent is read."""
    async with read_view(ctx):
        return await recipes.recipe(recipe_id)


async def _views(ctx: TenantContext, rows: list[DocumentRow]) -> list[DocumentView]:
    files = await storage.stored_files(ctx, [r.file_id for r in rows])
    people: Iterable[UUID] = {r.added_by for r in rows} | {
        r.removed_by for r in rows if r.removed_by is not None
    }
    names = await tenancy.people_names(ctx, people)
    former = "a former member"
    return [
        DocumentView(
            r,
            files[r.file_id],
            names.get(r.added_by, former),
            None if r.removed_by is None else names.get(r.removed_by, former),
        )
        for r in rows
    ]


async def documents(
    ctx: TenantContext, recipe_id: UUID, *, removed: bool = True
) -> list[DocumentView]:
    """The recipe's documents in the order they were attached (the removed ones too, unless
    ``removed`` is false)."""
    async with read_view(ctx):
        await authorize(ctx, "recipes", "read")
        await recipes.recipe(recipe_id)
        return await _views(ctx, await q.documents(recipe_id, removed=removed))


async def document(ctx: TenantContext, recipe_id: UUID, document_id: UUID) -> DocumentView:
    async with read_view(ctx):
        await authorize(ctx, "recipes", "read")
        return (await _views(ctx, [await q.document(recipe_id, document_id)]))[0]


async def open_document(
    ctx: TenantContext, recipe_id: UUID, document_id: UUID
) -> tuple[DocumentView, CheckedReader]:
    """The document and a stream of its bytes (blocking reads: read it in a worker thread),
    which raises at its end when they do not match the SHA-256 they were stored with. A
    removed document still downloads: it is part of the record."""
    view = await document(ctx, recipe_id, document_id)
    return view, await blobs().open(ctx, view.file.storage_key)
