"""Reading the catalogue: full-text search with facets, item pages, dependency trees.

Every query runs in the caller's tenant scope, so row-level security shows only what the
tenant may see (public, shared with it, or its own), in search results and counts alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from opencdmo.db.tx import tenant_transaction
from opencdmo.errors import NotFound, ValidationFailed
from opencdmo.hub.content import KIND_DIRS
from opencdmo.hub.tables import HubDependency, HubItem, HubVersion
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


# --- items, versions and dependencies as typed rows ---------------------------------------
# Each function below without a ``ctx`` runs in the transaction open in its context (a
# command's unit of work or a page's read view); none opens or commits one of its own.


@dataclass(frozen=True)
class Version:
    """A published version as an item page lists it."""

    id: UUID
    version: str
    content_hash: str
    changelog: str
    published_at: datetime
    deprecated_message: str | None
    yanked_at: datetime | None


@dataclass(frozen=True)
class Lineage:
    """The HUB version an item was forked from."""

    id: UUID
    name: str
    version: str
    publisher: str


@dataclass(frozen=True)
class Fork:
    """An item forked from one of this item's versions."""

    id: UUID
    name: str
    from_version: str
    publisher: str


@dataclass(frozen=True)
class Item:
    """An item with its publisher, its versions (newest first), its lineage and its forks."""

    id: UUID
    publisher_id: UUID
    kind: str
    slug: str
    visibility: str
    name: str
    summary: str
    latest_version: str | None
    category: str | None
    modalities: list[str]
    equipment_classes: list[str]
    tags: list[str]
    install_count: int
    forked_from_version_id: UUID | None
    created_at: datetime
    updated_at: datetime
    publisher: str
    publisher_slug: str
    versions: tuple[Version, ...]
    forked_from: Lineage | None
    forks: tuple[Fork, ...]


@dataclass(frozen=True)
class VersionContent:
    """A version with its content and its item's kind, slug and name (what a library copies)."""

    id: UUID
    item_id: UUID
    version: str
    content: dict[str, Any]
    content_hash: str
    yanked_at: datetime | None
    kind: str
    slug: str
    name: str


@dataclass(frozen=True)
class Dependency:
    """One version in a dependency tree, at its depth below the root."""

    depth: int
    pinned: bool
    version: str
    item_id: UUID
    kind: str
    slug: str
    name: str


_NEWEST_FIRST = (HubVersion.major, HubVersion.minor, HubVersion.patch)
_ITEM_COLUMNS = tuple(
    getattr(HubItem, f.name)
    for f in fields(Item)
    if f.name not in ("publisher", "publisher_slug", "versions", "forked_from", "forks")
)


async def get_item(ctx: TenantContext, item_id: UUID) -> Item:
    """The item with its versions (newest first); 404 when missing or not visible."""
    async with tenant_transaction(ctx):
        raw = await (
            HubItem.select(
                *_ITEM_COLUMNS,
                HubItem.publisher_id._.name.as_alias("publisher"),
                HubItem.publisher_id._.slug.as_alias("publisher_slug"),
            )
            .where(HubItem.id == item_id)
            .first()
        )
        if raw is None:
            raise NotFound("No such HUB item.")
        versions = await _versions(item_id)
        lineage = await _lineage(raw["forked_from_version_id"])
        forks = await _forks(item_id)
    return Item(**raw, versions=versions, forked_from=lineage, forks=forks)


async def _versions(item_id: UUID) -> tuple[Version, ...]:
    rows = await (
        HubVersion.select(*(getattr(HubVersion, f.name) for f in fields(Version)))
        .where(HubVersion.item_id == item_id)
        .order_by(*_NEWEST_FIRST, ascending=False)
    )
    return tuple(Version(**r) for r in rows)


async def _lineage(version_id: UUID | None) -> Lineage | None:
    if version_id is None:
        return None
    raw = await (
        HubVersion.select(
            HubVersion.item_id.as_alias("id"),
            HubVersion.item_id._.name.as_alias("name"),
            HubVersion.version,
            HubVersion.item_id._.publisher_id._.name.as_alias("publisher"),
        )
        .where(HubVersion.id == version_id)
        .first()
    )
    return None if raw is None else Lineage(**raw)


async def _forks(item_id: UUID) -> tuple[Fork, ...]:
    rows = await (
        HubItem.select(
            HubItem.id,
            HubItem.name,
            HubItem.forked_from_version_id._.version.as_alias("from_version"),
            HubItem.publisher_id._.name.as_alias("publisher"),
        )
        .where(HubItem.forked_from_version_id._.item_id == item_id)
        .order_by(HubItem.created_at)
    )
    return tuple(Fork(**r) for r in rows)


def _version_content(raw: dict[str, Any]) -> VersionContent:
    return VersionContent(**{**raw, "content": json.loads(raw["content"])})


_VERSION_CONTENT = (
    HubVersion.id,
    HubVersion.item_id,
    HubVersion.version,
    HubVersion.content,
    HubVersion.content_hash,
    HubVersion.yanked_at,
    HubVersion.item_id._.kind.as_alias("kind"),
    HubVersion.item_id._.slug.as_alias("slug"),
    HubVersion.item_id._.name.as_alias("name"),
)


async def version_content(item_id: UUID, version: str | None) -> VersionContent | None:
    """That version of the item (yanked or not), or with ``None`` the latest not yanked."""
    query = HubVersion.select(*_VERSION_CONTENT).where(HubVersion.item_id == item_id)
    if version is None:
        query = query.where(HubVersion.yanked_at.is_null())
    else:
        query = query.where(HubVersion.version == version)
    raw = await query.order_by(*_NEWEST_FIRST, ascending=False).first()
    return None if raw is None else _version_content(raw)


async def get_version(ctx: TenantContext, item_id: UUID, version: str) -> VersionContent:
    async with tenant_transaction(ctx):
        found = await version_content(item_id, version)
    if found is None:
        raise NotFound("No such HUB item version.")
    return found


# Raw SQL: a recursive query (Piccolo has no WITH RECURSIVE).
_TREE = """
WITH RECURSIVE tree AS (
    SELECT d.depends_on_id AS id, d.pinned, 1 AS depth, ARRAY[d.depends_on_id] AS path
    FROM hub_dependencies d WHERE d.version_id = {}
    UNION ALL
    SELECT d.depends_on_id, d.pinned, tree.depth + 1, tree.path || d.depends_on_id
    FROM tree JOIN hub_dependencies d ON d.version_id = tree.id
    WHERE NOT d.depends_on_id = ANY (tree.path) AND tree.depth < 20
)
SELECT tree.depth, tree.pinned, v.version, i.id AS item_id, i.kind, i.slug, i.name
FROM tree JOIN hub_versions v ON v.id = tree.id JOIN hub_items i ON i.id = v.item_id
ORDER BY tree.path
"""


async def dependency_tree(ctx: TenantContext, version_id: UUID) -> list[Dependency]:
    """The closure of a version's dependencies, depth-first, each with its depth."""
    async with tenant_transaction(ctx):
        rows = await HubDependency.raw(_TREE, version_id)
    return [Dependency(**r) for r in rows]


# Raw SQL: a recursive query (Piccolo has no WITH RECURSIVE).
_CLOSURE = """
WITH RECURSIVE tree AS (
    SELECT {}::uuid AS id, ARRAY[{}::uuid] AS path
    UNION ALL
    SELECT d.depends_on_id, tree.path || d.depends_on_id
    FROM tree JOIN hub_dependencies d ON d.version_id = tree.id
    WHERE NOT d.depends_on_id = ANY (tree.path)
)
SELECT DISTINCT ON (v.id) v.id, v.item_id, v.version, v.content, v.content_hash, v.yanked_at,
       i.kind, i.slug, i.name
FROM tree JOIN hub_versions v ON v.id = tree.id JOIN hub_items i ON i.id = v.item_id
"""


async def closure(version_id: UUID) -> list[VersionContent]:
    """The version and everything it depends on, directly or not, each once."""
    rows = await HubDependency.raw(_CLOSURE, version_id, version_id)
    return [_version_content(r) for r in rows]


async def latest_available(item_ids: list[UUID]) -> dict[UUID, str]:
    """The latest version not yanked of each item (items with none are left out)."""
    if not item_ids:
        return {}
    rows = await (
        HubVersion.select(HubVersion.item_id, HubVersion.version)
        .where(HubVersion.item_id.is_in(sorted(set(item_ids))) & HubVersion.yanked_at.is_null())
        .distinct(on=[HubVersion.item_id])
        .order_by(HubVersion.item_id)
        .order_by(*_NEWEST_FIRST, ascending=False)
    )
    return {r["item_id"]: r["version"] for r in rows}


async def version_contents(item_id: UUID | None) -> list[VersionContent]:
    """Every version of the item with its content, oldest first (none for no item)."""
    if item_id is None:
        return []
    rows = await (
        HubVersion.select(*_VERSION_CONTENT)
        .where(HubVersion.item_id == item_id)
        .order_by(*_NEWEST_FIRST)
    )
    return [_version_content(r) for r in rows]
