"""Publishing an effective master recipe to the HUB as the tenant's recipe, signed "approved
for publication", in one unit of work: the signature, the HUB version and the audit events
commit together or not at all."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.canonical import content_hash
from opencdmo.db.tx import tenant_transaction, unit_of_work
from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.hub.content import Document
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
    connection: Any, content: dict[str, Any]
) -> tuple[dict[str, publication.Ref], dict[tuple[str, str, str], UUID]]:
    """What each library item of the content stands for on the HUB, and the HUB version id
    each (kind, slug, version) must resolve to."""
    rows = await connection.fetch(
        "SELECT l.id, l.kind, l.source, l.slug, l.version, l.content, l.content_hash, "
        "l.hub_version_id, l.published_item_id, v.content_hash AS origin_hash "
        "FROM library_items l JOIN hub_versions v ON v.id = l.hub_version_id "
        "WHERE l.id = ANY($1::uuid[])",
        _library_ids(content),
    )
    refs: dict[str, publication.Ref] = {}
    expected: dict[tuple[str, str, str], UUID] = {}
    for row in rows:
        if row["source"] == "installed" or row["content_hash"] == row["origin_hash"]:
            refs[str(row["id"])] = (row["slug"], row["version"])
            expected[(row["kind"], row["slug"], row["version"])] = row["hub_version_id"]
            continue
        fork = _unversioned(json.loads(row["content"]))
        published = [
            v
            for v in await connection.fetch(
                "SELECT id, version, content FROM hub_versions WHERE item_id = $1",
                row["published_item_id"],
            )
            if _unversioned(json.loads(v["content"])) == fork
        ]
        if published:
            refs[str(row["id"])] = (row["slug"], published[0]["version"])
            expected[(row["kind"], row["slug"], published[0]["version"])] = published[0]["id"]
        else:
            refs[str(row["id"])] = (
                f"it uses the edited fork of {row['kind'].replace('_', ' ')} {row['slug']}, "
                "which is not published in its current revision: publish the fork first"
            )
    return refs, expected


async def _prepare(
    ctx: TenantContext, recipe_id: UUID, listing: publication.Listing, *, lock: bool
) -> _Prepared:
    """The HUB document of the effective revision, checked (in the open transaction)."""
    from opencdmo.hub import service as hub
    from opencdmo.hub.content import validate

    async with tenant_transaction(ctx) as connection:
        row = await queries.recipe(recipe_id, lock=lock)
        if row.effective_revision is None:
            raise Conflict(
                f"Only an effective recipe is published; this one is {row.status} "
                "with no effective revision."
            )
        record = await record_of(row, row.effective_revision)
        refs, expected = await _hub_refs(connection, record.content)
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
        await _check_resolution(connection, ctx, expected, listing.visibility)
    signatures.check_separation(record, ctx, MEANING)
    return _Prepared(row, record, doc, expected)


async def _check_resolution(
    connection: Any,
    ctx: TenantContext,
    expected: dict[tuple[str, str, str], UUID],
    visibility: str,
) -> None:
    from opencdmo.hub import service as hub
    from opencdmo.hub.content import Reference

    for (kind, slug, version), version_id in sorted(expected.items()):
        resolved = await hub.resolve(connection, ctx, Reference(kind, slug, version), visibility)
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


async def publications(ctx: TenantContext, recipe_id: UUID) -> list[dict[str, Any]]:
    """The HUB versions this recipe was published as, newest first."""
    async with tenant_transaction(ctx) as connection:
        row = await queries.recipe(recipe_id)
        if row.published_item_id is None:
            return []
        rows = await connection.fetch(
            "SELECT i.id AS item_id, i.slug, i.visibility, v.version, v.published_at "
            "FROM hub_items i JOIN hub_versions v ON v.item_id = i.id WHERE i.id = $1 "
            "ORDER BY v.major DESC, v.minor DESC, v.patch DESC",
            row.published_item_id,
        )
    return [dict(r) for r in rows]
