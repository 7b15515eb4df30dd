"""Storage locations, moves, labels and stock through the JSON API: the location tree and a
location with what it stores, creating and retiring locations, moving containers, a
container with its moves, recording printed labels, a material's reorder level and
approved suppliers, and the materials handler's watch lists."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from opencdmo.inventory import locations, stock
from opencdmo.inventory.location_queries import LocationRow, Place
from opencdmo.inventory.location_schemas import (
    ContainerDetail,
    ExpiringOut,
    LabelsPrintedIn,
    LabelsPrintedOut,
    LocationDetail,
    LocationIn,
    LocationOut,
    LocationTree,
    MovedList,
    MovedOut,
    MoveIn,
    MoveOut,
    ReorderLevelIn,
    StockOut,
    StoredOut,
    SuppliersIn,
    TreeLocationOut,
)
from opencdmo.inventory.locations import Stored, TreeEntry
from opencdmo.inventory.routes import LOT, MATERIAL, _material
from opencdmo.inventory.schemas import MaterialOut, ReasonIn
from opencdmo.inventory.stock import MaterialStock
from opencdmo.scope import TenantContext
from opencdmo.web.guards import requires

LOCATIONS = "/locations"
LOCATION = LOCATIONS + "/{location_id:uuid}"
CONTAINER = "/containers/{container_id:uuid}"
Limit = Annotated[int, QueryParameter(ge=1, le=200, required=False)]


def _location(row: LocationRow, place: Place) -> dict[str, object]:
    return {
        "id": row.id,
        "parent_id": row.parent_id,
        "site_id": row.site_id,
        "kind": row.kind,
        "code": row.code,
        "name": row.name,
        "path": place.path,
        "storage_condition": row.storage_condition,
        "kept_condition": place.condition,
        "created_at": row.created_at,
        "retired_at": row.retired_at,
    }


def _node(entry: TreeEntry) -> TreeLocationOut:
    node = entry.node
    return TreeLocationOut(
        **_location(node.location, node.place),  # type: ignore[arg-type]
        depth=node.depth,
        containers=node.held,
    )


def _stored(s: Stored) -> StoredOut:
    r = s.row
    return StoredOut(
        id=r.id,
        lot_id=r.lot_id,
        lot_number=r.lot_number,
        number=r.number,
        material_id=r.material_id,
        material_code=r.material_code,
        quantity=r.quantity,
        unit=r.unit,
        status=s.status,
        location_id=r.location_id,
        location=s.place.path if s.place else None,
        label_printed_at=r.label_printed_at,
        warning=s.warning,
    )


def _stock(s: MaterialStock) -> StockOut:
    m = s.material
    return StockOut(
        material_id=m.id,
        code=m.code,
        name=m.name,
        default_unit=m.default_unit,
        on_hand=s.on_hand,
        reorder_level=m.reorder_level,
        approved_suppliers=m.approved_suppliers,
        below_reorder_level=s.below,
    )


@get(LOCATIONS, opt=requires("materials", "read"), tags=["inventory"])
async def api_locations(ctx: NamedDependency[TenantContext]) -> LocationTree:
    """Every storage location in use, depth first (siblings by code), with its path, the
    storage condition it keeps and how many containers it holds itself."""
    return LocationTree([_node(e) for e in await locations.location_tree(ctx)])


@post(LOCATIONS, opt=requires("materials", "manage"), tags=["inventory"], status_code=201)
async def api_create_location(
    ctx: NamedDependency[TenantContext], data: JSONBody[LocationIn]
) -> LocationDetail:
    """A storage location: a site's root, a room in a site, a storage unit (freezer, fridge,
    incubator, shelf, LN2 tank) in a room, a rack in a unit, a box in a rack or unit, a
    position in a box."""
    row = await locations.create_location(
        ctx, data.kind, data.code, data.name, data.storage_condition, data.parent_id, data.site
    )
    return await _detail(ctx, row.id)


async def _detail(ctx: TenantContext, location_id: UUID) -> LocationDetail:
    view = await locations.get_location(ctx, location_id)
    return LocationDetail(
        **_location(view.location, view.place),  # type: ignore[arg-type]
        children=[_node(e) for e in view.children],
        stored=[_stored(s) for s in view.stored],
    )


@get(LOCATION, opt=requires("materials", "read"), tags=["inventory"])
async def api_location(
    ctx: NamedDependency[TenantContext], location_id: FromPath[UUID]
) -> LocationDetail:
    """The location, the locations in it, and the containers it holds itself (each with a
    warning when the location keeps another storage condition than its material)."""
    return await _detail(ctx, location_id)


@post(
    LOCATION + "/retire", opt=requires("materials", "manage"), tags=["inventory"], status_code=200
)
async def api_retire_location(
    ctx: NamedDependency[TenantContext], location_id: FromPath[UUID], data: JSONBody[ReasonIn]
) -> LocationOut:
    """Take a location out of use, saying why (once it holds nothing and the locations in it
    are retired)."""
    row = await locations.retire_location(ctx, location_id, data.reason)
    place = (await locations.places_of(ctx, [row.id]))[row.id]
    return LocationOut(**_location(row, place))  # type: ignore[arg-type]


@post(
    LOCATION + "/containers",
    opt=requires("materials", "manage"),
    tags=["inventory"],
    status_code=200,
)
async def api_move(
    ctx: NamedDependency[TenantContext], location_id: FromPath[UUID], data: JSONBody[MoveIn]
) -> MovedList:
    """Move containers to this location (one audit event each, from where to where); a
    position holds one container, a second is a 409. A container of any lot moves (a
    rejected one to destruction)."""
    moved = await locations.move(ctx, data.container_ids, location_id, data.reason)
    return MovedList(
        [
            MovedOut(
                container=_stored(m.container),
                from_location_id=m.from_id,
                from_location=m.from_place.path if m.from_place else None,
            )
            for m in moved
        ]
    )


@get(CONTAINER, opt=requires("materials", "read"), tags=["inventory"])
async def api_container(
    ctx: NamedDependency[TenantContext], container_id: FromPath[UUID]
) -> ContainerDetail:
    """The container, where it is, and each move it made (its receipt first)."""
    view = await locations.get_container(ctx, container_id)
    base = _stored(view.container)
    return ContainerDetail(
        **{f: getattr(base, f) for f in base.__struct_fields__},
        moves=[
            MoveOut(
                from_location_id=m.move.from_location_id,
                from_location=m.from_place.path if m.from_place else None,
                to_location_id=m.move.to_location_id,
                to_location=m.to_place.path,
                reason=m.move.reason,
                moved_by=m.move.moved_by,
                moved_at=m.move.moved_at,
            )
            for m in view.moves
        ],
    )


@post(
    LOT + "/labels-printed",
    opt=requires("materials", "manage"),
    tags=["inventory"],
    status_code=200,
)
async def api_labels_printed(
    ctx: NamedDependency[TenantContext], lot_id: FromPath[UUID], data: JSONBody[LabelsPrintedIn]
) -> LabelsPrintedOut:
    """Record that the labels of the lot's containers (those given, or all) were printed:
    they leave the queue of containers to label."""
    return LabelsPrintedOut(await locations.labels_printed(ctx, lot_id, data.container_ids))


@post(
    MATERIAL + "/reorder-level",
    opt=requires("materials", "manage"),
    tags=["inventory"],
    status_code=200,
)
async def api_reorder_level(
    ctx: NamedDependency[TenantContext], material_id: FromPath[UUID], data: JSONBody[ReorderLevelIn]
) -> MaterialOut:
    """Set the material's reorder level, in its default unit (null: none)."""
    return _material(await stock.set_reorder_level(ctx, material_id, data.reorder_level))


@post(
    MATERIAL + "/suppliers",
    opt=requires("materials", "manage"),
    tags=["inventory"],
    status_code=200,
)
async def api_suppliers(
    ctx: NamedDependency[TenantContext], material_id: FromPath[UUID], data: JSONBody[SuppliersIn]
) -> MaterialOut:
    """Set the material's approved suppliers (empty: any): a receipt from another supplier is
    refused, the message naming the approved ones."""
    return _material(await stock.set_approved_suppliers(ctx, material_id, data.suppliers))


@get(MATERIAL + "/stock", opt=requires("materials", "read"), tags=["inventory"])
async def api_stock(ctx: NamedDependency[TenantContext], material_id: FromPath[UUID]) -> StockOut:
    """The material's quantity on hand (containers of its lots in quarantine or released, not
    expired) in its default unit, against its reorder level."""
    return _stock((await stock.material_view(ctx, material_id)).stock)


@get("/stock/below-reorder-level", opt=requires("materials", "read"), tags=["inventory"])
async def api_below_reorder(
    ctx: NamedDependency[TenantContext], limit: Limit = 200
) -> list[StockOut]:
    """Materials whose quantity on hand is below their reorder level."""
    found, _ = await stock.below_reorder(ctx, limit)
    return [_stock(s) for s in found]


@get("/containers/to-label", opt=requires("materials", "read"), tags=["inventory"])
async def api_to_label(ctx: NamedDependency[TenantContext], limit: Limit = 200) -> list[StoredOut]:
    """Containers whose label has not been printed yet, oldest receipt first."""
    found, _ = await stock.to_label(ctx, limit)
    return [_stored(s) for s in found]


@get("/lots/expiring", opt=requires("materials", "read"), tags=["inventory"])
async def api_expiring(
    ctx: NamedDependency[TenantContext], limit: Limit = 200
) -> list[ExpiringOut]:
    """Lots in quarantine, released or on hold that expire within 30 days, soonest first."""
    found, _ = await stock.expiring(ctx, limit)
    return [
        ExpiringOut(
            lot_id=s.lot.id,
            lot_number=s.lot.lot_number,
            material_code=s.material_code,
            expiry_date=s.lot.expiry_date,
            status=s.status,
        )
        for s in found
    ]


api = [
    api_locations,
    api_create_location,
    api_location,
    api_retire_location,
    api_move,
    api_container,
    api_labels_printed,
    api_reorder_level,
    api_suppliers,
    api_stock,
    api_below_reorder,
    api_to_label,
    api_expiring,
]
