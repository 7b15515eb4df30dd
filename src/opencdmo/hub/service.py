"""Publishing to the HUB: immutable versions, resolved dependencies, idempotent sync.

A version is published once; publishing the same content again changes nothing, and other
content under a published version number is refused. Dependencies resolve at publish time to
exact versions visible to the item's audience, so an install can copy the closure later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from opencdmo.audit import service as audit
from opencdmo.db.tx import tenant_transaction
from opencdmo.errors import Conflict, NotFound, ValidationFailed
from opencdmo.hub import publication_queries as catalogue
from opencdmo.hub.content import ContentError, Document, Reference, load_tree, search_text
from opencdmo.hub.publication_queries import Existing, Listing, Publication
from opencdmo.hub.rules import range_problems
from opencdmo.scope import SYSTEM, Actor, RequestMeta, TenantContext
from opencdmo.tenancy import service as tenancy

PLATFORM_SLUG = "opencdmo-hub"
PLATFORM_NAME = "OpenCDMO HUB"
VISIBILITIES = ("public", "shared", "private")


@dataclass(frozen=True)
class Published:
    item_id: UUID
    version_id: UUID
    created: bool  # False: this exact content was already published under this version


async def platform_publisher(meta: RequestMeta) -> TenantContext:
    """The platform's own publisher tenant, created on first use."""
    row = await tenancy.tenant_by_slug(PLATFORM_SLUG)
    if row is None:
        return await tenancy.create_tenant(PLATFORM_SLUG, PLATFORM_NAME, "publisher", SYSTEM, meta)
    ctx = await tenancy.internal_context(row.id, SYSTEM, meta)
    assert ctx is not None
    return ctx


async def _existing(ctx: TenantContext, doc: Document) -> Existing | None:
    return await catalogue.existing(ctx.tenant_id, doc.kind, doc.slug, doc.version)


async def check_unchanged(ctx: TenantContext, doc: Document) -> bool | None:
    """None: not published yet; True: published with this content; Conflict otherwise."""
    async with tenant_transaction(ctx):
        row = await _existing(ctx, doc)
    if row is None or row.version_id is None:
        return None
    if row.content_hash != doc.hash:
        raise Conflict(
            f"{doc.source}: {doc.kind} {doc.slug} {doc.version} is already published with other "
            "content; published versions are immutable: give the change a new version and a "
            "changelog entry",
            details={"file": doc.source, "version": doc.version},
        )
    return True


async def _resolve(
    ctx: TenantContext, doc: Document, visibility: str
) -> tuple[list[tuple[UUID, bool]], list[str]]:
    """(version id, pinned) of each reference, and the references that cannot be resolved.

    A reference names a kind and slug, not a publisher: the publisher's own item wins, then
    the oldest (the platform's library is published first). Public items may depend on public
    items only; a private item may also depend on its publisher's private items. A pinned
    yanked version still resolves (it stays resolvable for whoever pinned it).
    """
    found: list[tuple[UUID, bool]] = []
    missing: list[str] = []
    for ref in doc.references():
        version_id = await resolve(ctx, ref, visibility)
        if version_id is None:
            missing.append(_describe(ref))
        else:
            found.append((version_id, ref.version is not None))
    return found, missing


async def resolve(ctx: TenantContext, ref: Reference, visibility: str) -> UUID | None:
    """The HUB version a reference in a document published by ``ctx`` resolves to (in the
    transaction open in this context)."""
    return await catalogue.resolve(
        ctx.tenant_id, ref.kind, ref.slug, ref.version, private=visibility == "private"
    )


def _describe(ref: Reference) -> str:
    return f"{ref.kind} {ref.slug}" + (f" {ref.version}" if ref.version else "")


async def check_publishable(ctx: TenantContext, doc: Document, visibility: str) -> None:
    """Everything publish() would refuse, checked without writing (before a signature)."""
    if visibility not in VISIBILITIES:
        raise ValidationFailed(f"visibility must be one of {', '.join(VISIBILITIES)}.")
    async with tenant_transaction(ctx):
        row = await _existing(ctx, doc)
        if row is not None and row.version_id is not None:
            raise Conflict(f"{doc.kind} {doc.slug} {doc.version} is already published.")
        _, missing = await _resolve(ctx, doc, visibility)
        if missing:
            raise ValidationFailed(
                f"dependencies missing or not visible to its audience: {'; '.join(missing)}",
                details={"missing": missing},
            )
        if row is not None:
            await _check_newer(row.item_id, doc)


async def publish(
    ctx: TenantContext,
    doc: Document,
    *,
    visibility: str = "public",
    actor: Actor | None = None,
    forked_from: UUID | None = None,
) -> Published:
    """Publish one version as the publisher in ``ctx`` (its own transaction, audited)."""
    if visibility not in VISIBILITIES:
        raise ValidationFailed(f"visibility must be one of {', '.join(VISIBILITIES)}.")
    problems = range_problems(doc.content)
    if problems:
        raise ValidationFailed(
            f"{doc.source}: {'; '.join(problems)}", details={"problems": problems}
        )
    async with tenant_transaction(ctx):
        row = await _existing(ctx, doc)
        if row is not None and row.version_id is not None:
            await check_unchanged(ctx, doc)
            return Published(row.item_id, row.version_id, created=False)
        dependencies, missing = await _resolve(ctx, doc, visibility)
        if missing:
            raise ValidationFailed(
                f"{doc.source}: dependencies missing or not visible to its audience: "
                f"{'; '.join(missing)}",
                details={"missing": missing},
            )
        item_id = (
            row.item_id
            if row is not None
            else await catalogue.insert_item(
                ctx.tenant_id,
                doc.kind,
                doc.slug,
                visibility,
                doc.data["name"],
                doc.data["summary"],
                forked_from,
            )
        )
        await _check_newer(item_id, doc)
        version_id = await catalogue.insert_version(
            item_id,
            doc.version,
            doc.semver,
            doc.data,
            doc.hash,
            doc.data["changelog"],
            (actor or ctx.actor).id,
        )
        await catalogue.insert_dependencies(version_id, dependencies)
        await _set_latest(item_id, doc)
        await audit.record(
            ctx,
            "hub.version_published",
            "hub_item",
            item_id,
            new={
                "kind": doc.kind,
                "slug": doc.slug,
                "version": doc.version,
                "content_hash": doc.hash,
                "visibility": visibility,
                "dependencies": [str(d) for d, _ in dependencies],
            },
        )
    return Published(item_id, version_id, created=True)


async def _check_newer(item_id: UUID, doc: Document) -> None:
    latest = await catalogue.latest_semver(item_id)
    if latest is not None and (latest.major, latest.minor, latest.patch) >= doc.semver:
        raise ValidationFailed(
            f"{doc.source}: version {doc.version} must be newer than the latest published "
            f"version {latest.version}",
            details={"field": "version"},
        )


async def _set_latest(item_id: UUID, doc: Document) -> None:
    data = doc.data
    modalities = data.get("modalities") or ([data["modality"]] if data.get("modality") else [])
    listing = Listing(
        name=data["name"],
        summary=data["summary"],
        category=data.get("category"),
        modalities=modalities,
        equipment_classes=data.get("equipment_classes", []),
        tags=data.get("tags", []),
    )
    await catalogue.set_latest(item_id, doc.version, listing, search_text(data))


@dataclass
class SyncReport:
    published: list[str]
    unchanged: int


async def sync(
    root: Path, report: Callable[[str], None], meta: RequestMeta | None = None
) -> SyncReport:
    """Publish every file under ``root`` as the platform. Every file is validated and checked
    against what is published before anything is written."""
    meta = meta or RequestMeta(request_id=f"hub-sync:{root}")
    documents = load_tree(root)
    ctx = await platform_publisher(meta)
    pending = []
    for doc in documents:
        if await check_unchanged(ctx, doc) is None:
            pending.append(doc)
    unchanged = len(documents) - len(pending)
    report(
        f"{len(documents)} files valid; {unchanged} already published; {len(pending)} to publish"
    )
    published = []
    for number, doc in enumerate(pending, 1):
        await publish(ctx, doc)
        published.append(f"{doc.kind} {doc.slug} {doc.version}")
        report(f"[{number}/{len(pending)}] published {doc.kind} {doc.slug} {doc.version}")
    return SyncReport(published, unchanged)


async def _own_item(ctx: TenantContext, item_id: UUID) -> Publication:
    item = await catalogue.own_item(item_id, ctx.tenant_id)
    if item is None:
        raise NotFound("No such HUB item among this tenant's publications.")
    return item


async def set_visibility(
    ctx: TenantContext, item_id: UUID, visibility: str, shared_with: list[str]
) -> None:
    """Public, private, or shared with the named tenants (by slug); audited."""
    if visibility not in VISIBILITIES:
        raise ValidationFailed(f"visibility must be one of {', '.join(VISIBILITIES)}.")
    if visibility == "shared" and not shared_with:
        raise ValidationFailed(
            "Name at least one tenant to share with.", details={"field": "shared_with"}
        )
    async with tenant_transaction(ctx):
        item = await _own_item(ctx, item_id)
        tenants = await catalogue.tenant_ids(shared_with)
        unknown = sorted(set(shared_with) - set(tenants))
        if unknown:
            raise ValidationFailed(
                f"Unknown tenant(s): {', '.join(unknown)}.", details={"field": "shared_with"}
            )
        old_shares = await catalogue.shared_with(item_id)
        shares = list(tenants.values()) if visibility == "shared" else []
        await catalogue.replace_shares(item_id, ctx.tenant_id, shares)
        await catalogue.set_visibility(item_id, visibility)
        await audit.record(
            ctx,
            "hub.visibility_changed",
            "hub_item",
            item_id,
            old={"visibility": item.visibility, "shared_with": old_shares},
            new={
                "visibility": visibility,
                "shared_with": sorted(shared_with) if visibility == "shared" else [],
            },
        )


async def mark_version(
    ctx: TenantContext,
    item_id: UUID,
    version: str,
    *,
    deprecated_message: str | None = None,
    yank: bool = False,
    reason: str | None = None,
) -> None:
    """Deprecate a version (with a message) or yank it (still resolvable for whoever pinned
    it, hidden from new installs), with the reason recorded in the audit event. The content
    itself never changes."""
    async with tenant_transaction(ctx):
        await _own_item(ctx, item_id)
        row = await catalogue.marks(item_id, version)
        if row is None:
            raise NotFound("No such version.")
        if yank:
            if row.yanked_at is not None:
                raise Conflict(f"{version} is already yanked.")
            await catalogue.yank(row.id)
        else:
            message = (deprecated_message or "").strip()
            if not message:
                raise ValidationFailed(
                    "A deprecation needs a message.", details={"field": "message"}
                )
            await catalogue.deprecate(row.id, message)
        await audit.record(
            ctx,
            "hub.version_yanked" if yank else "hub.version_deprecated",
            "hub_item",
            item_id,
            old={
                "version": version,
                "deprecated_message": row.deprecated_message,
                "yanked": row.yanked_at is not None,
            },
            new={
                "version": version,
                "deprecated_message": deprecated_message,
                "yanked": yank or row.yanked_at is not None,
            },
            reason=(reason or "").strip() or None,
        )


__all__ = ["ContentError", "Published", "SyncReport", "platform_publisher", "publish", "sync"]
