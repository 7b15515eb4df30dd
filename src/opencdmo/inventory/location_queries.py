"""Storage locations, where containers are and how they got there, and whose labels are
printed: typed rows, read and written in the transaction open in the context (none opens or
commits one of its own; row-level security keeps every query inside the tenant)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Final
from uuid import UUID

from opencdmo.db.clock import database_now
from opencdmo.db.rows import columns, typed
from opencdmo.errors import NotFound
from opencdmo.inventory.tables import ContainerMove, LotContainer, StorageLocation

DEPTH_MAX: Final = 10  # site, room, unit, rack, box, position: a guard, never reached


@dataclass(frozen=True)
class LocationRow:
    id: UUID
    parent_id: UUID | None
    site_id: UUID
    kind: str
    code: str
    name: str
    storage_condition: str
    created_by: UUID | None
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True)
class NewLocation:
    parent_id: UUID | None
    site_id: UUID
    kind: str
    code: str
    name: str
    storage_condition: str


@dataclass(frozen=True)
class Place:
    """Where a location is: its path of names from the site down ("Site A / Room 101 /
    Freezer F-2") and the storage condition it keeps (its own, or the nearest one above)."""

    path: str
    condition: str
    depth: int = 0  # 0 for a site's root


@dataclass(frozen=True)
class Node:
    """A location in the tree, where it is, and how many containers it holds itself."""

    location: LocationRow
    place: Place
    depth: int
    held: int


@dataclass(frozen=True)
class StoredRow:
    """A container with its lot and material, as the location, label and queue pages show it."""

    id: UUID
    lot_id: UUID
    number: int
    quantity: Decimal
    unit: str
    location_id: UUID | None
    label_printed_at: datetime | None
    lot_number: str
    lot_status: str
    expiry_date: date | None
    received_at: datetime
    material_id: UUID
    material_code: str
    material_name: str
    material_condition: str


@dataclass(frozen=True)
class MoveRow:
    id: UUID
    container_id: UUID
    from_location_id: UUID | None
    to_location_id: UUID
    reason: str | None
    moved_by: UUID
    moved_at: datetime


@dataclass(frozen=True)
class NewMove:
    container_id: UUID
    from_location_id: UUID | None
    to_location_id: UUID
    reason: str | None


# --- locations --------------------------------------------------------------------------------


async def insert_location(tenant_id: UUID, new: NewLocation, created_by: UUID) -> UUID:
    rows = await StorageLocation.insert(
        StorageLocation(
            tenant_id=tenant_id,
            parent_id=new.parent_id,
            site_id=new.site_id,
            kind=new.kind,
            code=new.code,
            name=new.name,
            storage_condition=new.storage_condition,
            created_by=created_by,
            created_at=database_now(),
        )
    ).returning(StorageLocation.id)
    found: UUID = rows[0]["id"]
    return found


async def location(location_id: UUID, *, lock: bool = False) -> LocationRow:
    """The location (row-locked until the unit of work ends with ``lock``)."""
    query = StorageLocation.select(*columns(StorageLocation, LocationRow)).where(
        StorageLocation.id == location_id
    )
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    if raw is None:
        raise NotFound("No such location.")
    return typed(LocationRow, raw)


async def children(parent_id: UUID, *, active: bool = True) -> list[LocationRow]:
    query = StorageLocation.select(*columns(StorageLocation, LocationRow)).where(
        StorageLocation.parent_id == parent_id
    )
    if active:
        query = query.where(StorageLocation.retired_at.is_null())
    return [typed(LocationRow, r) for r in await query]


async def site_root(site_id: UUID) -> LocationRow | None:
    raw = await (
        StorageLocation.select(*columns(StorageLocation, LocationRow))
        .where((StorageLocation.site_id == site_id) & StorageLocation.parent_id.is_null())
        .first()
    )
    return None if raw is None else typed(LocationRow, raw)


async def retire(location_id: UUID) -> None:
    await StorageLocation.update({StorageLocation.retired_at: database_now()}).where(
        StorageLocation.id == location_id
    )


# Raw SQL: a recursive query (Piccolo has no WITH RECURSIVE), down from the sites' roots.
_TREE = f"""
WITH RECURSIVE tree AS (
    SELECT s.id, s.name AS path, s.storage_condition AS condition, 0 AS depth
    FROM storage_locations s
    WHERE s.parent_id IS NULL AND s.retired_at IS NULL
    UNION ALL
    SELECT c.id, tree.path || ' / ' || c.name,
           CASE WHEN c.storage_condition <> '' THEN c.storage_condition ELSE tree.condition END,
           tree.depth + 1
    FROM tree JOIN storage_locations c ON c.parent_id = tree.id
    WHERE c.retired_at IS NULL AND tree.depth < {DEPTH_MAX}
)
SELECT l.id, l.parent_id, l.site_id, l.kind, l.code, l.name, l.storage_condition,
       l.created_by, l.created_at, l.retired_at, tree.path, tree.condition, tree.depth,
       (SELECT count(*) FROM lot_containers k WHERE k.location_id = l.id) AS held
FROM tree JOIN storage_locations l ON l.id = tree.id
"""


async def tree() -> list[Node]:
    """Every location in use with its place, depth and the containers it holds itself, in no
    particular order (the service orders siblings)."""
    rows = await StorageLocation.raw(_TREE)
    return [
        Node(
            typed(LocationRow, r),
            Place(r["path"], r["condition"], r["depth"]),
            r["depth"],
            r["held"],
        )
        for r in rows
    ]


# Raw SQL: each child with a count of what it holds (a correlated subquery).
_CHILDREN = """
SELECT l.id, l.parent_id, l.site_id, l.kind, l.code, l.name, l.storage_condition,
       l.created_by, l.created_at, l.retired_at,
       (SELECT count(*) FROM lot_containers k WHERE k.location_id = l.id) AS held
FROM storage_locations l
WHERE l.parent_id = {} AND l.retired_at IS NULL
"""


async def child_nodes(parent: LocationRow, place: Place) -> list[Node]:
    """The locations in use in ``parent`` (at ``place``), as tree nodes."""
    rows = await StorageLocation.raw(_CHILDREN, parent.id)
    found = []
    for r in rows:
        row = typed(LocationRow, r)
        kept = row.storage_condition or place.condition
        depth = place.depth + 1
        found.append(Node(row, Place(f"{place.path} / {row.name}", kept, depth), depth, r["held"]))
    return found


# Raw SQL: a recursive query (Piccolo has no WITH RECURSIVE), up from each location.
_PLACES = f"""
WITH RECURSIVE up AS (
    SELECT l.id AS start, l.parent_id, l.name, l.storage_condition, 0 AS depth
    FROM storage_locations l WHERE l.id = ANY ({{}}::uuid[])
    UNION ALL
    SELECT up.start, p.parent_id, p.name, p.storage_condition, up.depth + 1
    FROM up JOIN storage_locations p ON p.id = up.parent_id
    WHERE up.depth < {DEPTH_MAX}
)
SELECT start AS id, string_agg(name, ' / ' ORDER BY depth DESC) AS path, max(depth) AS depth,
       coalesce((array_agg(storage_condition ORDER BY depth)
                 FILTER (WHERE storage_condition <> ''))[1], '') AS condition
FROM up GROUP BY start
"""


async def places(location_ids: list[UUID | None]) -> dict[UUID, Place]:
    """Where each of these locations is (ids of none are left out)."""
    wanted = sorted({i for i in location_ids if i is not None})
    if not wanted:
        return {}
    rows = await StorageLocation.raw(_PLACES, wanted)
    return {r["id"]: Place(r["path"], r["condition"], r["depth"]) for r in rows}


# --- containers -------------------------------------------------------------------------------

# Raw SQL: containers joined to their lots and materials (plain ids, not Piccolo foreign keys).
# Each WHERE clause is one of the fixed ones below, never built from input.
_STORED = """
SELECT c.id, c.lot_id, c.number, c.quantity, c.unit, c.location_id, c.label_printed_at,
       l.lot_number, l.status AS lot_status, l.expiry_date, l.received_at, l.material_id,
       m.code AS material_code, m.name AS material_name,
       m.storage_condition AS material_condition, count(*) OVER () AS total
FROM lot_containers c
JOIN lots l ON l.id = c.lot_id
JOIN materials m ON m.id = l.material_id
"""
_AT = "WHERE c.location_id = ANY ({}::uuid[]) ORDER BY l.lot_number, c.number"
_IDS = "WHERE c.id = ANY ({}::uuid[]) ORDER BY l.lot_number, c.number"
_OF_LOT = "WHERE c.lot_id = {} ORDER BY c.number"
# Containers whose label has never been printed, of lots still in use, oldest receipt first.
_TO_LABEL = (
    "WHERE c.label_printed_at IS NULL AND l.status <> 'consumed' "
    "ORDER BY l.received_at, l.lot_number, c.number LIMIT {}"
)


def _stored(rows: list[dict[str, object]]) -> list[StoredRow]:
    return [typed(StoredRow, r) for r in rows]


async def stored_at(location_ids: list[UUID]) -> list[StoredRow]:
    if not location_ids:
        return []
    return _stored(await LotContainer.raw(_STORED + _AT, location_ids))


async def stored(container_ids: list[UUID]) -> list[StoredRow]:
    if not container_ids:
        return []
    return _stored(await LotContainer.raw(_STORED + _IDS, container_ids))


async def stored_of_lot(lot_id: UUID) -> list[StoredRow]:
    return _stored(await LotContainer.raw(_STORED + _OF_LOT, lot_id))


async def to_label(limit: int) -> tuple[list[StoredRow], int]:
    """The first ``limit`` containers awaiting their label, and how many await one."""
    rows = await LotContainer.raw(_STORED + _TO_LABEL, max(limit, 1))
    total = int(rows[0]["total"]) if rows else 0
    return _stored(rows)[:limit], total


async def lock_containers(container_ids: list[UUID]) -> list[tuple[UUID, UUID | None]]:
    """Row-lock the containers (in id order, so that two movers never deadlock) until the
    unit of work ends; each one's id and location. Ids not found are left out."""
    rows = (
        await LotContainer.select(LotContainer.id, LotContainer.location_id)
        .where(LotContainer.id.is_in(sorted(set(container_ids))))
        .order_by(LotContainer.id)
        .lock_rows("UPDATE")
    )
    return [(r["id"], r["location_id"]) for r in rows]


async def held_at(location_id: UUID) -> int:
    """How many containers the location holds itself."""
    found: int = await LotContainer.count().where(LotContainer.location_id == location_id)
    return found


async def set_location(container_ids: list[UUID], location_id: UUID) -> None:
    await LotContainer.update({LotContainer.location_id: location_id}).where(
        LotContainer.id.is_in(container_ids)
    )


async def insert_moves(tenant_id: UUID, moves: list[NewMove], moved_by: UUID) -> None:
    if not moves:
        return
    await ContainerMove.insert(
        *[
            ContainerMove(
                tenant_id=tenant_id,
                container_id=m.container_id,
                from_location_id=m.from_location_id,
                to_location_id=m.to_location_id,
                reason=m.reason,
                moved_by=moved_by,
                moved_at=database_now(),
            )
            for m in moves
        ]
    )


async def moves(container_ids: list[UUID]) -> list[MoveRow]:
    if not container_ids:
        return []
    rows = (
        await ContainerMove.select(*columns(ContainerMove, MoveRow))
        .where(ContainerMove.container_id.is_in(container_ids))
        .order_by(ContainerMove.moved_at)
        .order_by(ContainerMove.id)
    )
    return [typed(MoveRow, r) for r in rows]


async def mark_printed(container_ids: list[UUID], printed_by: UUID) -> None:
    await LotContainer.update(
        {LotContainer.label_printed_at: database_now(), LotContainer.label_printed_by: printed_by}
    ).where(LotContainer.id.is_in(container_ids))


async def container_labels(ids: list[UUID]) -> dict[str, str]:
    """Each container's name for the audit trail: its number and lot ("container 2 of lot
    L-1")."""
    found = await stored(ids)
    return {str(r.id): f"container {r.number} of lot {r.lot_number}" for r in found}
