"""A tenant's library: installing HUB versions (with their dependency closure), seeing and
applying updates with a structural diff, forking.

Installing copies: what a tenant installed never changes until it upgrades explicitly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.engine import get_engine
from opencdmo.db.tx import tenant_transaction, unit_of_work
from opencdmo.errors import Conflict, NotFound, ValidationFailed
from opencdmo.hub.diff import Change, diff
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings

_VERSION = """
SELECT v.id, v.item_id, v.version, v.content, v.content_hash, v.yanked_at, v.major, v.minor,
       v.patch, i.kind, i.slug, i.name
FROM hub_versions v JOIN hub_items i ON i.id = v.item_id
WHERE v.item_id = $1 AND ($2::text IS NULL OR v.version = $2)
  AND ($2::text IS NOT NULL OR v.yanked_at IS NULL)
ORDER BY v.major DESC, v.minor DESC, v.patch DESC LIMIT 1
"""

_CLOSURE = """
WITH RECURSIVE tree AS (
    SELECT $1::uuid AS id, ARRAY[$1::uuid] AS path
    UNION ALL
    SELECT d.depends_on_id, tree.path || d.depends_on_id
    FROM tree JOIN hub_dependencies d ON d.version_id = tree.id
    WHERE NOT d.depends_on_id = ANY (tree.path)
)
SELECT DISTINCT ON (v.id) v.id, v.item_id, v.version, v.content, v.content_hash,
       i.kind, i.slug, i.name
FROM tree JOIN hub_versions v ON v.id = tree.id JOIN hub_items i ON i.id = v.item_id
"""


# Raw SQL: Piccolo has no advisory locks. Held until the install's transaction ends.
_INSTALL_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('library:' || $1, 0))"


async def install(ctx: TenantContext, item_id: UUID, version: str | None = None) -> list[str]:
    """Install a version (default: the latest not yanked) and every dependency not yet in the
    library; returns what was installed. Items already installed keep their version.
    Installs in one tenant take turns (a transaction-scoped advisory lock), so concurrent
    installs of one item give one install and a 409 for the others."""
    await authorize(ctx, "hub", "install")
    async with tenant_transaction(ctx) as connection:
        await connection.execute(_INSTALL_LOCK, str(ctx.tenant_id))
        chosen = await connection.fetchrow(_VERSION, item_id, version)
        if chosen is None:
            raise NotFound("No such HUB item or version.")
        if chosen["yanked_at"] is not None:
            raise Conflict(f"Version {chosen['version']} was yanked: it cannot be installed anew.")
        installed: list[str] = []
        for row in await connection.fetch(_CLOSURE, chosen["id"]):
            exists = await connection.fetchval(
                "SELECT id FROM library_items WHERE hub_item_id = $1 AND source = 'installed'",
                row["item_id"],
            )
            if exists is not None:
                if row["item_id"] == item_id:
                    raise Conflict(f"{row['name']} is already installed; upgrade it instead.")
                continue
            library_id = await _copy(connection, ctx, row, "installed")
            await connection.execute("SELECT hub_count_install($1)", row["item_id"])
            await audit.record(
                ctx,
                "library.installed",
                "library_item",
                library_id,
                new={
                    "hub_item_id": row["item_id"],
                    "kind": row["kind"],
                    "slug": row["slug"],
                    "version": row["version"],
                    "content_hash": row["content_hash"],
                    "as_dependency_of": None if row["item_id"] == item_id else str(item_id),
                },
            )
            installed.append(f"{row['kind']} {row['slug']} {row['version']}")
    return installed


async def _copy(connection: Any, ctx: TenantContext, row: Any, source: str) -> UUID:
    library_id = await connection.fetchval(
        "INSERT INTO library_items (tenant_id, source, hub_item_id, hub_version_id, kind, slug, "
        "name, version, content, content_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
        "RETURNING id",
        ctx.tenant_id,
        source,
        row["item_id"],
        row["id"],
        row["kind"],
        row["slug"],
        row["name"],
        row["version"],
        row["content"],
        row["content_hash"],
    )
    assert isinstance(library_id, UUID)
    return library_id


_LIBRARY = """
SELECT l.id, l.source, l.hub_item_id, l.hub_version_id, l.kind, l.slug, l.name, l.version,
       l.content_hash, l.revision, l.author_id, l.published_item_id, l.created_at, l.updated_at,
       i.latest_version,
       (SELECT v.version FROM hub_versions v WHERE v.item_id = l.hub_item_id
          AND v.yanked_at IS NULL ORDER BY v.major DESC, v.minor DESC, v.patch DESC LIMIT 1)
          AS available,
       (SELECT v.deprecated_message FROM hub_versions v WHERE v.id = l.hub_version_id)
          AS deprecated_message
FROM library_items l JOIN hub_items i ON i.id = l.hub_item_id
WHERE ($1::uuid IS NULL OR l.id = $1)
ORDER BY l.kind, l.name, l.created_at
"""


def _with_update(row: Any) -> dict[str, Any]:
    item = dict(row)
    item["update_available"] = (
        item["source"] == "installed"
        and item["available"] is not None
        and _key(item["available"]) > _key(item["version"])
    )
    return item


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


async def list_library(ctx: TenantContext) -> list[dict[str, Any]]:
    async with tenant_transaction(ctx) as connection:
        return [_with_update(r) for r in await connection.fetch(_LIBRARY, None)]


async def get_library_item(ctx: TenantContext, library_id: UUID) -> dict[str, Any]:
    async with tenant_transaction(ctx) as connection:
        row = await connection.fetchrow(_LIBRARY, library_id)
        if row is None:
            raise NotFound("No such library item.")
        content = await connection.fetchval(
            "SELECT content FROM library_items WHERE id = $1", library_id
        )
    item = _with_update(row)
    item["content"] = json.loads(content)
    return item


async def preview_upgrade(
    ctx: TenantContext, library_id: UUID, to: str | None
) -> tuple[dict[str, Any], dict[str, Any], list[Change]]:
    """(library item, target version row, structural diff from installed to target)."""
    item = await get_library_item(ctx, library_id)
    async with tenant_transaction(ctx) as connection:
        target = await connection.fetchrow(_VERSION, item["hub_item_id"], to)
    if target is None:
        raise NotFound("No such version of this HUB item.")
    return item, dict(target), diff(item["content"], json.loads(target["content"]))


async def upgrade(
    ctx: TenantContext, library_id: UUID, to: str, reason: str | None = None
) -> list[Change]:
    """Move an installed copy to a newer version, explicitly and audited (with the diff)."""
    await authorize(ctx, "hub", "install")
    item, target, changes = await preview_upgrade(ctx, library_id, to)
    if item["source"] != "installed":
        raise Conflict("Only installed items are upgraded; a fork keeps its own content.")
    if target["yanked_at"] is not None:
        raise Conflict(f"Version {to} was yanked.")
    if _key(target["version"]) <= _key(item["version"]):
        raise ValidationFailed(
            f"{to} is not newer than the installed {item['version']}.", details={"field": "to"}
        )
    async with tenant_transaction(ctx) as connection:
        await connection.execute(
            "UPDATE library_items SET hub_version_id = $2, version = $3, content = $4, "
            "content_hash = $5, name = $6, updated_at = clock_timestamp() WHERE id = $1",
            library_id,
            target["id"],
            target["version"],
            target["content"],
            target["content_hash"],
            target["name"],
        )
        await audit.record(
            ctx,
            "library.upgraded",
            "library_item",
            library_id,
            old={"version": item["version"], "content_hash": item["content_hash"]},
            new={
                "version": target["version"],
                "content_hash": target["content_hash"],
                "changes": [f"{c.op} {c.path}" for c in changes],
            },
            reason=reason,
        )
    return changes


# --- forks -------------------------------------------------------------------------------


async def fork(ctx: TenantContext, item_id: UUID, version: str | None = None) -> UUID:
    """An editable copy owned by the tenant, remembering the version it came from."""
    await authorize(ctx, "hub", "fork")
    async with tenant_transaction(ctx) as connection:
        chosen = await connection.fetchrow(_VERSION, item_id, version)
        if chosen is None:
            raise NotFound("No such HUB item or version.")
        library_id = await _copy(connection, ctx, chosen, "forked")
        await connection.execute(
            "UPDATE library_items SET author_id = $2 WHERE id = $1", library_id, ctx.user_id
        )
        await audit.record(
            ctx,
            "library.forked",
            "library_item",
            library_id,
            new={
                "forked_from_item": item_id,
                "forked_from_version": chosen["version"],
                "content_hash": chosen["content_hash"],
            },
        )
    return library_id


async def _fork(connection: Any, library_id: UUID) -> Any:
    row = await connection.fetchrow(
        "SELECT * FROM library_items WHERE id = $1 FOR UPDATE", library_id
    )
    if row is None:
        raise NotFound("No such library item.")
    if row["source"] != "forked":
        raise Conflict("Installed items are read-only copies; fork the item to edit it.")
    return row


async def edit_fork(
    ctx: TenantContext,
    library_id: UUID,
    content: dict[str, Any],
    expected_revision: int | None = None,
) -> list[Change]:
    """Replace a fork's content (schema and range rules checked); audited with the diff."""
    await authorize(ctx, "hub", "fork")
    from opencdmo.canonical import content_hash
    from opencdmo.hub.content import validate
    from opencdmo.hub.rules import range_problems

    async with tenant_transaction(ctx) as connection:
        row = await _fork(connection, library_id)
        if expected_revision is not None and row["revision"] != expected_revision:
            raise Conflict(
                f"This fork was changed meanwhile (now revision {row['revision']}); "
                "reload it and apply your change again."
            )
        old = json.loads(row["content"])
        content = {**content, "kind": row["kind"], "slug": row["slug"]}
        problems = range_problems(validate(content, f"fork {row['slug']}").content)
        if problems:
            raise ValidationFailed("; ".join(problems), details={"problems": problems})
        changes = diff(old, content)
        if not changes:
            return []
        await connection.execute(
            "UPDATE library_items SET content = $2, content_hash = $3, name = $4, "
            "revision = revision + 1, author_id = $5, updated_at = clock_timestamp() "
            "WHERE id = $1",
            library_id,
            json.dumps(content),
            content_hash(content),
            content["name"],
            ctx.user_id,
        )
        await audit.record(
            ctx,
            "library.fork_edited",
            "library_item",
            library_id,
            old={"revision": row["revision"], "content_hash": row["content_hash"]},
            new={
                "revision": row["revision"] + 1,
                "changes": [f"{c.op} {c.path}: {c.old!r} -> {c.new!r}" for c in changes],
            },
        )
    return changes


@dataclass(frozen=True)
class ForkRecord:
    """A fork at one revision, as a signable record (Part 11: the signature is linked to
    exactly this content)."""

    record_id: str
    record_version: str
    author_id: UUID | None
    content: dict[str, Any]
    record_type: str = "library_item"

    def signed_content(self) -> Any:
        return self.content


async def _publishable_fork(
    ctx: TenantContext, library_id: UUID, version: str, changelog: str, visibility: str
) -> tuple[Any, ForkRecord, Any]:
    """The fork's HUB document, checked, with the fork as a signable record (row-locked when
    a unit of work is open)."""
    from opencdmo.hub import service
    from opencdmo.hub.content import validate
    from opencdmo.hub.rules import range_problems
    from opencdmo.signatures.service import check_separation

    async with tenant_transaction(ctx) as connection:
        lock = " FOR UPDATE" if get_engine().current_transaction.get() is not None else ""
        row = await connection.fetchrow(
            "SELECT source, slug, content, revision, author_id, hub_version_id "
            "FROM library_items WHERE id = $1" + lock,
            library_id,
        )
        if row is None:
            raise NotFound("No such library item.")
        if row["source"] != "forked":
            raise Conflict("Only forks are published; an installed copy is someone else's item.")
        content = {
            **json.loads(row["content"]),
            "version": version.strip(),
            "changelog": changelog.strip(),
        }
        doc = validate(content, f"fork {row['slug']}")
        problems = range_problems(doc.content)
        if problems:
            raise ValidationFailed("; ".join(problems), details={"problems": problems})
        await service.check_publishable(ctx, doc, visibility)
    record = ForkRecord(str(library_id), str(row["revision"]), row["author_id"], content)
    check_separation(record, ctx, "approved for publication")
    return doc, record, row


async def publish_fork(
    settings: Settings,
    ctx: TenantContext,
    library_id: UUID,
    *,
    version: str,
    changelog: str,
    visibility: str,
    password: str,
    reason: str,
) -> UUID:
    """Publish a fork as the tenant's own HUB item: checked, signed "approved for
    publication" (not by its author) and published with its lineage, in one unit of work."""
    from opencdmo.hub import service
    from opencdmo.signatures import service as signatures

    await authorize(ctx, "hub", "approve_publication")
    await _publishable_fork(ctx, library_id, version, changelog, visibility)
    signing = await signatures.prepare(settings, ctx, "approved for publication", reason, password)
    async with unit_of_work(ctx) as connection:
        doc, record, row = await _publishable_fork(ctx, library_id, version, changelog, visibility)
        signature = await signatures.apply(ctx, signing, record)
        published = await service.publish(
            ctx, doc, visibility=visibility, forked_from=row["hub_version_id"]
        )
        await connection.execute(
            "UPDATE library_items SET published_item_id = $2 WHERE id = $1",
            library_id,
            published.item_id,
        )
        await audit.record(
            ctx,
            "library.fork_published",
            "library_item",
            library_id,
            new={
                "hub_item_id": published.item_id,
                "version": version,
                "visibility": visibility,
                "signature_id": signature.id,
            },
        )
    return published.item_id
