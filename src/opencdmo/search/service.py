"""The search box: recipes, library items and HUB items by name or code, tolerant of typos,
each group only when the member may read it.

The query's words are expanded once, against the vocabularies the member may read, and each
context finds its own rows with them (``recipes.search``, ``hub.search``).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from opencdmo.access.service import can
from opencdmo.db.textsearch import Terms, expand
from opencdmo.db.tx import tenant_transaction
from opencdmo.hub import search as hub
from opencdmo.hub.labels import kind_label
from opencdmo.recipes import search as recipes
from opencdmo.scope import TenantContext

SUGGESTIONS = 5  # per group, in the box as one types
PAGE = 20  # per group, on the results page
STATUS = {
    "draft": "Draft",
    "in_review": "In review",
    "approved": "Approved",
    "effective": "Effective",
    "superseded": "Superseded",
    "retired": "Retired",
}


@dataclass(frozen=True)
class Found:
    """One thing found: what it is, its name and code, and its page."""

    id: UUID
    name: str
    code: str
    detail: str
    url: str
    badge: str | None = None


@dataclass(frozen=True)
class Groups:
    """What a search found, by group; a group is None when the member may not read it."""

    text: str
    recipes: list[Found] | None
    library: list[Found] | None
    hub: list[Found] | None

    @property
    def empty(self) -> bool:
        return not any((self.recipes, self.library, self.hub))


async def find(ctx: TenantContext, text: str, limit: int = PAGE) -> Groups:
    """Everything ``text`` finds that the member may read, at most ``limit`` per group."""
    hub.check_text("q", text)
    text = text.strip()
    read_recipes = await can(ctx, "recipes", "read")
    read_hub = await can(ctx, "hub", "read")
    sources = [hub.VOCABULARY] if read_hub else []
    sources += [recipes.VOCABULARY] if read_recipes else []
    terms = Terms(text)
    if text and sources:
        async with tenant_transaction(ctx) as connection:
            terms = await expand(connection, text, sources)
    return Groups(
        text,
        await _recipes(ctx, terms, limit) if read_recipes else None,
        await _library(ctx, terms, limit) if read_hub else None,
        await _hub(ctx, terms, limit) if read_hub else None,
    )


async def _recipes(ctx: TenantContext, terms: Terms, limit: int) -> list[Found]:
    return [
        Found(
            r.id,
            r.name,
            r.product,
            f"{STATUS.get(r.status, r.status)} · revision {r.current_revision}",
            f"/t/{ctx.slug}/recipes/{r.id}",
        )
        for r in await recipes.find(ctx, terms, limit)
    ]


async def _library(ctx: TenantContext, terms: Terms, limit: int) -> list[Found]:
    return [
        Found(
            item.id,
            item.name,
            item.slug,
            f"{kind_label(item.kind)} · v{item.version}",
            f"/t/{ctx.slug}/library/{item.id}",
            "Fork" if item.source == "forked" else None,
        )
        for item in await hub.find_library(ctx, terms, limit)
    ]


async def _hub(ctx: TenantContext, terms: Terms, limit: int) -> list[Found]:
    if not terms.text:
        return []
    result = await hub.search(
        ctx, hub.SearchQuery(terms.text, per_page=limit), facets=False, terms=terms
    )
    return [
        Found(
            item.id,
            item.name,
            item.slug,
            f"{kind_label(item.kind)} · v{item.latest_version} · {item.publisher}",
            f"/t/{ctx.slug}/hub/items/{item.id}",
            f"Installed v{item.installed_version}" if item.installed_version else None,
        )
        for item in result.items
    ]
