"""The revision of a master recipe in force, for what is made from it (a batch's control
recipe): its content and the library content it pins, read in the open unit of work with
the recipe row locked, so that it cannot be retired or superseded until that unit commits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opencdmo.db.tx import joined, tenant_transaction
from opencdmo.errors import Conflict
from opencdmo.recipes import queries
from opencdmo.recipes.content import Pinned
from opencdmo.recipes.queries import RecipeRow
from opencdmo.recipes.service._lifecycle import STATUS_NAMES
from opencdmo.recipes.service._pins import pinned_of
from opencdmo.scope import TenantContext


@dataclass(frozen=True)
class InForce:
    """The effective revision of a recipe: its number, content, hash and pinned contents."""

    recipe: RecipeRow
    revision: int
    content: dict[str, Any]
    content_hash: str
    pinned: Pinned


async def in_force(ctx: TenantContext, recipe_id: UUID) -> InForce:
    """The recipe's effective revision, in the command's open unit of work (the recipe row
    locked until it ends); a 409 naming the recipe's state when no revision is in force."""
    async with joined(ctx):
        row = await queries.recipe(recipe_id, lock=True)
        if row.effective_revision is None:
            state = STATUS_NAMES.get(row.status, row.status)
            raise Conflict(
                f"This recipe is {state}: only an effective revision can make a batch.",
                details={"status": row.status},
            )
        content = await queries.content(row.id, row.effective_revision)
        hashed = await queries.stored_hash(row.id, row.effective_revision)
        pinned = await pinned_of(content)
    return InForce(row, row.effective_revision, content, hashed, pinned)


async def formulas_in_force(ctx: TenantContext) -> list[tuple[UUID, str, list[str]]]:
    """(id, name, formula names) of every recipe with an effective revision: what a batch
    can be made of."""
    async with tenant_transaction(ctx):
        found = []
        for row in await queries.recipes():
            if row.effective_revision is None:
                continue
            content = await queries.content(row.id, row.effective_revision)
            names = [str(f.get("name")) for f in content.get("formulas") or []]
            found.append((row.id, row.name, names))
    return found
