"""Publishing an effective master recipe to the HUB as the tenant's recipe, signed "approved
for publication", in one unit of work: the signature, the HUB version and the audit events
commit together or not at all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.canonical import content_hash
from opencdmo.db.tx import tenant_transaction, unit_of_work
from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.hub import library_queries as copies
from opencdmo.hub import publication_queries
from opencdmo.hub import queries as hub_queries
from opencdmo.hub.content import Document
from opencdmo.hub.publication_queries import PublishedVersion
from opencdmo.hub.rules import range_problems
from opencdmo.recipes import content as recipe_content
from opencdmo.recipes import publication, queries
from opencdmo.recipes.queries import RecipeRow
from opencdmo.recipes.service import _pins as pins
from opencdmo.recipes.service._revisions import RecipeRecord, record_of
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.signatures import service as signatures

MEANING = "approved for publication"


@dataclass(frozen=True)
class _Prepared:
    row: RecipeRow
    record: RecipeRecord
    doc: Document
    expected: dict[tuple[str, str, str], UUID]


def _library_ids(content: dict[str, Any]) -> list[str]:
    ids = [op["library_item_id"] for up in content["unit_procedures"] for op in up["operations"]]
    ids += [p["library_item_id"] for p in content.get("sampling_points") or []]
    ids += [r["library_item_id"] for r in content.get("release_specifications") or []]
    return sorted(set(ids))


def _unversioned(content: dict[str, Any]) -> str:
    return content_hash({k: v for k, v in content.items() if k not in ("version", "changelog")})


async def _hub_refs(
    content: dict[str, Any],
) -> tuple[dict[str, publication.Ref], dict[tuple[str, str, str], UUID]]:
    """What each library item of the content stands for on the HUB, and the HUB version id
    each (kind, slug, version) must resolve to."""
    refs: dict[str, publication.Ref] = {}
    expected: dict[tuple[str, str, str], UUID] = {}
    for item in await copies.origins([UUID(i) for i in _library_ids(content)]):
        if item.source == "installed" or item.content_hash == item.origin_hash:
            refs[str(item.id)] = (item.slug, item.version)
            expected[(item.kind, item.slug, item.version)] = item.hub_version_id
            continue
        fork = _unversioned(item.content)
        published = [
            v
            for v in await hub_queries.version_contents(item.published_item_id)
            if _unversioned(v.content) == fork
        ]
        if published:
            refs[str(item.id)] = (item.slug, published[0].version)
            expected[(item.kind, item.slug, published[0].version)] = published[0].id
        else:
            refs[str(item.id)] = (
                f"it uses the edited fork of {item.kind.replace('_', ' ')} {item.slug}, "
                "which is not published in its current revision: publish the fork first"
            )
    return refs, expected


async def _prepare(
    ctx: TenantContext, recipe_id: UUID, listing: publication.Listing, *, lock: bool
) -> _Prepared:
    """The HUB document of the effective revision, checked (in the open transaction)."""
    from opencdmo.hub import service as hub
    from opencdmo.hub.content import validate

    async with tenant_transaction(ctx):
        row = await queries.recipe(recipe_id, lock=lock)
        if row.effective_revision is None:
            raise Conflict(
                f"Only an effective recipe is published; this one is {row.status} "
                "with no effective revision."
            )
        record = await record_of(row, row.effective_revision)
        refs, expected = await _hub_refs(record.content)
        changed = recipe_content.stale(record.content, await pins.library(ctx))
        if changed:
            raise ValidationFailed(
                "The effective revision pins unit operation or method content that its library "
                "items no longer hold; adopt the library's versions, approve the revision and "
                "make it effective before publishing.",
                details={"library_item_ids": sorted(changed)},
            )
        if not publication.SLUG.match(listing.slug):
            raise ValidationFailed(
                f"'{listing.slug}' is not a HUB slug: lowercase letters, digits and single "
                "hyphens.",
                details={"field": "slug"},
            )
        data = publication.document(row.as_dict(), record.content, refs, listing, [ctx.name])
        doc = validate(data, f"recipe {listing.slug} {listing.version}")
        problems = range_problems(doc.content)
        if problems:
            raise ValidationFailed("; ".join(problems), details={"problems": problems})
        await hub.check_publishable(ctx, doc, listing.visibility)
        await _check_resolution(ctx, expected, listing.visibility)
    signatures.check_separation(record, ctx, MEANING)
    return _Prepared(row, record, doc, expected)


async def _check_resolution(
    ctx: TenantContext,
    expected: dict[tuple[str, str, str], UUID],
    visibility: str,
) -> None:
    from opencdmo.hub import service as hub
    from opencdmo.hub.content import Reference

    for (kind, slug, version), version_id in sorted(expected.items()):
        resolved = await hub.resolve(ctx, Reference(kind, slug, version), visibility)
        if resolved != version_id:
            raise Conflict(
                f"{kind.replace('_', ' ')} {slug} {version} would resolve to another "
                "publication with the same slug and version than the one in this "
                "recipe; give your own publication another version.",
                details={"reference": f"{kind} {slug} {version}"},
            )


async def publish_to_hub(
    settings: Settings,
    ctx: TenantContext,
    recipe_id: UUID,
    listing: publication.Listing,
    password: str,
    reason: str,
) -> UUID:
    """Publish the effective revision as the tenant's HUB recipe: mapped and checked (schema,
    ranges, dependencies visible to the audience), signed "approved for publication" by
    someone other than the revision's author, and published with its lineage. Everything is
    checked once before the password is asked for, and again under the recipe's lock."""
    from opencdmo.hub import service as hub

    await authorize(ctx, "hub", "approve_publication")
    await _prepare(ctx, recipe_id, listing, lock=False)
    signing = await signatures.prepare(settings, ctx, MEANING, reason, password)
    async with unit_of_work(ctx):
        ready = await _prepare(ctx, recipe_id, listing, lock=True)
        signature = await signatures.apply(ctx, signing, ready.record)
        published = await hub.publish(
            ctx,
            ready.doc,
            visibility=listing.visibility,
            forked_from=ready.row.source_hub_version_id,
        )
        await queries.update_recipe(recipe_id, published_item_id=published.item_id)
        await audit.record(
            ctx,
            "recipe.published",
            "master_recipe",
            recipe_id,
            new={
                "hub_item_id": published.item_id,
                "hub_version_id": published.version_id,
                "slug": ready.doc.slug,
                "version": ready.doc.version,
                "content_hash": ready.doc.hash,
                "revision": ready.row.effective_revision,
                "visibility": listing.visibility,
                "signature_id": signature.id,
            },
            reason=signing.reason,
        )
    return published.item_id


async def publications(ctx: TenantContext, recipe_id: UUID) -> list[PublishedVersion]:
    """The HUB versions this recipe was published as, newest first."""
    async with tenant_transaction(ctx):
        row = await queries.recipe(recipe_id)
        if row.published_item_id is None:
            return []
        return await publication_queries.published_versions(row.published_item_id)
