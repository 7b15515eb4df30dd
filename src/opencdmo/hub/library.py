"""A tenant's library: installing HUB versions (with their dependency closure), seeing and
applying updates with a structural diff, forking.

Installing copies: what a tenant installed never changes until it upgrades explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.engine import get_engine
from opencdmo.db.tx import tenant_transaction, unit_of_work
from opencdmo.errors import Conflict, NotFound, ValidationFailed
from opencdmo.hub import library_queries as copies
from opencdmo.hub import queries
from opencdmo.hub.content import Document
from opencdmo.hub.diff import Change, diff
from opencdmo.hub.library_queries import Copy, LibraryDetail, LibraryRow, version_key
from opencdmo.hub.queries import VersionContent
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings


async def install(ctx: TenantContext, item_id: UUID, version: str | None = None) -> list[str]:
    """Install a version (default: the latest not yanked) and every dependency not yet in the
    library; returns what was installed. Items already installed keep their version.
    Installs in one tenant take turns (a transaction-scoped advisory lock), so concurrent
    installs of one item give one install and a 409 for the others."""
    await authorize(ctx, "hub", "install")
    async with tenant_transaction(ctx):
        await copies.take_install_turn(ctx.tenant_id)
        chosen = await queries.version_content(item_id, version)
        if chosen is None:
            raise NotFound("No such HUB item or version.")
        if chosen.yanked_at is not None:
            raise Conflict(f"Version {chosen.version} was yanked: it cannot be installed anew.")
        installed: list[str] = []
        for row in await queries.closure(chosen.id):
            if await copies.installed_copy(row.item_id) is not None:
                if row.item_id == item_id:
                    raise Conflict(f"{row.name} is already installed; upgrade it instead.")
                continue
            library_id = await copies.insert_copy(ctx.tenant_id, "installed", row)
            await copies.count_install(row.item_id)
            await audit.record(
                ctx,
                "library.installed",
                "library_item",
                library_id,
                new={
                    "hub_item_id": row.item_id,
                    "kind": row.kind,
                    "slug": row.slug,
                    "version": row.version,
                    "content_hash": row.content_hash,
                    "as_dependency_of": None if row.item_id == item_id else str(item_id),
                },
            )
            installed.append(f"{row.kind} {row.slug} {row.version}")
    return installed


async def list_library(ctx: TenantContext) -> list[LibraryRow]:
    async with tenant_transaction(ctx):
        return await copies.listing()


async def updates_available(ctx: TenantContext, limit: int) -> tuple[list[copies.Update], int]:
    """Installed items with a newer HUB version (the first ``limit``), and how many."""
    async with tenant_transaction(ctx):
        return await copies.updates(limit)


async def get_library_item(ctx: TenantContext, library_id: UUID) -> LibraryDetail:
    async with tenant_transaction(ctx):
        item = await copies.detail(library_id)
    if item is None:
        raise NotFound("No such library item.")
    return item


async def preview_upgrade(
    ctx: TenantContext, library_id: UUID, to: str | None
) -> tuple[LibraryDetail, VersionContent, list[Change]]:
    """(library item, target version, structural diff from installed to target)."""
    item = await get_library_item(ctx, library_id)
    async with tenant_transaction(ctx):
        target = await queries.version_content(item.hub_item_id, to)
    if target is None:
        raise NotFound("No such version of this HUB item.")
    return item, target, diff(item.content, target.content)


async def upgrade(
    ctx: TenantContext, library_id: UUID, to: str, reason: str | None = None
) -> list[Change]:
    """Move an installed copy to a newer version, explicitly and audited (with the diff)."""
    await authorize(ctx, "hub", "install")
    item, target, changes = await preview_upgrade(ctx, library_id, to)
    if item.source != "installed":
        raise Conflict("Only installed items are upgraded; a fork keeps its own content.")
    if target.yanked_at is not None:
        raise Conflict(f"Version {to} was yanked.")
    if version_key(target.version) <= version_key(item.version):
        raise ValidationFailed(
            f"{to} is not newer than the installed {item.version}.", details={"field": "to"}
        )
    async with tenant_transaction(ctx):
        await copies.upgrade_copy(library_id, target)
        await audit.record(
            ctx,
            "library.upgraded",
            "library_item",
            library_id,
            old={"version": item.version, "content_hash": item.content_hash},
            new={
                "version": target.version,
                "content_hash": target.content_hash,
                "changes": [f"{c.op} {c.path}" for c in changes],
            },
            reason=reason,
        )
    return changes


# --- forks -------------------------------------------------------------------------------


async def fork(ctx: TenantContext, item_id: UUID, version: str | None = None) -> UUID:
    """An editable copy owned by the tenant, remembering the version it came from."""
    await authorize(ctx, "hub", "fork")
    async with tenant_transaction(ctx):
        chosen = await queries.version_content(item_id, version)
        if chosen is None:
            raise NotFound("No such HUB item or version.")
        library_id = await copies.insert_copy(ctx.tenant_id, "forked", chosen, ctx.user_id)
        await audit.record(
            ctx,
            "library.forked",
            "library_item",
            library_id,
            new={
                "forked_from_item": item_id,
                "forked_from_version": chosen.version,
                "content_hash": chosen.content_hash,
            },
        )
    return library_id


async def _fork(library_id: UUID) -> Copy:
    row = await copies.stored_copy(library_id, lock=True)
    if row is None:
        raise NotFound("No such library item.")
    if row.source != "forked":
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

    async with tenant_transaction(ctx):
        row = await _fork(library_id)
        if expected_revision is not None and row.revision != expected_revision:
            raise Conflict(
                f"This fork was changed meanwhile (now revision {row.revision}); "
                "reload it and apply your change again."
            )
        content = {**content, "kind": row.kind, "slug": row.slug}
        problems = range_problems(validate(content, f"fork {row.slug}").content)
        if problems:
            raise ValidationFailed("; ".join(problems), details={"problems": problems})
        changes = diff(row.content, content)
        if not changes:
            return []
        await copies.edit_copy(library_id, content, content_hash(content), ctx.user_id)
        await audit.record(
            ctx,
            "library.fork_edited",
            "library_item",
            library_id,
            old={"revision": row.revision, "content_hash": row.content_hash},
            new={
                "revision": row.revision + 1,
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
) -> tuple[Document, ForkRecord, Copy]:
    """The fork's HUB document, checked, with the fork as a signable record (row-locked when
    a unit of work is open)."""
    from opencdmo.hub import service
    from opencdmo.hub.content import validate
    from opencdmo.hub.rules import range_problems
    from opencdmo.signatures.service import check_separation

    async with tenant_transaction(ctx):
        lock = get_engine().current_transaction.get() is not None
        row = await copies.stored_copy(library_id, lock=lock)
        if row is None:
            raise NotFound("No such library item.")
        if row.source != "forked":
            raise Conflict("Only forks are published; an installed copy is someone else's item.")
        content = {**row.content, "version": version.strip(), "changelog": changelog.strip()}
        doc = validate(content, f"fork {row.slug}")
        problems = range_problems(doc.content)
        if problems:
            raise ValidationFailed("; ".join(problems), details={"problems": problems})
        await service.check_publishable(ctx, doc, visibility)
    record = ForkRecord(str(library_id), str(row.revision), row.author_id, content)
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
    async with unit_of_work(ctx):
        doc, record, row = await _publishable_fork(ctx, library_id, version, changelog, visibility)
        signature = await signatures.apply(ctx, signing, record)
        published = await service.publish(
            ctx, doc, visibility=visibility, forked_from=row.hub_version_id
        )
        await copies.set_published(library_id, published.item_id)
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
