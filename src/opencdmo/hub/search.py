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
from opencdmo.db.textsearch import Match, Params, Terms, as_typed, expand, with_clause
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
    "i.category, i.modalities, i.equipment_classes, i.install_count, i.updated_at"
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


def search_sql(
    ctx: TenantContext, query: SearchQuery, terms: Terms, *, facets: bool = True
) -> tuple[str, list[Any]]:
    """Raw SQL: full-text matching and ranking (tsvector) over a union of audiences, and
    counts over unnested arrays, none of which Piccolo can say. One statement: the matches
    once, then the page's rows (with publisher and installed version, looked up for the
    page's rows only) and, with ``facets``, the counts over all matches. It returns one row
    at least (the counts), with the page's columns null when the page is empty."""
    arg = Params()
    tenant = arg(ctx.tenant_id)
    match = Match(terms, arg) if terms.text else None
    ranked = match is not None and query.order == "relevance"
    columns = _COLUMNS + (", i.search" if match is not None else "")
    tier = rank = fuzzy = "0"
    kept = _COLUMNS.replace("i.", "u.")  # the document only where the page's order needs it
    ctes = match.ctes() if match is not None else []
    if ranked and match is not None:
        tier, rank = match.tier("u.search", "u.name", "u.slug"), match.rank("u.search")
        if match.terms.corrected:
            kept += ", u.search"
            fuzzy = match.similarity("r.search")
    union = audiences(columns, conditions(query, match, arg), tenant)
    ctes.append(
        f"matches AS MATERIALIZED (SELECT {kept}, {tier} AS tier, {rank} AS rank FROM ({union}) u)"
    )
    order = SORTS[query.order]
    ctes.append(
        f"ranked AS (SELECT r.*, CASE WHEN r.tier = 3 THEN {fuzzy} ELSE 0 END AS fuzzy "
        f"FROM matches r ORDER BY {order.format(p='')} "
        f"LIMIT {arg(query.per_page)} OFFSET {arg((query.page - 1) * query.per_page)}), "
        f"top AS (SELECT ranked.*, row_number() OVER (ORDER BY {order.format(p='')}) AS place "
        "FROM ranked)"
    )
    counts = "SELECT NULL::text[], NULL::text[], NULL::text[], NULL::bigint[]"
    if facets:
        ctes.append(f"counts AS ({_COUNTS})")
        counts = (
            "SELECT array_agg(facet), array_agg(value), array_agg(label), array_agg(n) FROM counts"
        )
    # The counts once, on the first row (the page's first, or the only one). Publishers are
    # looked up per row (LIMIT 1 keeps the planner from hashing every tenant instead).
    first = "p.place IS NULL OR p.place = 1"
    sql = f"""WITH {", ".join(ctes)}
SELECT n.total, CASE WHEN {first} THEN c.facets END AS facets,
       CASE WHEN {first} THEN c.facet_values END AS facet_values,
       CASE WHEN {first} THEN c.facet_labels END AS facet_labels,
       CASE WHEN {first} THEN c.facet_counts END AS facet_counts,
       p.id, p.kind, p.slug, p.name, p.summary, p.latest_version, p.category, p.modalities,
       p.install_count, p.updated_at, p.visibility, t.name AS publisher,
       t.slug AS publisher_slug, l.version AS installed_version, l.id AS library_id
FROM (SELECT count(*) FROM matches) AS n (total)
CROSS JOIN ({counts}) AS c (facets, facet_values, facet_labels, facet_counts)
LEFT JOIN (top p
           CROSS JOIN LATERAL (SELECT name, slug FROM tenants WHERE id = p.publisher_id LIMIT 1) t
           LEFT JOIN library_items l ON l.tenant_id = {tenant} AND l.hub_item_id = p.id
                                        AND l.source = 'installed') ON true
ORDER BY {order.format(p="p.")}"""
    return sql, arg.values


_COUNTS = """
SELECT 'kind' AS facet, kind AS value, NULL AS label, count(*) AS n FROM matches GROUP BY kind
UNION ALL SELECT 'category', category, NULL, count(*) FROM matches
    WHERE category IS NOT NULL GROUP BY category
UNION ALL SELECT 'modality', m, NULL, count(*) FROM matches, unnest(modalities) m GROUP BY m
UNION ALL SELECT 'publisher', p.slug, p.name, f.n
    FROM (SELECT publisher_id, count(*) AS n FROM matches GROUP BY publisher_id) f
    CROSS JOIN LATERAL (SELECT slug, name FROM tenants WHERE id = f.publisher_id LIMIT 1) p
UNION ALL SELECT 'equipment_class', e, (SELECT min(x.name) FROM hub_public_items x
    WHERE x.kind = 'equipment_class' AND x.slug = e), count(*)
    FROM matches, unnest(equipment_classes) e GROUP BY e
"""


_HIT = [f.name for f in fields(Hit)]


async def search(
    ctx: TenantContext, query: SearchQuery, *, facets: bool = True, terms: Terms | None = None
) -> SearchResult:
    """One page of the items ``query`` finds, with facet counts over all it finds.

    The words are searched as typed (each also a prefix) first; only when that finds less
    than a page are they looked up for typos and searched again with their corrections
    (which rank after every match of the words as typed, so they could only ever fill a
    page the typed words leave short). ``terms``: the words already expanded (the search
    box expands them once for all it searches)."""
    async with tenant_transaction(ctx) as connection:
        return await search_on(connection, ctx, query, facets=facets, terms=terms)


async def search_on(
    connection: Any,
    ctx: TenantContext,
    query: SearchQuery,
    *,
    facets: bool = True,
    terms: Terms | None = None,
) -> SearchResult:
    """``search`` on the connection of the transaction open for ``ctx``."""
    typed = terms or as_typed(query.text)
    rows = await connection.fetch(*_statement(ctx, query, typed, facets))
    if terms is None and rows[0]["total"] < query.per_page and query.text.strip():
        terms = await expand(connection, query.text, [VOCABULARY])
        if terms.corrected:
            rows = await connection.fetch(*_statement(ctx, query, terms, facets))
    return _result(rows)


def _statement(ctx: TenantContext, query: SearchQuery, terms: Terms, facets: bool) -> list[Any]:
    sql, args = search_sql(ctx, query, terms, facets=facets)
    return [sql, *args]


def _result(rows: list[Any]) -> SearchResult:
    first = rows[0]
    counts: dict[str, list[FacetValue]] = {name: [] for name in FACETS}
    found = zip(
        first["facets"] or (),
        first["facet_values"] or (),
        first["facet_labels"] or (),
        first["facet_counts"] or (),
        strict=True,
    )
    for facet, value, shown, n in found:
        counts[facet].append(FacetValue(value, shown or label(facet, value), n))
    for values in counts.values():
        values.sort(key=lambda value: (-value.count, value.label))
    hits = [Hit(**{k: row[k] for k in _HIT}) for row in rows if row["id"] is not None]
    return SearchResult(hits, first["total"], counts)


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
