"""Inventory data access: materials, lots, containers and status changes, as typed rows.

Each function runs in the transaction open in its context; none opens or commits one of its
own. Row-level security keeps every query inside the tenant: another tenant's lot is the same
NotFound as a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from opencdmo import quantities
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
    reorder_level: Decimal | None
    approved_suppliers: list[str]


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
    origin_batch_id: UUID | None
    origin_step: str | None
    donor_id: str | None
    coi_label: str | None
    apheresis_id: str | None
    coa_file_id: UUID | None


@dataclass(frozen=True)
class Identity:
    """The chain-of-identity identifiers of a patient's or donor's starting material."""

    donor_id: str | None = None
    coi_label: str | None = None
    apheresis_id: str | None = None

    def __bool__(self) -> bool:
        return any((self.donor_id, self.coi_label, self.apheresis_id))


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
    identity: Identity = Identity()
    origin_batch_id: UUID | None = None
    origin_step: str | None = None


@dataclass(frozen=True)
class ContainerRow:
    id: UUID
    lot_id: UUID
    number: int
    quantity: Decimal
    unit: str
    remaining: Decimal
    location_id: UUID | None
    label_printed_at: datetime | None


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


async def materials_by_id(ids: list[UUID]) -> dict[UUID, MaterialRow]:
    if not ids:
        return {}
    rows = await Material.select(*columns(Material, MaterialRow)).where(Material.id.is_in(ids))
    return {r["id"]: typed(MaterialRow, r) for r in rows}


async def lots_by_id(ids: list[UUID]) -> dict[UUID, LotRow]:
    if not ids:
        return {}
    rows = await Lot.select(*columns(Lot, LotRow)).where(Lot.id.is_in(ids))
    return {r["id"]: typed(LotRow, r) for r in rows}


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
            origin_batch_id=new.origin_batch_id,
            origin_step=new.origin_step,
            donor_id=new.identity.donor_id,
            coi_label=new.identity.coi_label,
            apheresis_id=new.identity.apheresis_id,
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
        # passed and not yet stored as expired, or stored so by the lot expiry job
        query = query.where(
            (passed & Lot.status.is_in(list(EXPIRABLE))) | (Lot.status == "expired")
        )
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
) -> list[UUID]:
    """The lot's containers, numbered from 1, each with its quantity and unit; their ids in
    that order."""
    rows = await LotContainer.insert(
        *[
            LotContainer(
                tenant_id=tenant_id,
                lot_id=lot_id,
                number=n,
                quantity=quantity,
                unit=unit,
                remaining=quantity,
            )
            for n, (quantity, unit) in enumerate(split, start=1)
        ]
    ).returning(LotContainer.id, LotContainer.number)
    return [r["id"] for r in sorted(rows, key=lambda r: r["number"])]


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


# --- on hand ----------------------------------------------------------------------------------

# Lots whose containers count as on hand: usable now or once QC releases them, unexpired.
ON_HAND = ("quarantine", "released")

# Raw SQL: a join of containers, lots and materials summed by unit (the tables hold plain ids,
# not Piccolo foreign keys, so Piccolo's select cannot join them).
_ON_HAND = """
SELECT l.material_id, m.default_unit, c.unit, sum(c.remaining) AS quantity
FROM lot_containers c
JOIN lots l ON l.id = c.lot_id
JOIN materials m ON m.id = l.material_id
WHERE l.material_id = ANY ({}::uuid[]) AND l.status = ANY ({}::text[])
  AND (l.expiry_date IS NULL OR l.expiry_date >= {})
GROUP BY l.material_id, m.default_unit, c.unit
"""


async def on_hand(material_ids: list[UUID], on: date) -> dict[UUID, Decimal]:
    """Each material's quantity on hand on ``on``, in its default unit: what is left in the
    containers of its lots in quarantine or released that have not expired (zero for a
    material with none).
    The one place that says what is on hand."""
    if not material_ids:
        return {}
    rows = await Lot.raw(_ON_HAND, list(set(material_ids)), list(ON_HAND), on)
    found = {m: Decimal(0) for m in material_ids}
    for r in rows:
        found[r["material_id"]] += quantities.convert(r["quantity"], r["unit"], r["default_unit"])
    return found


# --- stock settings and watch lists -----------------------------------------------------------


async def lock_material(material_id: UUID) -> MaterialRow:
    """The material, row-locked until the unit of work ends."""
    raw = await (
        Material.select(*columns(Material, MaterialRow))
        .where(Material.id == material_id)
        .lock_rows("UPDATE")
        .first()
    )
    if raw is None:
        raise NotFound("No such material.")
    return typed(MaterialRow, raw)


async def set_reorder_level(material_id: UUID, level: Decimal | None) -> None:
    await Material.update({Material.reorder_level: level}).where(Material.id == material_id)


async def set_approved_suppliers(material_id: UUID, suppliers: list[str]) -> None:
    await Material.update({Material.approved_suppliers: suppliers}).where(
        Material.id == material_id
    )


async def materials_with_reorder_level() -> list[MaterialRow]:
    rows = (
        await Material.select(*columns(Material, MaterialRow))
        .where(Material.reorder_level.is_not_null())
        .order_by(Material.code)
    )
    return [typed(MaterialRow, r) for r in rows]


async def lots_of_material(material_id: UUID, limit: int) -> list[LotRow]:
    rows = (
        await Lot.select(*columns(Lot, LotRow))
        .where(Lot.material_id == material_id)
        .order_by(Lot.received_at, ascending=False)
        .order_by(Lot.id)
        .limit(limit)
    )
    return [typed(LotRow, r) for r in rows]


# Raw SQL: the queue's total counted in the same query (a window function).
_EXPIRING = (
    "SELECT "
    + ", ".join(f"l.{f.name}" for f in fields(LotRow))
    + """, count(*) OVER () AS total
FROM lots l
WHERE l.status = ANY ({}::text[]) AND l.expiry_date BETWEEN {} AND {}
ORDER BY l.expiry_date, l.lot_number, l.id
LIMIT {}
"""
)


async def expiring(on: date, until: date, limit: int) -> tuple[list[LotRow], int]:
    """Lots that may still be used whose expiry date falls between ``on`` and ``until``
    (both included), soonest first: the first ``limit`` and how many there are."""
    rows = await Lot.raw(_EXPIRING, list(EXPIRABLE), on, until, max(limit, 1))
    total = int(rows[0]["total"]) if rows else 0
    return [typed(LotRow, r) for r in rows][:limit], total
