"""BatchML imports data access: the document and gap report of each imported draft.

Each function runs in the transaction open in its context; none opens or commits one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from opencdmo.db.clock import database_now
from opencdmo.errors import NotFound
from opencdmo.recipes.tables import BatchmlImport, MasterRecipe


@dataclass(frozen=True)
class NewImport:
    recipe_id: UUID
    document_sha256: str
    document_id: str
    document_version: str
    document_name: str
    size_bytes: int
    gaps: list[dict[str, str]]


@dataclass(frozen=True)
class ImportRow:
    """An imported draft's document, gap report, who imported it and when."""

    id: UUID
    recipe_id: UUID
    document_sha256: str
    document_id: str
    document_version: str
    document_name: str
    size_bytes: int
    gaps: list[dict[str, str]]
    imported_by: UUID | None
    imported_at: datetime
    recipe_name: str


_COLUMNS = tuple(
    getattr(BatchmlImport, f.name) for f in fields(ImportRow) if f.name != "recipe_name"
)


async def insert_import(tenant_id: UUID, new: NewImport, imported_by: UUID | None) -> UUID:
    rows = await BatchmlImport.insert(
        BatchmlImport(
            tenant_id=tenant_id,
            recipe_id=new.recipe_id,
            document_sha256=new.document_sha256,
            document_id=new.document_id,
            document_version=new.document_version,
            document_name=new.document_name,
            size_bytes=new.size_bytes,
            gaps=json.dumps(new.gaps),
            imported_by=imported_by,
            imported_at=database_now(),
        )
    ).returning(BatchmlImport.id)
    found = rows[0]["id"]
    assert isinstance(found, UUID)
    return found


async def _row(raw: dict[str, Any]) -> ImportRow:
    recipe = (
        await MasterRecipe.select(MasterRecipe.name)
        .where(MasterRecipe.id == raw["recipe_id"])
        .first()
    )
    name = recipe["name"] if recipe else ""
    return ImportRow(**{**raw, "gaps": json.loads(raw["gaps"]), "recipe_name": name})


async def import_row(import_id: UUID) -> ImportRow:
    """The import (another tenant's is the same NotFound as a missing one)."""
    raw = await BatchmlImport.select(*_COLUMNS).where(BatchmlImport.id == import_id).first()
    if raw is None:
        raise NotFound("No such BatchML import.")
    return await _row(raw)


async def import_of(recipe_id: UUID) -> ImportRow | None:
    """The import that created the recipe, if it was imported."""
    raw = await BatchmlImport.select(*_COLUMNS).where(BatchmlImport.recipe_id == recipe_id).first()
    return None if raw is None else await _row(raw)


async def recent_imports(limit: int = 20) -> list[ImportRow]:
    rows = await (
        BatchmlImport.select(*_COLUMNS)
        .order_by(BatchmlImport.imported_at, ascending=False)
        .limit(limit)
    )
    return [await _row(r) for r in rows]
