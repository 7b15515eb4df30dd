"""Master recipe revisions: created empty, every save a validated revision based on the one
the editor saw (optimistic concurrency), structural diffs, and the revision history."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.audit import queries as audit_queries
from opencdmo.audit import service as audit
from opencdmo.db.tx import joined, tenant_transaction, unit_of_work
from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.hub.diff import Change, diff
from opencdmo.identity.service import get_user
from opencdmo.labels import label
from opencdmo.recipes import compare as wording
from opencdmo.recipes import content as recipe_content
from opencdmo.recipes import queries
from opencdmo.recipes.compare import Described
from opencdmo.recipes.queries import RecipeDetail, RecipeRow
from opencdmo.recipes.service import _pins as pins
from opencdmo.scope import TenantContext

MAX_NAME = 200


@dataclass(frozen=True)
class RecipeRecord:
    """One revision of a recipe as a signable record."""

    record_id: str
    record_version: str
    author_id: UUID | None
    content: dict[str, Any]
    record_type: str = "master_recipe"

    def signed_content(self) -> Any:
        return self.content


async def record_of(row: RecipeRow, revision: int | None = None) -> RecipeRecord:
    """A revision of the recipe (default: the current one) as a signable record; its author
    is the person who saved it."""
    number = row.current_revision if revision is None else revision
    body = await queries.content(row.id, number)
    author = await queries.saved_by(row.id, number)
    return RecipeRecord(str(row.id), str(number), author or row.author_id, body)


def _name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise ValidationFailed("A recipe needs a name.", details={"field": "name"})
    if len(name) > MAX_NAME:
        raise ValidationFailed(
            f"A recipe name has at most {MAX_NAME} characters.", details={"field": "name"}
        )
    return name


async def create(
    ctx: TenantContext, name: str, product: str = "", *, source_hub_version_id: UUID | None = None
) -> UUID:
    """A new draft master recipe (revision 1, empty)."""
    await authorize(ctx, "recipes", "edit")
    async with unit_of_work(ctx):
        return await create_in(ctx, name, product, source_hub_version_id=source_hub_version_id)


async def create_in(
    ctx: TenantContext, name: str, product: str = "", *, source_hub_version_id: UUID | None = None
) -> UUID:
    """``create`` inside a command's open unit of work."""
    name = _name(name)
    product = " ".join(product.split())[:MAX_NAME]
    body = recipe_content.empty()
    async with joined(ctx):
        recipe_id = await queries.insert_recipe(
            ctx.tenant_id, name, product, ctx.user_id, source_hub_version_id
        )
        await queries.insert_revision(ctx.tenant_id, recipe_id, 1, body, "Created", ctx.user_id)
        await audit.record(
            ctx,
            "recipe.created",
            "master_recipe",
            recipe_id,
            new={
                "name": name,
                "product": product,
                "revision": 1,
                "source_hub_version_id": source_hub_version_id,
            },
        )
    return recipe_id


async def list_recipes(ctx: TenantContext) -> list[RecipeRow]:
    async with tenant_transaction(ctx):
        return await queries.recipes()


async def get(ctx: TenantContext, recipe_id: UUID) -> RecipeDetail:
    """The recipe with the content of its current revision."""
    async with tenant_transaction(ctx):
        row = await queries.recipe(recipe_id)
        content = await queries.content(recipe_id, row.current_revision)
        return RecipeDetail(**row.as_dict(), content=content)


async def save(
    ctx: TenantContext, recipe_id: UUID, content: Any, base_revision: int, message: str = ""
) -> int:
    """Save a new revision. If someone saved since ``base_revision``, 409 with what they
    changed, and nothing is lost: the caller still holds its own content. A change after any
    signature returns the recipe to Draft (its approvals no longer match)."""
    await authorize(ctx, "recipes", "edit")
    async with unit_of_work(ctx):
        return await save_in(ctx, recipe_id, content, base_revision, message)


async def _conflict(row: RecipeRow, base_revision: int) -> Conflict:
    theirs = await queries.content(row.id, row.current_revision)
    base = await queries.content(row.id, base_revision)
    changes = diff(recipe_content.normalised(base), recipe_content.normalised(theirs))
    return Conflict(
        f"Revision {row.current_revision} was saved after your revision "
        f"{base_revision}: {len(changes)} change(s). Reload, reapply yours, save again.",
        details={
            "current_revision": row.current_revision,
            "their_changes": [f"{c.op} {c.path}" for c in changes],
        },
    )


async def save_in(
    ctx: TenantContext, recipe_id: UUID, content: Any, base_revision: int, message: str = ""
) -> int:
    """``save`` inside a command's open unit of work."""
    async with joined(ctx):
        row = await queries.recipe(recipe_id, lock=True)
        if row.status == "retired":
            raise Conflict("This recipe is retired: it can no longer change.")
        if row.current_revision != base_revision:
            raise await _conflict(row, base_revision)
        lib = await pins.library(ctx)
        content = copy.deepcopy(content)
        pinned, fresh = await pins.pin(content, lib)
        recipe_content.check(content, lib, pinned)
        content = recipe_content.normalised(content)
        old = await queries.content(recipe_id, base_revision)
        changes = diff(recipe_content.normalised(old), content)
        if not changes:
            return int(base_revision)
        revision = base_revision + 1
        await pins.keep(ctx, fresh)
        await queries.insert_revision(
            ctx.tenant_id, recipe_id, revision, content, message, ctx.user_id
        )
        status = "draft" if row.status in ("in_review", "approved", "effective") else row.status
        await queries.update_recipe(recipe_id, current_revision=revision, status=status)
        await audit.record(
            ctx,
            "recipe.revised",
            "master_recipe",
            recipe_id,
            old={"revision": base_revision, "status": row.status},
            new={
                "revision": revision,
                "status": status,
                "changes": [f"{c.op} {c.path}" for c in changes],
            },
            reason=message or None,
        )
    return revision


@dataclass(frozen=True)
class HistoryEntry:
    """A revision in the history: who saved it (by name) and when it was in force."""

    revision: int
    content_hash: str
    message: str
    saved_at: datetime
    saved_by: str | None
    effective_from: datetime | None = None
    effective_until: datetime | None = None
    ended: str | None = None  # superseded or retired


_IN_FORCE = ("recipe.make_effective", "recipe.retire")


async def history(ctx: TenantContext, recipe_id: UUID) -> list[HistoryEntry]:
    """Every revision, newest first, with when it was in force (``effective_from``,
    ``effective_until`` and how that ended: superseded or retired), read from the audit
    trail."""
    async with tenant_transaction(ctx):
        await queries.recipe(recipe_id)
        rows = await queries.revisions(recipe_id)
        events = await audit_queries.entity_actions("master_recipe", str(recipe_id), _IN_FORCE)
        names = await _names({r.saved_by for r in rows if r.saved_by is not None})
    periods: dict[int, dict[str, Any]] = {}
    in_force: int | None = None
    for event in events:
        if in_force is not None:
            ended = "retired" if event.action == "recipe.retire" else "superseded"
            periods[in_force].update(effective_until=event.occurred_at, ended=ended)
            in_force = None
        if event.action == "recipe.make_effective":
            in_force = int(event.new_values["revision"])
            periods[in_force] = {"effective_from": event.occurred_at}
    return [
        HistoryEntry(
            r.revision,
            r.content_hash,
            r.message,
            r.saved_at,
            None if r.saved_by is None else names[r.saved_by],
            **periods.get(r.revision, {}),
        )
        for r in rows
    ]


async def _names(user_ids: set[UUID]) -> dict[UUID, str]:
    """The full names of the people who saved revisions."""
    return {uid: (await get_user(uid)).full_name for uid in sorted(user_ids)}


async def compare(ctx: TenantContext, recipe_id: UUID, left: int, right: int) -> list[Change]:
    """Structural diff of two revisions, with the parameter ranges and materials of the
    unit operation content each step pinned."""
    return (await compare_described(ctx, recipe_id, left, right))[0]


async def compare_described(
    ctx: TenantContext, recipe_id: UUID, left: int, right: int
) -> tuple[list[Change], list[Described]]:
    """The structural diff of two revisions, and each change in process language (steps and
    parameters by name, with units, positions from 1)."""
    async with tenant_transaction(ctx):
        await queries.recipe(recipe_id)
        older = recipe_content.normalised(await queries.content(recipe_id, left))
        newer = recipe_content.normalised(await queries.content(recipe_id, right))
        lib = await pins.library(ctx)
        pinned = await pins.pinned_of(older, newer)
    changes = diff(pins.expanded(older, lib, pinned), pins.expanded(newer, lib, pinned))

    def named(content: dict[str, Any]) -> wording.Side:
        names: wording.StepNames = {}
        for up in content["unit_procedures"]:
            for op in up["operations"]:
                operation = recipe_content.step_content(op, lib, pinned)
                parameters: dict[str, tuple[str, str | None]] = {
                    key: (p.name, p.unit)
                    for key, p in recipe_content.parameters_of(operation).items()
                }
                names[op["key"]] = (operation.name if operation else label(op["key"]), parameters)
        return wording.side(content, names)

    return changes, wording.describe(changes, named(older), named(newer))
