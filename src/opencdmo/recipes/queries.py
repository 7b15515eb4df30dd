"""Master recipe data access: every read and write of the recipe tables, as typed rows.

Each function runs in the transaction open in its context (a command's unit of work or a
page's read view); none opens or commits one of its own. Every time column is set by the
database's clock (``db.clock.database_now``), as the migrations' defaults are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from opencdmo.canonical import content_hash
from opencdmo.db.clock import database_now
from opencdmo.errors import NotFound
from opencdmo.hub.model import LibraryContent, decode_json
from opencdmo.recipes.tables import MasterRecipe, PinnedContent, RecipeRevision


@dataclass(frozen=True)
class RecipeRow:
    """One master recipe as stored: its status and the revisions in force and being drafted."""

    id: UUID
    name: str
    product: str
    status: str
    current_revision: int
    effective_revision: int | None
    author_id: UUID | None
    source_hub_version_id: UUID | None
    effective_at: datetime | None
    retired_reason: str | None
    published_item_id: UUID | None
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class RecipeDetail(RecipeRow):
    """The recipe with the content of its current revision (the stored JSON document)."""

    content: dict[str, Any]


@dataclass(frozen=True)
class RevisionRow:
    """One saved revision as the history lists it (``saved_by``: who saved it, by id)."""

    revision: int
    content_hash: str
    message: str
    saved_at: datetime
    saved_by: UUID | None


@dataclass(frozen=True)
class StoredPin:
    """A library item's content as a revision pinned it, decoded once when read."""

    content_hash: str
    kind: str
    slug: str
    version: str
    content: LibraryContent


_ROW = tuple(getattr(MasterRecipe, f.name) for f in fields(RecipeRow))


def _recipe_row(raw: dict[str, Any]) -> RecipeRow:
    return RecipeRow(**{f.name: raw[f.name] for f in fields(RecipeRow)})


async def recipe(recipe_id: UUID, *, lock: bool = False) -> RecipeRow:
    """The recipe (row-locked until the unit of work ends with ``lock``); another tenant's
    is the same NotFound as a missing one (row-level security hides it)."""
    query = MasterRecipe.select(*_ROW).where(MasterRecipe.id == recipe_id)
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    if raw is None:
        raise NotFound("No such recipe.")
    return _recipe_row(raw)


async def recipes() -> list[RecipeRow]:
    rows = await MasterRecipe.select(*_ROW).order_by(MasterRecipe.name, MasterRecipe.id)
    return [_recipe_row(r) for r in rows]


async def insert_recipe(
    tenant_id: UUID,
    name: str,
    product: str,
    author_id: UUID | None,
    source_hub_version_id: UUID | None,
) -> UUID:
    rows = await MasterRecipe.insert(
        MasterRecipe(
            tenant_id=tenant_id,
            name=name,
            product=product,
            author_id=author_id,
            source_hub_version_id=source_hub_version_id,
            created_at=database_now(),
            updated_at=database_now(),
        )
    ).returning(MasterRecipe.id)
    recipe_id = rows[0]["id"]
    assert isinstance(recipe_id, UUID)
    return recipe_id


async def update_recipe(recipe_id: UUID, **values: Any) -> None:
    """Set columns of the recipe (``updated_at`` moves with every change, by the database's
    clock)."""
    changes = {getattr(MasterRecipe, name): value for name, value in values.items()}
    changes[MasterRecipe.updated_at] = database_now()
    await MasterRecipe.update(changes).where(MasterRecipe.id == recipe_id)


async def content(recipe_id: UUID, revision: int) -> dict[str, Any]:
    raw = await (
        RecipeRevision.select(RecipeRevision.content)
        .where((RecipeRevision.recipe_id == recipe_id) & (RecipeRevision.revision == revision))
        .first()
    )
    if raw is None:
        raise NotFound(f"No revision {revision} of this recipe.")
    return dict(json.loads(raw["content"]))


async def stored_hash(recipe_id: UUID, revision: int) -> str:
    """The content hash the revision was saved with."""
    raw = await (
        RecipeRevision.select(RecipeRevision.content_hash)
        .where((RecipeRevision.recipe_id == recipe_id) & (RecipeRevision.revision == revision))
        .first()
    )
    if raw is None:
        raise NotFound(f"No revision {revision} of this recipe.")
    return str(raw["content_hash"])


async def saved_by(recipe_id: UUID, revision: int) -> UUID | None:
    raw = await (
        RecipeRevision.select(RecipeRevision.saved_by)
        .where((RecipeRevision.recipe_id == recipe_id) & (RecipeRevision.revision == revision))
        .first()
    )
    return None if raw is None else raw["saved_by"]


async def insert_revision(
    tenant_id: UUID,
    recipe_id: UUID,
    revision: int,
    body: dict[str, Any],
    message: str,
    saved_by: UUID | None,
) -> None:
    await RecipeRevision.insert(
        RecipeRevision(
            tenant_id=tenant_id,
            recipe_id=recipe_id,
            revision=revision,
            content=json.dumps(body),
            content_hash=content_hash(body),
            message=message,
            saved_by=saved_by,
            saved_at=database_now(),
        )
    )


async def revisions(recipe_id: UUID) -> list[RevisionRow]:
    """Every revision of the recipe, newest first."""
    rows = await (
        RecipeRevision.select(*(getattr(RecipeRevision, f.name) for f in fields(RevisionRow)))
        .where(RecipeRevision.recipe_id == recipe_id)
        .order_by(RecipeRevision.revision, ascending=False)
    )
    return [RevisionRow(**r) for r in rows]


async def stored_pins(hashes: set[str]) -> dict[str, StoredPin]:
    if not hashes:
        return {}
    rows = await PinnedContent.select(
        PinnedContent.content_hash,
        PinnedContent.kind,
        PinnedContent.slug,
        PinnedContent.version,
        PinnedContent.content,
    ).where(PinnedContent.content_hash.is_in(sorted(hashes)))
    return {
        r["content_hash"]: StoredPin(
            r["content_hash"], r["kind"], r["slug"], r["version"], decode_json(r["content"])
        )
        for r in rows
    }


async def keep_pin(
    tenant_id: UUID, pin: str, kind: str, slug: str, version: str, body: dict[str, object]
) -> None:
    """Keep a pinned content (content-addressed: the first copy stays)."""
    await PinnedContent.insert(
        PinnedContent(
            tenant_id=tenant_id,
            content_hash=pin,
            kind=kind,
            slug=slug,
            version=version,
            content=json.dumps(body),
            created_at=database_now(),
        )
    ).on_conflict(target=(PinnedContent.tenant_id, PinnedContent.content_hash), action="DO NOTHING")
