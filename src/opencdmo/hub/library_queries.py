"""A tenant's library data access: installed and forked copies of HUB versions, as typed rows.

Each function runs in the transaction open in its context (a command's unit of work or a
page's read view); none opens or commits one of its own. Row-level security shows only the
tenant's own copies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from opencdmo.db.clock import database_now
from opencdmo.hub.model import LibraryContent, decode_json
from opencdmo.hub.queries import VersionContent, latest_available
from opencdmo.hub.tables import HubItem, LibraryItem


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@dataclass(frozen=True)
class LibraryRow:
    """A copy as the library lists it, with what its HUB item offers now."""

    id: UUID
    source: str
    hub_item_id: UUID
    hub_version_id: UUID
    kind: str
    slug: str
    name: str
    version: str
    content_hash: str
    revision: int
    author_id: UUID | None
    published_item_id: UUID | None
    created_at: datetime
    updated_at: datetime
    latest_version: str | None
    available: str | None  # the item's latest version not yanked, if the tenant sees one
    deprecated_message: str | None  # of the copied version

    @property
    def update_available(self) -> bool:
        return (
            self.source == "installed"
            and self.available is not None
            and version_key(self.available) > version_key(self.version)
        )


@dataclass(frozen=True)
class LibraryDetail(LibraryRow):
    """A copy with its content."""

    content: dict[str, Any]


@dataclass(frozen=True)
class Copy:
    """A copy as stored, for the commands that change it."""

    id: UUID
    source: str
    hub_item_id: UUID
    hub_version_id: UUID
    kind: str
    slug: str
    name: str
    version: str
    content: dict[str, Any]
    content_hash: str
    revision: int
    author_id: UUID | None


@dataclass(frozen=True)
class TypedCopy:
    """A copy with its content typed (decoded once, where it is read)."""

    id: UUID
    source: str
    hub_item_id: UUID
    kind: str
    slug: str
    version: str
    content_hash: str
    content: LibraryContent


@dataclass(frozen=True)
class CopyOrigin:
    """A copy with the content hash of the HUB version it was copied from (``origin_hash``)
    and the HUB item a fork was published as."""

    id: UUID
    source: str
    kind: str
    slug: str
    version: str
    content: dict[str, Any]
    content_hash: str
    hub_version_id: UUID
    published_item_id: UUID | None
    origin_hash: str


async def take_install_turn(tenant_id: UUID) -> None:
    """Installs in one tenant take turns, until the transaction ends."""
    # Raw SQL: Piccolo has no advisory locks.
    await LibraryItem.raw(
        "SELECT pg_advisory_xact_lock(hashtextextended('library:' || {}, 0))", str(tenant_id)
    )


async def installed_copy(hub_item_id: UUID) -> UUID | None:
    """The library id of the installed copy of a HUB item (forks are not counted)."""
    raw = await (
        LibraryItem.select(LibraryItem.id)
        .where((LibraryItem.hub_item_id == hub_item_id) & (LibraryItem.source == "installed"))
        .first()
    )
    if raw is None:
        return None
    found = raw["id"]
    assert isinstance(found, UUID)
    return found


async def insert_copy(
    tenant_id: UUID, source: str, version: VersionContent, author_id: UUID | None = None
) -> UUID:
    """A copy of the version, installed or forked (a fork names its author)."""
    copy = LibraryItem(
        tenant_id=tenant_id,
        source=source,
        hub_item_id=version.item_id,
        hub_version_id=version.id,
        kind=version.kind,
        slug=version.slug,
        name=version.name,
        version=version.version,
        content=json.dumps(version.content),
        content_hash=version.content_hash,
        author_id=author_id,
        created_at=database_now(),
        updated_at=database_now(),
    )
    rows = await LibraryItem.insert(copy).returning(LibraryItem.id)
    library_id = rows[0]["id"]
    assert isinstance(library_id, UUID)
    return library_id


async def count_install(hub_item_id: UUID) -> None:
    # Raw SQL: a SECURITY DEFINER function (the app role may not update install counts).
    await HubItem.raw("SELECT hub_count_install({})", hub_item_id)


_STORED = {f.name for f in fields(LibraryRow)} - {
    "latest_version",
    "available",
    "deprecated_message",
}
_LISTED = (
    *(getattr(LibraryItem, f.name) for f in fields(LibraryRow) if f.name in _STORED),
    LibraryItem.hub_item_id._.latest_version.as_alias("latest_version"),
    LibraryItem.hub_version_id._.deprecated_message.as_alias("deprecated_message"),
)


async def _listed(library_id: UUID | None) -> list[dict[str, Any]]:
    columns = _LISTED if library_id is None else (*_LISTED, LibraryItem.content)
    query = LibraryItem.select(*columns)
    if library_id is not None:
        query = query.where(LibraryItem.id == library_id)
    rows = await query.order_by(LibraryItem.kind, LibraryItem.name, LibraryItem.created_at)
    available = await latest_available([r["hub_item_id"] for r in rows])
    return [{**r, "available": available.get(r["hub_item_id"])} for r in rows]


async def listing() -> list[LibraryRow]:
    """Every copy in the library, by kind and name."""
    return [LibraryRow(**r) for r in await _listed(None)]


async def detail(library_id: UUID) -> LibraryDetail | None:
    rows = await _listed(library_id)
    if not rows:
        return None
    return LibraryDetail(**{**rows[0], "content": json.loads(rows[0]["content"])})


async def stored_copy(library_id: UUID, *, lock: bool) -> Copy | None:
    """The copy as stored (row-locked until the transaction ends with ``lock``)."""
    query = LibraryItem.select(*(getattr(LibraryItem, f.name) for f in fields(Copy))).where(
        LibraryItem.id == library_id
    )
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    if raw is None:
        return None
    return Copy(**{**raw, "content": json.loads(raw["content"])})


async def upgrade_copy(library_id: UUID, target: VersionContent) -> None:
    """An installed copy moved to another version of its HUB item."""
    await LibraryItem.update(
        {
            LibraryItem.hub_version_id: target.id,
            LibraryItem.version: target.version,
            LibraryItem.content: json.dumps(target.content),
            LibraryItem.content_hash: target.content_hash,
            LibraryItem.name: target.name,
            LibraryItem.updated_at: database_now(),
        }
    ).where(LibraryItem.id == library_id)


async def edit_copy(
    library_id: UUID, content: dict[str, Any], content_hash: str, author_id: UUID | None
) -> None:
    """A fork's new content, as its next revision by ``author_id``."""
    await LibraryItem.update(
        {
            LibraryItem.content: json.dumps(content),
            LibraryItem.content_hash: content_hash,
            LibraryItem.name: content["name"],
            LibraryItem.revision: LibraryItem.revision + 1,
            LibraryItem.author_id: author_id,
            LibraryItem.updated_at: database_now(),
        }
    ).where(LibraryItem.id == library_id)


async def set_published(library_id: UUID, hub_item_id: UUID) -> None:
    """The HUB item a fork was published as."""
    await LibraryItem.update({LibraryItem.published_item_id: hub_item_id}).where(
        LibraryItem.id == library_id
    )


async def typed_copies(*kinds: str) -> list[TypedCopy]:
    """Every copy of those kinds, the installed copies first, then the forks, oldest first."""
    columns = (getattr(LibraryItem, f.name) for f in fields(TypedCopy))
    rows = await (
        LibraryItem.select(*columns)
        .where(LibraryItem.kind.is_in(list(kinds)))
        .order_by(LibraryItem.source, ascending=False)  # descending: 'installed', 'forked'
        .order_by(LibraryItem.created_at)
    )
    return [TypedCopy(**{**r, "content": decode_json(r["content"])}) for r in rows]


_ORIGIN_HASH = LibraryItem.hub_version_id._.content_hash


async def origins(library_ids: list[UUID]) -> list[CopyOrigin]:
    """Those copies with what they came from (a copy whose HUB version the tenant no longer
    sees is left out)."""
    if not library_ids:
        return []
    stored = (getattr(LibraryItem, f.name) for f in fields(CopyOrigin) if f.name != "origin_hash")
    rows = await LibraryItem.select(*stored, _ORIGIN_HASH.as_alias("origin_hash")).where(
        LibraryItem.id.is_in(library_ids) & _ORIGIN_HASH.is_not_null()
    )
    return [CopyOrigin(**{**r, "content": json.loads(r["content"])}) for r in rows]


@dataclass(frozen=True)
class Update:
    """An installed copy whose HUB item has a newer version not yanked."""

    id: UUID
    kind: str
    name: str
    version: str
    available: str
    published_at: datetime
    publisher: str


# Raw SQL: the newest version of each installed item's HUB item as a LATERAL subquery,
# compared with the installed one as a row, and the whole count beside the rows shown (a
# window function), in one query. The newest comes from hub_versions' (item, major, minor,
# patch) key; the installed copies from library_items_installed.
_UPDATES = """
SELECT li.id, li.kind, li.name, li.version, newest.version AS available,
       newest.published_at, p.name AS publisher, count(*) OVER () AS total
FROM library_items li
JOIN hub_versions cur ON cur.id = li.hub_version_id
JOIN hub_items i ON i.id = li.hub_item_id
JOIN tenants p ON p.id = i.publisher_id
JOIN LATERAL (
    SELECT v.version, v.published_at, v.major, v.minor, v.patch FROM hub_versions v
    WHERE v.item_id = li.hub_item_id AND v.yanked_at IS NULL
    ORDER BY v.major DESC, v.minor DESC, v.patch DESC LIMIT 1
) newest ON (newest.major, newest.minor, newest.patch) > (cur.major, cur.minor, cur.patch)
WHERE li.source = 'installed'
ORDER BY newest.published_at DESC, li.name, li.id
LIMIT {}
"""


async def updates(limit: int) -> tuple[list[Update], int]:
    """Installed copies with a newer version available (the first ``limit``, newest
    release first), and how many there are in all."""
    rows = await LibraryItem.raw(_UPDATES, limit)
    names = [f.name for f in fields(Update)]
    found = [Update(**{name: row[name] for name in names}) for row in rows]
    return found, int(rows[0]["total"]) if rows else 0
