"""Data access for materials in batches: containers as a batch may use them, reservations,
consumptions and the genealogy links they write, as typed rows.

Each function runs in the transaction open in its context; none opens or commits one of its
own. Row-level security keeps every query inside the tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from opencdmo.db.clock import database_now
from opencdmo.db.rows import columns, typed
from opencdmo.errors import NotFound
from opencdmo.hub.tables import LibraryItem
from opencdmo.inventory.queries import ContainerRow
from opencdmo.inventory.tables import (
    BatchConsumption,
    BatchReservation,
    GenealogyLink,
    Lot,
    LotContainer,
    Material,
)


@dataclass(frozen=True)
class ConsumptionRow:
    id: UUID
    batch_id: UUID
    step: str
    material: str | None
    container_id: UUID
    lot_id: UUID
    material_id: UUID
    quantity: Decimal
    unit: str
    container_quantity: Decimal
    container_unit: str
    consumed_by: UUID
    consumed_at: datetime
    idempotency_key: str | None


@dataclass(frozen=True)
class NewConsumption:
    batch_id: UUID
    step: str
    material: str | None
    container: ContainerRow
    material_id: UUID
    quantity: Decimal
    unit: str
    container_quantity: Decimal
    idempotency_key: str | None = None


@dataclass(frozen=True)
class ReservationRow:
    id: UUID
    batch_id: UUID
    material: str
    container_id: UUID
    quantity: Decimal
    reserved_by: UUID
    reserved_at: datetime
    released_at: datetime | None


@dataclass(frozen=True)
class Candidate:
    """A container a batch could take a material from: its lot's material, status and expiry."""

    container: ContainerRow
    lot_number: str
    material_id: UUID
    status: str
    expiry_date: date | None


async def container(container_id: UUID, *, lock: bool = False) -> ContainerRow:
    """The container (row-locked until the unit of work ends with ``lock``)."""
    query = LotContainer.select(*columns(LotContainer, ContainerRow)).where(
        LotContainer.id == container_id
    )
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    if raw is None:
        raise NotFound("No such container.")
    return typed(ContainerRow, raw)


async def containers_by_id(ids: list[UUID]) -> dict[UUID, ContainerRow]:
    if not ids:
        return {}
    rows = await LotContainer.select(*columns(LotContainer, ContainerRow)).where(
        LotContainer.id.is_in(ids)
    )
    return {r["id"]: typed(ContainerRow, r) for r in rows}


async def material_ids_for(slugs: list[str]) -> dict[str, set[UUID]]:
    """The tenant's materials each bill-of-materials material (a HUB slug) may be taken from:
    the material of the installed or forked library item of that slug, or the tenant's own
    material whose code is the slug."""
    if not slugs:
        return {}
    found: dict[str, set[UUID]] = {s: set() for s in slugs}
    items = await LibraryItem.select(LibraryItem.id, LibraryItem.slug).where(
        (LibraryItem.kind == "material") & LibraryItem.slug.is_in(slugs)
    )
    slug_of = {r["id"]: r["slug"] for r in items}
    condition: Any = Material.code.is_in(slugs)
    if slug_of:
        condition = condition | Material.library_item_id.is_in(list(slug_of))
    query = Material.select(Material.id, Material.code, Material.library_item_id).where(condition)
    for row in await query:
        if row["code"] in found:
            found[row["code"]].add(row["id"])
        if row["library_item_id"] in slug_of:
            found[slug_of[row["library_item_id"]]].add(row["id"])
    return found


async def candidates(material_ids: list[UUID], on: date, *, lock: bool) -> list[Candidate]:
    """Containers with something left of released lots of these materials, unexpired on
    ``on``, first to expire first (FEFO); locked in id order with ``lock`` (the same order
    for every batch, so two reserving at once wait rather than deadlock)."""
    if not material_ids:
        return []
    lots = await Lot.select(Lot.id, Lot.lot_number, Lot.material_id, Lot.expiry_date).where(
        Lot.material_id.is_in(material_ids)
        & (Lot.status == "released")
        & (Lot.expiry_date.is_null() | (Lot.expiry_date >= on))
    )
    if not lots:
        return []
    by_id = {r["id"]: r for r in lots}
    query = (
        LotContainer.select(*columns(LotContainer, ContainerRow))
        .where(LotContainer.lot_id.is_in(list(by_id)) & (LotContainer.remaining > 0))
        .order_by(LotContainer.id)
    )
    if lock:
        query = query.lock_rows("UPDATE")
    found = []
    for raw in await query:
        row = typed(ContainerRow, raw)
        lot = by_id[row.lot_id]
        found.append(
            Candidate(row, lot["lot_number"], lot["material_id"], "released", lot["expiry_date"])
        )
    far = date.max
    found.sort(key=lambda c: (c.expiry_date or far, c.lot_number, c.container.number))
    return found


async def reserved_by_others(container_ids: list[UUID], batch_id: UUID) -> dict[UUID, Decimal]:
    """What active reservations of other batches keep of each container (container units)."""
    if not container_ids:
        return {}
    rows = await BatchReservation.select(
        BatchReservation.container_id, BatchReservation.quantity
    ).where(
        BatchReservation.container_id.is_in(container_ids)
        & BatchReservation.released_at.is_null()
        & (BatchReservation.batch_id != batch_id)
    )
    found: dict[UUID, Decimal] = {}
    for r in rows:
        found[r["container_id"]] = found.get(r["container_id"], Decimal(0)) + r["quantity"]
    return found


async def reservations(batch_id: UUID, *, active: bool = True) -> list[ReservationRow]:
    query = BatchReservation.select(*columns(BatchReservation, ReservationRow)).where(
        BatchReservation.batch_id == batch_id
    )
    if active:
        query = query.where(BatchReservation.released_at.is_null())
    rows = await query.order_by(BatchReservation.reserved_at).order_by(BatchReservation.id)
    return [typed(ReservationRow, r) for r in rows]


async def insert_reservation(
    tenant_id: UUID, batch_id: UUID, material: str, container_id: UUID, quantity: Decimal, by: UUID
) -> None:
    await BatchReservation.insert(
        BatchReservation(
            tenant_id=tenant_id,
            batch_id=batch_id,
            material=material,
            container_id=container_id,
            quantity=quantity,
            reserved_by=by,
            reserved_at=database_now(),
        )
    )


async def use_reservation(reservation: ReservationRow, taken: Decimal) -> None:
    """What a consumption takes off the batch's own reservation of the container; released
    once nothing of it is left."""
    left = max(reservation.quantity - taken, Decimal(0))
    values: dict[object, object] = {BatchReservation.quantity: left}
    if left == 0:
        values[BatchReservation.released_at] = database_now()
    await BatchReservation.update(values).where(BatchReservation.id == reservation.id)  # type: ignore[arg-type]


async def release_reservations(batch_id: UUID) -> int:
    """Release every active reservation of the batch; how many there were."""
    rows = await (
        BatchReservation.update({BatchReservation.released_at: database_now()})
        .where((BatchReservation.batch_id == batch_id) & BatchReservation.released_at.is_null())
        .returning(BatchReservation.id)
    )
    return len(rows)


async def insert_consumption(tenant_id: UUID, new: NewConsumption, by: UUID) -> UUID:
    """The consumption, the container's remaining quantity less what it took, and the
    genealogy link from the lot to the batch."""
    c = new.container
    rows = await BatchConsumption.insert(
        BatchConsumption(
            tenant_id=tenant_id,
            batch_id=new.batch_id,
            step=new.step,
            material=new.material,
            container_id=c.id,
            lot_id=c.lot_id,
            material_id=new.material_id,
            quantity=new.quantity,
            unit=new.unit,
            container_quantity=new.container_quantity,
            container_unit=c.unit,
            consumed_by=by,
            consumed_at=database_now(),
            idempotency_key=new.idempotency_key,
        )
    ).returning(BatchConsumption.id)
    await LotContainer.update({LotContainer.remaining: c.remaining - new.container_quantity}).where(
        LotContainer.id == c.id
    )
    await insert_link(
        tenant_id, c.lot_id, "lot", new.batch_id, "batch", new.container_quantity, c.unit
    )
    found: UUID = rows[0]["id"]
    return found


async def insert_link(
    tenant_id: UUID,
    parent_id: UUID,
    parent_kind: str,
    child_id: UUID,
    child_kind: str,
    quantity: Decimal | None,
    unit: str | None,
) -> None:
    await GenealogyLink.insert(
        GenealogyLink(
            tenant_id=tenant_id,
            parent_id=parent_id,
            parent_kind=parent_kind,
            child_id=child_id,
            child_kind=child_kind,
            quantity=quantity,
            unit=unit,
            linked_at=database_now(),
        )
    )


async def consumption_by_key(batch_id: UUID, key: str) -> ConsumptionRow | None:
    raw = await (
        BatchConsumption.select(*columns(BatchConsumption, ConsumptionRow))
        .where((BatchConsumption.batch_id == batch_id) & (BatchConsumption.idempotency_key == key))
        .first()
    )
    return typed(ConsumptionRow, raw) if raw is not None else None


async def consumptions(batch_id: UUID) -> list[ConsumptionRow]:
    rows = (
        await BatchConsumption.select(*columns(BatchConsumption, ConsumptionRow))
        .where(BatchConsumption.batch_id == batch_id)
        .order_by(BatchConsumption.consumed_at)
        .order_by(BatchConsumption.id)
    )
    return [typed(ConsumptionRow, r) for r in rows]


async def lots_left(lot_id: UUID) -> Decimal:
    """What is left in all of the lot's containers, in their units summed as numbers (zero
    only when every container is empty)."""
    rows = await LotContainer.select(LotContainer.remaining).where(LotContainer.lot_id == lot_id)
    return sum((r["remaining"] for r in rows), Decimal(0))


async def outputs(batch_id: UUID) -> list[UUID]:
    """The lots the batch produced, first made first."""
    rows = (
        await Lot.select(Lot.id)
        .where(Lot.origin_batch_id == batch_id)
        .order_by(Lot.received_at)
        .order_by(Lot.id)
    )
    return [r["id"] for r in rows]
