"""HUB search: full text with typo tolerance, facets with display names, installed badges.

What a tenant may see is what the HUB policy shows it (public, shared with it, or its own),
in results and counts alike. The policy hides indexes from the search's own conditions
(migration 0015 says why), so the search reads each audience its own way, with the same
conditions: public items through ``hub_public_items`` (public rows only, for every tenant,
on the full-text and array indexes), the tenant's own restricted items and the items shared
with it from ``hub_items`` under the policy, reached through indexed keys.

Runs in the transaction open in its context (a page's read view), or one of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.db.textsearch import Match, Params, Terms, expand, with_clause
from opencdmo.db.tx import tenant_transaction
from opencdmo.errors import ValidationFailed
from opencdmo.hub.content import KIND_DIRS
from opencdmo.hub.labels import label
from opencdmo.scope import TenantContext

SORTS = {
    "relevance": "{p}tier, {p}fuzzy DESC, {p}rank DESC, {p}name, {p}id",
    "installs": "{p}install_count DESC, {p}name, {p}id",
    "updated": "{p}updated_at DESC, {p}name, {p}id",
    "name": "{p}name, {p}id",
}
FACETS = ("kind", "modality", "category", "publisher", "equipment_class")
TEXT_MAX = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# The HUB vocabulary rows this tenant may read (its policy keeps the audience).
VOCABULARY = (
    "SELECT gram, word, grams FROM hub_search_terms WHERE gram IN (SELECT g FROM query_grams)"
)


def check_text(name: str, value: str | None) -> None:
    """A search text: one line of at most 200 characters (422 naming the field otherwise)."""
    if value is None:
        return
    if len(value) > TEXT_MAX:
        raise ValidationFailed(
            f"'{name}' is {len(value)} characters long; at most {TEXT_MAX} are accepted.",
            details={"field": name},
        )
    if _CONTROL.search(value):
        raise ValidationFailed(
            f"'{name}' must be one line of text without control characters.",
            details={"field": name},
        )


@dataclass(frozen=True)
class SearchQuery:
    text: str = ""
    kind: str | None = None
    modality: str | None = None
    category: str | None = None
    publisher: str | None = None
    equipment_class: str | None = None
    sort: str = "relevance"
    page: int = 1
    per_page: int = 20

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise ValidationFailed(
                f"sort must be one of {', '.join(SORTS)}.", details={"field": "sort"}
            )
        if self.kind is not None and self.kind not in KIND_DIRS:
            raise ValidationFailed(
                f"kind must be one of {', '.join(KIND_DIRS)}.", details={"field": "kind"}
            )
        if not 1 <= self.per_page <= 100 or not 1 <= self.page <= 10_000:
            raise ValidationFailed(
                "page must be 1-10000 and per_page 1-100.", details={"field": "page"}
            )
        check_text("q", self.text)
        for name in ("modality", "category", "publisher", "equipment_class"):
            check_text(name, getattr(self, name))

    @property
    def order(self) -> str:
        """Relevance needs search words; without them the list is by name."""
        return "name" if self.sort == "relevance" and not self.text.strip() else self.sort

    def filters(self) -> dict[str, str]:
        values = {name: getattr(self, name) for name in FACETS}
        return {k: v for k, v in values.items() if v}


@dataclass(frozen=True)
class Hit:
    """One item found, with what this tenant installed of it."""

    id: UUID
    kind: str
    slug: str
    name: str
    summary: str
    latest_version: str | None
    category: str | None
    modalities: list[str]
    install_count: int
    updated_at: datetime
    visibility: str
    publisher: str
    publisher_slug: str
    installed_version: str | None
    library_id: UUID | None


@dataclass(frozen=True)
class FacetValue:
    value: str
    label: str
    count: int


@dataclass
class SearchResult:
    items: list[Hit]
    total: int
    facets: dict[str, list[FacetValue]] = field(default_factory=dict)


_COLUMNS = (
    "i.id, i.publisher_id, i.kind, i.slug, i.visibility, i.name, i.summary, i.latest_version, "
    "i.category, i.modalities, i.equipment_classes, i.install_count, i.updated_at, i.search"
)


def audiences(columns: str, conditions: str, tenant: str) -> str:
    """The rows the tenant ``tenant`` ($n) may see that meet ``conditions``, audience by
    audience (each branch's conditions can use the indexes)."""
    return f"""
SELECT {columns} FROM hub_public_items i WHERE {conditions}
UNION ALL
SELECT {columns} FROM hub_items i
WHERE i.visibility <> 'public' AND i.publisher_id = {tenant} AND {conditions}
UNION ALL
SELECT {columns} FROM hub_shares s JOIN hub_items i ON i.id = s.item_id
WHERE s.shared_with = {tenant} AND i.visibility = 'shared' AND i.publisher_id <> {tenant}
  AND {conditions}"""


def conditions(query: SearchQuery, match: Match | None, arg: Params) -> str:
    """Only the conditions in use, each in a form an index serves (``@>`` rather than
    ``= ANY``; a ``$1 = '' OR ...`` form would hide the indexes behind the OR)."""
    found = [match.condition("i.search")] if match is not None else []
    if query.kind:
        found.append(f"i.kind = {arg(query.kind)}")
    if query.modality:
        found.append(f"i.modalities @> ARRAY[{arg(query.modality)}::text]")
    if query.category:
        found.append(f"i.category = {arg(query.category)}")
    if query.publisher:
        found.append(
            f"i.publisher_id = (SELECT id FROM tenants WHERE slug = {arg(query.publisher)})"
        )
    if query.equipment_class:
        found.append(f"i.equipment_classes @> ARRAY[{arg(query.equipment_class)}::text]")
    return " AND ".join(found) or "true"


def page_sql(ctx: TenantContext, query: SearchQuery, terms: Terms) -> tuple[str, list[Any]]:
    """Raw SQL: full-text matching and ranking (tsvector) over a union of audiences, which
    Piccolo cannot say. The page's rows with their publisher and installed version; the
    installed versions are looked up for the page's rows only."""
    arg = Params()
    tenant = arg(ctx.tenant_id)
    match = Match(terms, arg) if terms.text else None
    where = conditions(query, match, arg)
    ctes: list[str] = []
    tier = rank = fuzzy = "0"
    if match is not None and query.order == "relevance":
        ctes = match.ctes()
        tier, rank = match.tier("u.search", "u.name", "u.slug"), match.rank("u.search")
        fuzzy = match.similarity("r.search")
    order = SORTS[query.order]
    limit, offset = arg(query.per_page), arg((query.page - 1) * query.per_page)
    sql = f"""{with_clause(*ctes)}
SELECT p.id, p.kind, p.slug, p.name, p.summary, p.latest_version, p.category, p.modalities,
       p.install_count, p.updated_at, p.visibility, p.total, t.name AS publisher,
       t.slug AS publisher_slug, l.version AS installed_version, l.id AS library_id
FROM (
    SELECT r.*, CASE WHEN r.tier = 3 THEN {fuzzy} ELSE 0 END AS fuzzy
    FROM (SELECT u.*, {tier} AS tier, {rank} AS rank, count(*) OVER () AS total
          FROM ({audiences(_COLUMNS, where, tenant)}) u) r
    ORDER BY {order.format(p="")} LIMIT {limit} OFFSET {offset}
) p
JOIN tenants t ON t.id = p.publisher_id
LEFT JOIN library_items l ON l.hub_item_id = p.id AND l.source = 'installed'
ORDER BY {order.format(p="p.")}"""
    return sql, arg.values


def facets_sql(ctx: TenantContext, query: SearchQuery, terms: Terms) -> tuple[str, list[Any]]:
    """Raw SQL: counts over unnested arrays of the same matches (Piccolo has no unnest)."""
    arg = Params()
    tenant = arg(ctx.tenant_id)
    where = conditions(query, Match(terms, arg) if terms.text else None, arg)
    return _facets_sql(audiences(_COLUMNS, where, tenant)), arg.values


def _facets_sql(matches: str) -> str:
    return f"""
WITH f AS (SELECT u.kind, u.category, u.modalities, u.equipment_classes, u.publisher_id
           FROM ({matches}) u)
SELECT 'kind' AS facet, kind AS value, NULL AS label, count(*) AS n FROM f GROUP BY kind
UNION ALL SELECT 'category', category, NULL, count(*) FROM f
    WHERE category IS NOT NULL GROUP BY category
UNION ALL SELECT 'modality', m, NULL, count(*) FROM f, unnest(modalities) m GROUP BY m
UNION ALL SELECT 'publisher', p.slug, p.name, count(*) FROM f JOIN tenants p
    ON p.id = f.publisher_id GROUP BY p.slug, p.name
UNION ALL SELECT 'equipment_class', e, (SELECT min(x.name) FROM hub_public_items x
    WHERE x.kind = 'equipment_class' AND x.slug = e), count(*)
    FROM f, unnest(equipment_classes) e GROUP BY e
"""


_HIT = [f.name for f in fields(Hit)]


def _flat(statement: tuple[str, list[Any]]) -> list[Any]:
    return [statement[0], *statement[1]]


async def search(
    ctx: TenantContext, query: SearchQuery, *, facets: bool = True, terms: Terms | None = None
) -> SearchResult:
    """One page of the items ``query`` finds, with facet counts over all it finds. ``terms``:
    the query's words already expanded (the top-bar search expands them once for all)."""
    async with tenant_transaction(ctx) as connection:
        if terms is None:
            terms = await expand(connection, query.text, [VOCABULARY])
        rows = await connection.fetch(*_flat(page_sql(ctx, query, terms)))
        counts: dict[str, list[FacetValue]] = {name: [] for name in FACETS}
        if facets:
            for row in await connection.fetch(*_flat(facets_sql(ctx, query, terms))):
                shown = row["label"] or label(row["facet"], row["value"])
                counts[row["facet"]].append(FacetValue(row["value"], shown, row["n"]))
    for values in counts.values():
        values.sort(key=lambda value: (-value.count, value.label))
    # Every item has one kind: the kind counts add up to all matches, past the last page too.
    total = sum(v.count for v in counts["kind"]) if facets else (rows[0]["total"] if rows else 0)
    return SearchResult([Hit(**{k: row[k] for k in _HIT}) for row in rows], total, counts)


@dataclass(frozen=True)
class Installed:
    """What this tenant installed of a HUB item (an installed copy, not a fork)."""

    library_id: UUID
    version: str


async def installed(ctx: TenantContext, item_id: UUID) -> Installed | None:
    # Raw SQL like the library's other reads of library_items (hub.library).
    async with tenant_transaction(ctx) as connection:
        row = await connection.fetchrow(
            "SELECT id, version FROM library_items WHERE hub_item_id = $1 AND source = 'installed'",
            item_id,
        )
    return Installed(row["id"], row["version"]) if row else None


@dataclass(frozen=True)
class LibraryHit:
    id: UUID
    kind: str
    slug: str
    name: str
    version: str
    source: str


async def find_library(ctx: TenantContext, terms: Terms, limit: int) -> list[LibraryHit]:
    """The tenant's library items (installed and forked) that ``terms`` find, best first
    (``hub:read``)."""
    await authorize(ctx, "hub", "read")
    if not terms.text:
        return []
    arg = Params()
    match = Match(terms, arg)
    documents = (
        "docs AS MATERIALIZED (SELECT l.id, l.kind, l.slug, l.name, l.version, l.source, "
        "to_tsvector('english', l.name || ' ' || replace(l.slug, '-', ' ')) AS doc "
        "FROM library_items l)"
    )
    # Raw SQL: full-text matching and ranking (tsvector), which Piccolo cannot say.
    sql = f"""{with_clause(*match.ctes(), documents)}
SELECT r.id, r.kind, r.slug, r.name, r.version, r.source FROM (
    SELECT d.*, {match.tier("d.doc", "d.name", "d.slug")} AS tier, {match.rank("d.doc")} AS rank,
           {match.similarity("d.doc")} AS fuzzy
    FROM docs d WHERE {match.condition("d.doc")}) r
ORDER BY r.tier, r.fuzzy DESC, r.rank DESC, r.name, r.id LIMIT {arg(limit)}"""
    async with tenant_transaction(ctx) as connection:
        rows = await connection.fetch(sql, *arg.values)
    return [LibraryHit(**dict(row)) for row in rows]
