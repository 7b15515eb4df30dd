"""Materials and lots through the JSON API: the material master, receiving a lot into
quarantine, the lots list with its status filter, a lot with its containers and status
history, QC's release or rejection (signed), and holding or unholding a lot."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any
from uuid import UUID

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Template

from opencdmo.access.service import can
from opencdmo.inventory import receipt, service
from opencdmo.inventory.edge import ReceiptOperation, coa_upload, json_part
from opencdmo.inventory.queries import Identity, LotRow, MaterialRow
from opencdmo.inventory.receipt import ContainerIn, Receipt
from opencdmo.inventory.schemas import (
    CoaOut,
    ContainerOut,
    IdentityIn,
    LotDetail,
    LotList,
    LotOut,
    MaterialIn,
    MaterialList,
    MaterialOut,
    ReasonIn,
    ReceiptIn,
    SignIn,
    StatusChangeOut,
)
from opencdmo.inventory.service import LotView
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.storage.uploads import Upload
from opencdmo.web.files import decode_json, is_multipart
from opencdmo.web.guards import JSON_BODY, JSON_PART, requires
from opencdmo.web.pages import form_data, page

MATERIALS = "/materials"
MATERIAL = MATERIALS + "/{material_id:uuid}"
LOTS = "/lots"
LOT = LOTS + "/{lot_id:uuid}"
Limit = Annotated[int, QueryParameter(ge=1, le=200, required=False)]
Offset = Annotated[int, QueryParameter(ge=0, le=10**9, required=False)]
Status = Annotated[str | None, QueryParameter(max_length=40, required=False)]


def _identity(given: IdentityIn | None) -> Identity | None:
    if given is None:
        return None
    return Identity(given.donor_id, given.coi_label, given.apheresis_id)


def _material(row: MaterialRow) -> MaterialOut:
    return MaterialOut(**asdict(row))


def _lot_values(row: LotRow, material_code: str, status: str) -> dict[str, object]:
    values = asdict(row)
    values.pop("updated_at")
    return {**values, "status": status, "stored_status": row.status, "material_code": material_code}


def _coa(view: LotView) -> CoaOut | None:
    if view.coa is None:
        return None
    stored = view.coa.file
    return CoaOut(
        file_id=stored.id,
        filename=stored.filename,
        content_type=stored.content_type,
        size_bytes=stored.size_bytes,
        sha256=stored.sha256,
        uploaded_by=stored.uploaded_by,
        uploaded_by_name=view.coa.uploaded_by_name,
        uploaded_at=stored.uploaded_at,
    )


def detail(view: LotView) -> LotDetail:
    return LotDetail(
        **_lot_values(view.lot, view.material.code, view.status),  # type: ignore[arg-type]
        coa=_coa(view),
        containers=[
            ContainerOut(
                id=c.id,
                remaining=c.remaining,
                number=c.number,
                quantity=c.quantity,
                unit=c.unit,
                location_id=c.location_id,
                location=view.places[c.location_id].path if c.location_id else None,
                label_printed_at=c.label_printed_at,
            )
            for c in view.containers
        ],
        history=[
            StatusChangeOut(
                from_status=h.from_status,
                to_status=h.to_status,
                reason=h.reason,
                changed_by=h.changed_by,
                changed_at=h.changed_at,
                signature_id=h.signature_id,
            )
            for h in view.history
        ],
    )


@get(MATERIALS, opt=requires("materials", "read"), tags=["inventory"])
async def api_materials(ctx: NamedDependency[TenantContext]) -> MaterialList:
    """The tenant's material master, by code."""
    return MaterialList([_material(r) for r in await service.list_materials(ctx)])


@post(MATERIALS, opt=requires("materials", "manage"), tags=["inventory"], status_code=201)
async def api_create_material(
    ctx: NamedDependency[TenantContext], data: JSONBody[MaterialIn]
) -> MaterialOut:
    """A material of the tenant's master (its code unique in the tenant), with its default
    unit (a UCUM code such as mL, g, {vial})."""
    row = await service.create_material(
        ctx,
        data.code,
        data.name,
        data.material_type,
        data.default_unit,
        data.storage_condition,
        data.shelf_life_days,
        data.library_item_id,
    )
    return _material(row)


@get(MATERIAL, opt=requires("materials", "read"), tags=["inventory"])
async def api_material(
    ctx: NamedDependency[TenantContext], material_id: FromPath[UUID]
) -> MaterialOut:
    return _material(await service.get_material(ctx, material_id))


@get(LOTS, opt=requires("materials", "read"), tags=["inventory"])
async def api_lots(
    ctx: NamedDependency[TenantContext],
    status: Status = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> LotList:
    """Lots, latest received first, filtered by status as shown (quarantine, released,
    rejected, on_hold, consumed, expired); paged."""
    found = await service.list_lots(ctx, status or None, limit, offset)
    return LotList(
        [LotOut(**_lot_values(s.lot, s.material_code, s.status)) for s in found]  # type: ignore[arg-type]
    )


@post(
    LOTS,
    opt={
        **requires("materials", "manage", uploads=True),
        JSON_BODY: ReceiptIn,
        JSON_PART: "receipt",
    },
    tags=["inventory"],
    status_code=201,
    operation_class=ReceiptOperation,
)
async def api_receive(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
) -> LotDetail:
    """Receive a delivery into quarantine: a lot of the material, its quantity in a unit that
    measures what the material's default unit does, split into containers if asked. A JSON
    receipt, or multipart/form-data with the receipt (the same JSON) in a ``receipt`` part and
    its certificate of analysis (a PDF, PNG or JPEG file) in a ``coa`` part."""
    coa: Upload | None = None
    if is_multipart(request):
        form = await form_data(request)
        data = decode_json(await json_part(form, "receipt"), ReceiptIn, "receipt")
        coa = await coa_upload(form, settings)
    else:
        data = decode_json(await request.body(), ReceiptIn)
    containers: int | list[ContainerIn] | None
    if isinstance(data.containers, list):
        containers = [ContainerIn(c.quantity, c.unit) for c in data.containers]
    else:
        containers = data.containers
    row = await receipt.receive(
        ctx,
        Receipt(
            data.material_id,
            data.lot_number,
            data.supplier,
            data.supplier_lot,
            data.quantity,
            data.unit,
            data.expiry_date,
            containers,
            data.coa_note,
            identity=_identity(data.chain_of_identity),
            location_id=data.location_id,
        ),
        coa,
    )
    return detail(await service.get_lot(ctx, row.id))


@get(LOT, opt=requires("materials", "read"), tags=["inventory"])
async def api_lot(ctx: NamedDependency[TenantContext], lot_id: FromPath[UUID]) -> LotDetail:
    """The lot, its status as shown (expired once its expiry date has passed), containers
    and status history."""
    return detail(await service.get_lot(ctx, lot_id))


@post(LOT + "/release", opt=requires("materials", "release"), tags=["inventory"], status_code=200)
async def api_release(
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
    lot_id: FromPath[UUID],
    data: JSONBody[SignIn],
) -> LotDetail:
    """QC releases a lot in quarantine, signing it 'released for use' (not whoever received
    it)."""
    view = await service.decide(settings, ctx, lot_id, "release", data.password, data.reason)
    return detail(view)


@post(LOT + "/reject", opt=requires("materials", "release"), tags=["inventory"], status_code=200)
async def api_reject(
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
    lot_id: FromPath[UUID],
    data: JSONBody[SignIn],
) -> LotDetail:
    """QC rejects a lot in quarantine, signing it 'rejected'."""
    view = await service.decide(settings, ctx, lot_id, "reject", data.password, data.reason)
    return detail(view)


@post(LOT + "/hold", opt=requires("materials", "manage"), tags=["inventory"], status_code=200)
async def api_hold(
    ctx: NamedDependency[TenantContext], lot_id: FromPath[UUID], data: JSONBody[ReasonIn]
) -> LotDetail:
    """Put a lot in quarantine or released on hold, saying why."""
    return detail(await service.hold(ctx, lot_id, data.reason))


@post(LOT + "/unhold", opt=requires("materials", "manage"), tags=["inventory"], status_code=200)
async def api_unhold(
    ctx: NamedDependency[TenantContext], lot_id: FromPath[UUID], data: JSONBody[ReasonIn]
) -> LotDetail:
    """Take a lot off hold, back to the status it had before, saying why."""
    return detail(await service.unhold(ctx, lot_id, data.reason))


api = [
    api_materials,
    api_create_material,
    api_material,
    api_lots,
    api_receive,
    api_lot,
    api_release,
    api_reject,
    api_hold,
    api_unhold,
]


@get(LOTS, opt=requires("materials", "read"), include_in_schema=False)
async def lots_page(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    status: Status = None,
    offset: Offset = 0,
) -> Template:
    chosen = status if status in service.STATUSES else None
    found = await service.list_lots(ctx, chosen, 200, offset)
    return await page(
        request,
        "inventory/lots.html",
        lots=found,
        statuses=service.STATUSES,
        status_names=service.STATUS_NAMES,
        chosen=chosen or "",
        may_manage=await can(ctx, "materials", "manage"),
    )


pages = [lots_page]  # the lot's page and forms: lot_routes.py
