"""Publishing data access: a publisher's items, versions, dependencies, shares and marks, as
typed rows.

Each function runs in the transaction open in its context (the publishing command's); none
opens or commits one of its own. Row-level security lets a tenant write only as the
publisher of its own items.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from piccolo.querystring import QueryString

from opencdmo.db.clock import database_now
from opencdmo.hub.tables import HubDependency, HubItem, HubShare, HubVersion
from opencdmo.tenancy.tables import Tenant

_NEWEST_FIRST = (HubVersion.major, HubVersion.minor, HubVersion.patch)


@dataclass(frozen=True)
class Existing:
    """A publisher's item by kind and slug, and its version by number if that is published."""

    item_id: UUID
    version_id: UUID | None
    content_hash: str | None


@dataclass(frozen=True)
class SemVer:
    version: str
    major: int
    minor: int
    patch: int


@dataclass(frozen=True)
class Publication:
    """One of the publisher's own items, as visibility changes and marks read it."""

    id: UUID
    slug: str
    visibility: str


@dataclass(frozen=True)
class Marks:
    id: UUID
    deprecated_message: str | None
    yanked_at: datetime | None


async def existing(publisher_id: UUID, kind: str, slug: str, version: str) -> Existing | None:
    item_id = await find_item(publisher_id, kind, slug)
    if item_id is None:
        return None
    published = await (
        HubVersion.select(HubVersion.id, HubVersion.content_hash)
        .where((HubVersion.item_id == item_id) & (HubVersion.version == version))
        .first()
    )
    if published is None:
        return Existing(item_id, None, None)
    return Existing(item_id, published["id"], published["content_hash"])


async def find_item(publisher_id: UUID | None, kind: str, slug: str) -> UUID | None:
    """The item of that kind and slug by the publisher, if the tenant sees it."""
    if publisher_id is None:
        return None
    raw = await (
        HubItem.select(HubItem.id)
        .where(
            (HubItem.publisher_id == publisher_id) & (HubItem.kind == kind) & (HubItem.slug == slug)
        )
        .first()
    )
    if raw is None:
        return None
    found = raw["id"]
    assert isinstance(found, UUID)
    return found


@dataclass(frozen=True)
class PublishedVersion:
    """A version of an item as a list of publications shows it."""

    item_id: UUID
    slug: str
    visibility: str
    version: str
    published_at: datetime


async def published_versions(item_id: UUID) -> list[PublishedVersion]:
    """The item's versions, newest first."""
    rows = await (
        HubVersion.select(
            HubVersion.item_id,
            HubVersion.item_id._.slug.as_alias("slug"),
            HubVersion.item_id._.visibility.as_alias("visibility"),
            HubVersion.version,
            HubVersion.published_at,
        )
        .where(HubVersion.item_id == item_id)
        .order_by(*_NEWEST_FIRST, ascending=False)
    )
    return [PublishedVersion(**r) for r in rows]


async def resolve(
    publisher_id: UUID, kind: str, slug: str, version: str | None, *, private: bool
) -> UUID | None:
    """The version a reference (kind, slug, optional version) in a publication of
    ``publisher_id`` resolves to: the publisher's own item first, then the oldest item; the
    latest not yanked when no version is named. Public items only, and with ``private`` the
    publisher's own as well."""
    item = HubVersion.item_id._
    query = HubVersion.select(HubVersion.id).where((item.kind == kind) & (item.slug == slug))
    if version is None:
        query = query.where(HubVersion.yanked_at.is_null())
    else:
        query = query.where(HubVersion.version == version)
    visible = item.visibility == "public"
    query = query.where(visible | (item.publisher_id == publisher_id) if private else visible)
    own_first = QueryString("{} = {}", item.publisher_id, publisher_id)
    raw = await (
        query.order_by(own_first, ascending=False)
        .order_by(item.created_at)
        .order_by(*_NEWEST_FIRST, ascending=False)
        .first()
    )
    if raw is None:
        return None
    found = raw["id"]
    assert isinstance(found, UUID)
    return found


async def latest_semver(item_id: UUID) -> SemVer | None:
    raw = await (
        HubVersion.select(HubVersion.version, *_NEWEST_FIRST)
        .where(HubVersion.item_id == item_id)
        .order_by(*_NEWEST_FIRST, ascending=False)
        .first()
    )
    return None if raw is None else SemVer(**raw)


async def insert_item(
    publisher_id: UUID,
    kind: str,
    slug: str,
    visibility: str,
    name: str,
    summary: str,
    forked_from: UUID | None,
) -> UUID:
    item = HubItem(
        publisher_id=publisher_id,
        kind=kind,
        slug=slug,
        visibility=visibility,
        name=name,
        summary=summary,
        forked_from_version_id=forked_from,
        created_at=database_now(),
        updated_at=database_now(),
    )
    rows = await HubItem.insert(item).returning(HubItem.id)
    item_id = rows[0]["id"]
    assert isinstance(item_id, UUID)
    return item_id


async def insert_version(
    item_id: UUID,
    version: str,
    semver: tuple[int, int, int],
    content: dict[str, Any],
    content_hash: str,
    changelog: str,
    published_by: UUID | None,
) -> UUID:
    major, minor, patch = semver
    row = HubVersion(
        item_id=item_id,
        version=version,
        major=major,
        minor=minor,
        patch=patch,
        content=json.dumps(content),
        content_hash=content_hash,
        changelog=changelog,
        published_at=database_now(),
        published_by=published_by,
    )
    rows = await HubVersion.insert(row).returning(HubVersion.id)
    version_id = rows[0]["id"]
    assert isinstance(version_id, UUID)
    return version_id


async def insert_dependencies(version_id: UUID, dependencies: list[tuple[UUID, bool]]) -> None:
    """What the version depends on: (version id, pinned) each."""
    if dependencies:
        await HubDependency.insert(
            *(
                HubDependency(version_id=version_id, depends_on_id=depends_on, pinned=pinned)
                for depends_on, pinned in dependencies
            )
        )


# Raw SQL: the search column is a tsvector, which Piccolo has no column type for.
_SET_SEARCH = """
UPDATE hub_items SET search = setweight(to_tsvector('english', {}), 'A')
    || setweight(to_tsvector('english', {}), 'B') || setweight(to_tsvector('english', {}), 'C')
WHERE id = {}
"""


@dataclass(frozen=True)
class Listing:
    """What the catalogue lists and filters an item by, from its latest version."""

    name: str
    summary: str
    category: str | None
    modalities: list[str]
    equipment_classes: list[str]
    tags: list[str]


async def set_latest(
    item_id: UUID, version: str, listing: Listing, search: tuple[str, str, str]
) -> None:
    """The item's listing from its latest version, and its search texts weighted A, B, C."""
    await HubItem.update(
        {
            HubItem.latest_version: version,
            HubItem.name: listing.name,
            HubItem.summary: listing.summary,
            HubItem.category: listing.category,
            HubItem.modalities: listing.modalities,
            HubItem.equipment_classes: listing.equipment_classes,
            HubItem.tags: listing.tags,
            HubItem.updated_at: database_now(),
        }
    ).where(HubItem.id == item_id)
    await HubItem.raw(_SET_SEARCH, *search, item_id)


async def own_item(item_id: UUID, publisher_id: UUID) -> Publication | None:
    """One of the publisher's items, row-locked until the transaction ends."""
    raw = await (
        HubItem.select(HubItem.id, HubItem.slug, HubItem.visibility)
        .where((HubItem.id == item_id) & (HubItem.publisher_id == publisher_id))
        .lock_rows("UPDATE")
        .first()
    )
    return None if raw is None else Publication(**raw)


async def tenant_ids(slugs: list[str]) -> dict[str, UUID]:
    """The ids of the tenants by slug (unknown slugs are left out)."""
    if not slugs:
        return {}
    rows = await Tenant.select(Tenant.id, Tenant.slug).where(Tenant.slug.is_in(slugs))
    return {r["slug"]: r["id"] for r in rows}


async def shared_with(item_id: UUID) -> list[str]:
    """The slugs of the tenants an item is shared with, sorted."""
    rows = await HubShare.select(HubShare.shared_with._.slug.as_alias("slug")).where(
        HubShare.item_id == item_id
    )
    return sorted(r["slug"] for r in rows)


async def replace_shares(item_id: UUID, publisher_id: UUID, tenants: list[UUID]) -> None:
    await HubShare.delete().where(HubShare.item_id == item_id)
    if tenants:
        await HubShare.insert(
            *(
                HubShare(item_id=item_id, publisher_id=publisher_id, shared_with=tenant)
                for tenant in tenants
            )
        )


async def set_visibility(item_id: UUID, visibility: str) -> None:
    await HubItem.update(
        {HubItem.visibility: visibility, HubItem.updated_at: database_now()}
    ).where(HubItem.id == item_id)


async def marks(item_id: UUID, version: str) -> Marks | None:
    raw = await (
        HubVersion.select(HubVersion.id, HubVersion.deprecated_message, HubVersion.yanked_at)
        .where((HubVersion.item_id == item_id) & (HubVersion.version == version))
        .first()
    )
    return None if raw is None else Marks(**raw)


async def yank(version_id: UUID) -> None:
    await HubVersion.update({HubVersion.yanked_at: database_now()}).where(
        HubVersion.id == version_id
    )


async def deprecate(version_id: UUID, message: str) -> None:
    await HubVersion.update({HubVersion.deprecated_message: message}).where(
        HubVersion.id == version_id
    )


async def visible_items(kind: str, slug: str) -> list[UUID]:
    """Every item of that kind and slug the tenant sees, whoever published it, oldest first
    (the platform's content is published first)."""
    rows = await (
        HubItem.select(HubItem.id)
        .where((HubItem.kind == kind) & (HubItem.slug == slug))
        .order_by(HubItem.created_at)
    )
    return [r["id"] for r in rows]


async def visible_slugs(kind: str) -> set[str]:
    """The slugs of the items of that kind the tenant sees."""
    rows = await HubItem.select(HubItem.slug).where(HubItem.kind == kind).distinct()
    return {r["slug"] for r in rows}
