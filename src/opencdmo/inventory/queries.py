"""Inventory data access: materials, lots, containers and status changes, as typed rows.

Each function runs in the transaction open in its context; none opens or commits one of its
own. Row-level security keeps every query inside the tenant: another tenant's lot is the same
NotFound as a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from opencdmo.db.clock import database_now
from opencdmo.db.rows import columns, typed
from opencdmo.errors import NotFound
from opencdmo.hub.tables import LibraryItem
from opencdmo.inventory.tables import Lot, LotContainer, LotStatusChange, Material

# Stored statuses a passed expiry date overrides (a rejected or consumed lot stays so).
EXPIRABLE = ("quarantine", "released", "on_hold")


@dataclass(frozen=True)
class MaterialRow:
    id: UUID
    code: str
    name: str
    material_type: str
    storage_condition: str
    shelf_life_days: int | None
    default_unit: str
    library_item_id: UUID | None
    created_by: UUID | None
    created_at: datetime


@dataclass(frozen=True)
class NewMaterial:
    code: str
    name: str
    material_type: str
    storage_condition: str
    shelf_life_days: int | None
    default_unit: str
    library_item_id: UUID | None


@dataclass(frozen=True)
class LotRow:
    id: UUID
    material_id: UUID
    lot_number: str
    supplier: str
    supplier_lot: str
    quantity: Decimal
    unit: str
    expiry_date: date | None
    status: str
    received_by: UUID
    received_at: datetime
    coa_note: str | None
    updated_at: datetime
    coa_file_id: UUID | None


@dataclass(frozen=True)
class NewLot:
    material_id: UUID
    lot_number: str
    supplier: str
    supplier_lot: str
    quantity: Decimal
    unit: str
    expiry_date: date | None
    coa_note: str | None


@dataclass(frozen=True)
class ContainerRow:
    id: UUID
    lot_id: UUID
    number: int
    quantity: Decimal
    unit: str


@dataclass(frozen=True)
class StatusChangeRow:
    id: UUID
    lot_id: UUID
    from_status: str | None
    to_status: str
    reason: str
    changed_by: UUID
    changed_at: datetime
    signature_id: UUID | None


# --- materials --------------------------------------------------------------------------------


async def insert_material(tenant_id: UUID, new: NewMaterial, created_by: UUID | None) -> UUID:
    rows = await Material.insert(
        Material(
            tenant_id=tenant_id,
            code=new.code,
            name=new.name,
            material_type=new.material_type,
            storage_condition=new.storage_condition,
            shelf_life_days=new.shelf_life_days,
            default_unit=new.default_unit,
            library_item_id=new.library_item_id,
            created_by=created_by,
            created_at=database_now(),
        )
    ).returning(Material.id)
    found: UUID = rows[0]["id"]
    return found


async def material(material_id: UUID) -> MaterialRow:
    raw = await (
        Material.select(*columns(Material, MaterialRow)).where(Material.id == material_id).first()
    )
    if raw is None:
        raise NotFound("No such material.")
    return typed(MaterialRow, raw)


async def material_by_code(code: str) -> MaterialRow | None:
    raw = (
        await Material.select(*columns(Material, MaterialRow)).where(Material.code == code).first()
    )
    return None if raw is None else typed(MaterialRow, raw)


async def materials() -> list[MaterialRow]:
    rows = await Material.select(*columns(Material, MaterialRow)).order_by(Material.code)
    return [typed(MaterialRow, r) for r in rows]


async def library_item_exists(item_id: UUID) -> bool:
    raw = await LibraryItem.select(LibraryItem.id).where(LibraryItem.id == item_id).first()
    return raw is not None


async def material_codes(ids: list[UUID]) -> dict[UUID, str]:
    if not ids:
        return {}
    rows = await Material.select(Material.id, Material.code).where(Material.id.is_in(ids))
    return {r["id"]: r["code"] for r in rows}


# --- lots -------------------------------------------------------------------------------------


async def insert_lot(tenant_id: UUID, new: NewLot, received_by: UUID) -> UUID:
    rows = await Lot.insert(
        Lot(
            tenant_id=tenant_id,
            material_id=new.material_id,
            lot_number=new.lot_number,
            supplier=new.supplier,
            supplier_lot=new.supplier_lot,
            quantity=new.quantity,
            unit=new.unit,
            expiry_date=new.expiry_date,
            status="quarantine",
            received_by=received_by,
            received_at=database_now(),
            coa_note=new.coa_note,
            updated_at=database_now(),
        )
    ).returning(Lot.id)
    found: UUID = rows[0]["id"]
    return found


async def lot(lot_id: UUID, *, lock: bool = False) -> LotRow:
    """The lot (row-locked until the unit of work ends with ``lock``)."""
    query = Lot.select(*columns(Lot, LotRow)).where(Lot.id == lot_id)
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    if raw is None:
        raise NotFound("No such lot.")
    return typed(LotRow, raw)


async def lot_exists(material_id: UUID, lot_number: str) -> bool:
    raw = await (
        Lot.select(Lot.id)
        .where((Lot.material_id == material_id) & (Lot.lot_number == lot_number))
        .first()
    )
    return raw is not None


async def lots(status: str | None, on: date, limit: int, offset: int) -> list[LotRow]:
    """Lots with the status as shown on ``on`` (all without one), latest received first:
    ``expired`` is a lot past its expiry date whose stored status would let it be used, and
    such a lot is not listed under its stored status."""
    query = Lot.select(*columns(Lot, LotRow))
    passed = Lot.expiry_date.is_not_null() & (Lot.expiry_date < on)
    if status == "expired":
        query = query.where(passed & Lot.status.is_in(list(EXPIRABLE)))
    elif status in EXPIRABLE:
        query = query.where(
            (Lot.status == status) & (Lot.expiry_date.is_null() | (Lot.expiry_date >= on))
        )
    elif status is not None:
        query = query.where(Lot.status == status)
    rows = (
        await query.order_by(Lot.received_at, ascending=False)
        .order_by(Lot.id)
        .limit(limit)
        .offset(offset)
    )
    return [typed(LotRow, r) for r in rows]


async def set_status(lot_id: UUID, status: str) -> None:
    await Lot.update({Lot.status: status, Lot.updated_at: database_now()}).where(Lot.id == lot_id)


async def set_coa(lot_id: UUID, file_id: UUID) -> None:
    """The lot's certificate of analysis (a stored file of the tenant)."""
    await Lot.update({Lot.coa_file_id: file_id, Lot.updated_at: database_now()}).where(
        Lot.id == lot_id
    )


# --- containers and history -------------------------------------------------------------------


async def insert_containers(
    tenant_id: UUID, lot_id: UUID, split: list[tuple[Decimal, str]]
) -> None:
    """The lot's containers, numbered from 1, each with its quantity and unit."""
    await LotContainer.insert(
        *[
            LotContainer(tenant_id=tenant_id, lot_id=lot_id, number=n, quantity=quantity, unit=unit)
            for n, (quantity, unit) in enumerate(split, start=1)
        ]
    )


async def containers(lot_id: UUID) -> list[ContainerRow]:
    rows = (
        await LotContainer.select(*columns(LotContainer, ContainerRow))
        .where(LotContainer.lot_id == lot_id)
        .order_by(LotContainer.number)
    )
    return [typed(ContainerRow, r) for r in rows]


async def insert_change(
    tenant_id: UUID,
    lot_id: UUID,
    from_status: str | None,
    to_status: str,
    reason: str,
    changed_by: UUID,
    signature_id: UUID | None,
) -> None:
    await LotStatusChange.insert(
        LotStatusChange(
            tenant_id=tenant_id,
            lot_id=lot_id,
            from_status=from_status,
            to_status=to_status,
            reason=reason,
            changed_by=changed_by,
            changed_at=database_now(),
            signature_id=signature_id,
        )
    )


async def history(lot_id: UUID) -> list[StatusChangeRow]:
    rows = (
        await LotStatusChange.select(*columns(LotStatusChange, StatusChangeRow))
        .where(LotStatusChange.lot_id == lot_id)
        .order_by(LotStatusChange.changed_at)
        .order_by(LotStatusChange.id)
    )
    return [typed(StatusChangeRow, r) for r in rows]


async def lot_numbers(ids: list[UUID]) -> dict[str, str]:
    if not ids:
        return {}
    rows = await Lot.select(Lot.id, Lot.lot_number).where(Lot.id.is_in(ids))
    return {str(r["id"]): r["lot_number"] for r in rows}
