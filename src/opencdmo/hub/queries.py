"""Reading the catalogue: item pages, versions, dependency trees (search: ``hub.search``).

Every query runs in the caller's tenant scope, so row-level security shows only what the
tenant may see (public, shared with it, or its own).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from opencdmo.db.tx import tenant_transaction
from opencdmo.errors import NotFound
from opencdmo.scope import TenantContext


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
