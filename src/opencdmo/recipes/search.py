"""Finding the tenant's master recipes by name or product, tolerant of typos.

Runs in the transaction open in its context (a page's read view), or one of its own; the
tenant policy keeps it to the tenant's recipes.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.db.textsearch import CONFIG, Match, Params, Terms, with_clause
from opencdmo.db.tx import tenant_transaction
from opencdmo.scope import TenantContext

# The tenant's vocabulary (recipe names and products, renamed forks): migration 0015.
VOCABULARY = "SELECT gram, word, grams FROM search_terms WHERE gram IN (SELECT g FROM query_grams)"


@dataclass(frozen=True)
class RecipeHit:
    id: UUID
    name: str
    product: str
    status: str
    current_revision: int
    effective_revision: int | None


async def find(ctx: TenantContext, terms: Terms, limit: int) -> list[RecipeHit]:
    """The recipes ``terms`` find, best first (``recipes:read``)."""
    await authorize(ctx, "recipes", "read")
    if not terms.text:
        return []
    arg = Params()
    match = Match(terms, arg)
    documents = (
        "docs AS MATERIALIZED (SELECT r.id, r.name, r.product, r.status, r.current_revision, "
        "r.effective_revision, "
        f"to_tsvector('{CONFIG}', r.name || ' ' || r.product) AS doc FROM master_recipes r)"
    )
    # Raw SQL: full-text matching and ranking (tsvector), which Piccolo cannot say.
    sql = f"""{with_clause(*match.ctes(), documents)}
SELECT r.id, r.name, r.product, r.status, r.current_revision, r.effective_revision FROM (
    SELECT d.*, {match.tier("d.doc", "d.name")} AS tier, {match.rank("d.doc")} AS rank,
           {match.similarity("d.doc")} AS fuzzy
    FROM docs d WHERE {match.condition("d.doc")}) r
ORDER BY r.tier, r.fuzzy DESC, r.rank DESC, r.name, r.id LIMIT {arg(limit)}"""
    async with tenant_transaction(ctx) as connection:
        rows = await connection.fetch(sql, *arg.values)
    return [RecipeHit(**dict(row)) for row in rows]
