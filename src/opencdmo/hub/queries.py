"""Reading the catalogue: item pages, versions, dependency trees (search: ``hub.search``).

Every query runs in the caller's tenant scope, so row-level security shows only what the
tenant may see (public, shared with it, or its own).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from opencdmo.db.tx import tenant_transaction
from opencdmo.errors import NotFound
from opencdmo.hub.tables import HubDependency, HubItem, HubVersion
from opencdmo.scope import TenantContext

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
