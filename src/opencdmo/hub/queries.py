"""Reading the catalogue: full-text search with facets, item pages, dependency trees.

Every query runs in the caller's tenant scope, so row-level security shows only what the
tenant may see (public, shared with it, or its own), in search results and counts alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from opencdmo.db.tx import tenant_transaction
from opencdmo.errors import NotFound, ValidationFailed
from opencdmo.hub.content import KIND_DIRS
from opencdmo.scope import TenantContext

SORTS = {
    "relevance": "rank DESC, i.name, i.id",
    "installs": "i.install_count DESC, i.name, i.id",
    "updated": "i.updated_at DESC, i.name, i.id",
    "name": "i.name, i.id",
}
FACETS = ("kind", "modality", "category", "publisher", "equipment_class")


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
        for name in ("text", "modality", "category", "publisher", "equipment_class"):
            value = getattr(self, name)
            if value is not None and ("\x00" in value or len(value) > 200):
                raise ValidationFailed(
                    f"'{name}' is too long or contains a NUL character.", details={"field": name}
                )

    @property
    def order(self) -> str:
        """Relevance needs search words; without them the list is by name."""
        return "name" if self.sort == "relevance" and not self.text.strip() else self.sort

    def filters(self) -> dict[str, str]:
        values = {name: getattr(self, name) for name in FACETS}
        return {k: v for k, v in values.items() if v}


@dataclass
class SearchResult:
    items: list[dict[str, Any]]
    total: int
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


_FILTERS = {
    "text": "i.search @@ websearch_to_tsquery('english', ${n})",
    "kind": "i.kind = ${n}",
    "modality": "${n} = ANY (i.modalities)",
    "category": "i.category = ${n}",
    "publisher": "t.slug = ${n}",
    "equipment_class": "${n} = ANY (i.equipment_classes)",
}


def where(query: SearchQuery) -> tuple[str, list[Any]]:
    """FROM and WHERE with only the conditions in use (so the planner can use the indexes:
    a ``$1 = '' OR ...`` form would hide the full-text index behind the OR)."""
    clauses, args = ["true"], []
    values = {
        "text": query.text.strip(),
        "kind": query.kind,
        "modality": query.modality,
        "category": query.category,
        "publisher": query.publisher,
        "equipment_class": query.equipment_class,
    }
    for name, value in values.items():
        if value:
            args.append(value)
            clauses.append(_FILTERS[name].replace("${n}", f"${len(args)}"))
    sql = "FROM hub_items i JOIN tenants t ON t.id = i.publisher_id WHERE " + " AND ".join(clauses)
    return sql, args


def facets_sql(from_where: str) -> str:
    return f"""
WITH f AS (SELECT i.kind, i.category, i.modalities, i.equipment_classes, t.slug AS publisher
           {from_where})
SELECT 'kind' AS facet, kind AS value, count(*) AS n FROM f GROUP BY kind
UNION ALL SELECT 'category', category, count(*) FROM f WHERE category IS NOT NULL GROUP BY category
UNION ALL SELECT 'modality', m, count(*) FROM f, unnest(modalities) m GROUP BY m
UNION ALL SELECT 'publisher', publisher, count(*) FROM f GROUP BY publisher
UNION ALL SELECT 'equipment_class', e, count(*) FROM f, unnest(equipment_classes) e GROUP BY e
"""


def page_sql(query: SearchQuery) -> tuple[str, list[Any]]:
    from_where, args = where(query)
    rank = "0"
    if query.text.strip():
        rank = "ts_rank(i.search, websearch_to_tsquery('english', $1))"
    args = [*args, query.per_page, (query.page - 1) * query.per_page]
    sql = (
        "SELECT i.id, i.kind, i.slug, i.name, i.summary, i.latest_version, i.category, "
        "i.modalities, i.install_count, i.updated_at, i.visibility, t.name AS publisher, "
        f"t.slug AS publisher_slug, {rank} AS rank, count(*) OVER () AS total "
        f"{from_where} ORDER BY {SORTS[query.order]} LIMIT ${len(args) - 1} OFFSET ${len(args)}"
    )
    return sql, args


async def search(ctx: TenantContext, query: SearchQuery, *, facets: bool = True) -> SearchResult:
    sql, args = page_sql(query)
    from_where, filter_args = where(query)
    async with tenant_transaction(ctx) as connection:
        rows = [dict(r) for r in await connection.fetch(sql, *args)]
        counts: dict[str, list[tuple[str, int]]] = {name: [] for name in FACETS}
        if facets:
            for row in await connection.fetch(facets_sql(from_where), *filter_args):
                counts[row["facet"]].append((row["value"], row["n"]))
    for values in counts.values():
        values.sort(key=lambda pair: (-pair[1], pair[0]))
    total = rows[0]["total"] if rows else 0
    return SearchResult(rows, total, counts)


async def get_item(ctx: TenantContext, item_id: UUID) -> dict[str, Any]:
    """The item with its versions (newest first); 404 when missing or not visible."""
    async with tenant_transaction(ctx) as connection:
        item = await connection.fetchrow(
            "SELECT i.*, t.name AS publisher, t.slug AS publisher_slug FROM hub_items i "
            "JOIN tenants t ON t.id = i.publisher_id WHERE i.id = $1",
            item_id,
        )
        if item is None:
            raise NotFound("No such HUB item.")
        versions = await connection.fetch(
            "SELECT id, version, content_hash, changelog, published_at, deprecated_message, "
            "yanked_at FROM hub_versions WHERE item_id = $1 "
            "ORDER BY major DESC, minor DESC, patch DESC",
            item_id,
        )
        lineage = await connection.fetchrow(
            "SELECT i.id, i.name, v.version, t.name AS publisher FROM hub_versions v "
            "JOIN hub_items i ON i.id = v.item_id JOIN tenants t ON t.id = i.publisher_id "
            "WHERE v.id = $1",
            item["forked_from_version_id"],
        )
        forks = await connection.fetch(
            "SELECT i.id, i.name, v.version AS from_version, t.name AS publisher "
            "FROM hub_items i JOIN hub_versions v ON v.id = i.forked_from_version_id "
            "JOIN tenants t ON t.id = i.publisher_id WHERE v.item_id = $1 ORDER BY i.created_at",
            item_id,
        )
    result = dict(item)
    result.pop("search", None)
    result["versions"] = [dict(v) for v in versions]
    result["forked_from"] = dict(lineage) if lineage else None
    result["forks"] = [dict(f) for f in forks]
    return result


async def get_version(ctx: TenantContext, item_id: UUID, version: str) -> dict[str, Any]:
    async with tenant_transaction(ctx) as connection:
        row = await connection.fetchrow(
            "SELECT v.*, i.kind, i.slug FROM hub_versions v JOIN hub_items i ON i.id = v.item_id "
            "WHERE v.item_id = $1 AND v.version = $2",
            item_id,
            version,
        )
    if row is None:
        raise NotFound("No such HUB item version.")
    return dict(row)


async def dependency_tree(ctx: TenantContext, version_id: UUID) -> list[dict[str, Any]]:
    """The closure of a version's dependencies, depth-first, each with its depth."""
    async with tenant_transaction(ctx) as connection:
        rows = await connection.fetch(
            """
            WITH RECURSIVE tree AS (
                SELECT d.depends_on_id AS id, d.pinned, 1 AS depth,
                       ARRAY[d.depends_on_id] AS path
                FROM hub_dependencies d WHERE d.version_id = $1
                UNION ALL
                SELECT d.depends_on_id, d.pinned, tree.depth + 1, tree.path || d.depends_on_id
                FROM tree JOIN hub_dependencies d ON d.version_id = tree.id
                WHERE NOT d.depends_on_id = ANY (tree.path) AND tree.depth < 20
            )
            SELECT tree.depth, tree.pinned, tree.path, v.version, i.id AS item_id, i.kind,
                   i.slug, i.name
            FROM tree JOIN hub_versions v ON v.id = tree.id JOIN hub_items i ON i.id = v.item_id
            ORDER BY tree.path
            """,
            version_id,
        )
    return [dict(r) for r in rows]
