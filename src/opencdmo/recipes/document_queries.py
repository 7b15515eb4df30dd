"""A master recipe's documents as typed rows. Each function runs in the transaction open in
its context; row-level security keeps it inside the tenant (another tenant's document is not
found)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from opencdmo.db.clock import database_now
from opencdmo.db.rows import columns, typed
from opencdmo.errors import NotFound
from opencdmo.recipes.tables import RecipeDocument


@dataclass(frozen=True)
class DocumentRow:
    id: UUID
    recipe_id: UUID
    file_id: UUID
    title: str
    kind: str
    added_by: UUID
    added_at: datetime
    removed_by: UUID | None
    removed_at: datetime | None
    removal_reason: str | None

    @property
    def current(self) -> bool:
        return self.removed_at is None


async def insert_document(
    tenant_id: UUID, recipe_id: UUID, file_id: UUID, title: str, kind: str, added_by: UUID
) -> UUID:
    rows = await RecipeDocument.insert(
        RecipeDocument(
            tenant_id=tenant_id,
            recipe_id=recipe_id,
            file_id=file_id,
            title=title,
            kind=kind,
            added_by=added_by,
            added_at=database_now(),
        )
    ).returning(RecipeDocument.id)
    found: UUID = rows[0]["id"]
    return found


async def document(recipe_id: UUID, document_id: UUID, *, lock: bool = False) -> DocumentRow:
    """The recipe's document; one of another recipe or tenant is the same NotFound."""
    query = RecipeDocument.select(*columns(RecipeDocument, DocumentRow)).where(
        (RecipeDocument.id == document_id) & (RecipeDocument.recipe_id == recipe_id)
    )
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    if raw is None:
        raise NotFound("No such document of this recipe.")
    return typed(DocumentRow, raw)


async def documents(recipe_id: UUID, *, removed: bool = True) -> list[DocumentRow]:
    """The recipe's documents in the order they were attached (without the removed ones when
    ``removed`` is false)."""
    query = RecipeDocument.select(*columns(RecipeDocument, DocumentRow)).where(
        RecipeDocument.recipe_id == recipe_id
    )
    if not removed:
        query = query.where(RecipeDocument.removed_at.is_null())
    rows = await query.order_by(RecipeDocument.added_at, RecipeDocument.id)
    return [typed(DocumentRow, r) for r in rows]


async def mark_removed(document_id: UUID, by: UUID, reason: str) -> None:
    await RecipeDocument.update(
        {
            RecipeDocument.removed_by: by,
            RecipeDocument.removed_at: database_now(),
            RecipeDocument.removal_reason: reason,
        }
    ).where(RecipeDocument.id == document_id)
