"""Receiving a delivery: a lot of a material in quarantine, split into containers (put at a
location when given), from an approved supplier, with its certificate of analysis as a file
(stored first, content-addressed; its row and the lot's link commit with the lot), and a
CoA attached or replaced later while the lot is in quarantine or on hold."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal, Inexact, localcontext
from uuid import UUID

import asyncpg

from opencdmo import quantities, units
from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.tx import tenant_transaction, unit_of_work
from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.fields import check_reason, check_text
from opencdmo.inventory import coa as coas
from opencdmo.inventory import placing, queries
from opencdmo.inventory.queries import (
    Identity,
    LotRow,
    MaterialRow,
    NewLot,
)
from opencdmo.inventory.service import (
    REASON_MAX,
    LotView,
    actor_of,
    bounded,
    coa_view,
    get_lot,
    one_line,
    status_from,
    today,
    unit_code,
)
from opencdmo.scope import TenantContext
from opencdmo.storage import service as storage
from opencdmo.storage.blobs import Blob
from opencdmo.storage.queries import StoredFileRow
from opencdmo.storage.uploads import Upload

MAX_CONTAINERS = 1000


@dataclass(frozen=True)
class ContainerIn:
    """One container's quantity, in its own unit (the lot's when not given)."""

    quantity: Decimal
    unit: str | None = None


def split_into(
    total: Decimal, unit: str, containers: int | list[ContainerIn] | None
) -> list[tuple[Decimal, str]]:
    """The containers of a receipt: one with everything, N equal ones, or the quantities
    given (which must add up to the total, in the lot's unit)."""
    if containers is None:
        return [(total, unit)]
    if isinstance(containers, int):
        if not 1 <= containers <= MAX_CONTAINERS:
            raise ValidationFailed(
                f"A lot is split into 1 to {MAX_CONTAINERS} containers.",
                details={"field": "containers"},
            )
        with localcontext() as context:
            context.prec = 34
            context.clear_flags()
            each = (total / containers).normalize()
            exact = not context.flags[Inexact]
        if not exact:
            raise ValidationFailed(
                f"{units.quantity(total, unit)} does not split into {containers} equal "
                "containers; give each container's quantity instead.",
                details={"field": "containers"},
            )
        return [(each, unit)] * containers
    if not 1 <= len(containers) <= MAX_CONTAINERS:
        raise ValidationFailed(
            f"A lot is split into 1 to {MAX_CONTAINERS} containers.",
            details={"field": "containers"},
        )
    found: list[tuple[Decimal, str]] = []
    added = Decimal(0)
    for container in containers:
        code = unit_code(container.unit or unit, "containers")
        amount = Decimal(quantities.on_hand(container.quantity, code).magnitude)
        amount = bounded(amount.normalize(), code, "containers")
        added += quantities.convert(amount, code, unit)
        found.append((amount, code))
    if quantities.convert(added, unit, unit) != quantities.convert(total, unit, unit):
        raise ValidationFailed(
            f"The containers add up to {units.quantity(added, unit)}, not the "
            f"{units.quantity(total, unit)} received.",
            details={"field": "containers"},
        )
    return found


def _identity(given: Identity | None) -> Identity:
    """The identifiers as given, each one line (empty ones dropped)."""
    if given is None:
        return Identity()
    values = {}
    for name, label in (
        ("donor_id", "The donor id"),
        ("coi_label", "The COI label"),
        ("apheresis_id", "The apheresis id"),
    ):
        value = getattr(given, name)
        values[name] = one_line(value, name, label, 120) if value and value.strip() else None
    return Identity(**values)


async def insert_lot(ctx: TenantContext, new: NewLot, material: MaterialRow) -> UUID:
    """The lot's row; a 409 when the material has a lot of that number (checked before, and
    here for one received by someone else a moment ago)."""
    try:
        return await queries.insert_lot(ctx.tenant_id, new, actor_of(ctx))
    except asyncpg.UniqueViolationError:
        raise Conflict(f"{material.code} has a lot {new.lot_number} already.") from None


def measures_same(amount: Decimal, unit: str, material: MaterialRow) -> None:
    """A 422 unless ``unit`` measures what the material's default unit does."""
    try:
        quantities.convert(amount, unit, material.default_unit)
    except ValidationFailed as exc:
        raise ValidationFailed(
            f"{exc.message} (the unit of {material.code})", details={"field": "unit"}
        ) from exc


@dataclass(frozen=True)
class Receipt:
    material_id: UUID
    lot_number: str
    supplier: str
    supplier_lot: str
    quantity: Decimal
    unit: str
    expiry_date: date | None = None
    containers: int | list[ContainerIn] | None = None
    coa_note: str | None = None
    identity: Identity | None = None
    location_id: UUID | None = None


def _check_supplier(material: MaterialRow, supplier: str) -> None:
    """A 422 naming the approved suppliers when the material lists some and ``supplier`` is
    not one of them (case and spacing aside)."""

    def plain(name: str) -> str:
        return " ".join(name.split()).casefold()

    approved = material.approved_suppliers
    if approved and plain(supplier) not in {plain(s) for s in approved}:
        raise ValidationFailed(
            f"{supplier} is not an approved supplier of {material.code}; approved: "
            f"{', '.join(approved)}.",
            details={"field": "supplier", "approved": list(approved)},
        )


async def receive(ctx: TenantContext, receipt: Receipt, coa_file: Upload | None = None) -> LotRow:
    """Receive a delivery: a lot of the material in quarantine, split into containers (put
    at ``location_id`` when given). Its unit must measure what the material's default unit
    measures (L for a material in mL), and its supplier must be one the material approves
    (when it lists any). With ``coa_file``, its certificate of analysis: the file is stored
    first, its row and the lot's link commit with the lot."""
    lot_number = one_line(receipt.lot_number, "lot_number", "The lot number", 120)
    supplier = one_line(receipt.supplier, "supplier", "The supplier")
    supplier_lot = one_line(receipt.supplier_lot, "supplier_lot", "The supplier lot", 120)
    unit = unit_code(receipt.unit, "unit")
    try:
        total = Decimal(quantities.on_hand(receipt.quantity, unit).magnitude)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, details={"field": "quantity"}) from exc
    total = bounded(total, unit, "quantity")
    coa = check_text(receipt.coa_note or "", "coa_note", "The CoA note", limit=4000).strip()
    split = split_into(total, unit, receipt.containers)
    identity = _identity(receipt.identity)
    blob = await _stored_first(ctx, coa_file)
    async with unit_of_work(ctx):
        await authorize(ctx, "materials", "manage")
        material = await queries.material(receipt.material_id)
        measures_same(total, unit, material)
        if identity and material.material_type != "starting_material":
            raise ValidationFailed(
                f"{material.code} is not a starting material: a lot of it has no chain of "
                "identity.",
                details={"field": "chain_of_identity"},
            )
        _check_supplier(material, supplier)
        if await queries.lot_exists(material.id, lot_number):
            raise Conflict(f"{material.code} has a lot {lot_number} already.")
        new = NewLot(
            material.id,
            lot_number,
            supplier,
            supplier_lot,
            total,
            unit,
            receipt.expiry_date,
            coa or None,
            identity,
        )
        lot_id = await insert_lot(ctx, new, material)
        container_ids = await queries.insert_containers(ctx.tenant_id, lot_id, split)
        place = None
        if receipt.location_id is not None:
            put = await placing.put(
                ctx.tenant_id, actor_of(ctx), receipt.location_id, container_ids, "received"
            )
            place = put.place
        await queries.insert_change(
            ctx.tenant_id, lot_id, None, "quarantine", "received", actor_of(ctx), None
        )
        attached = await _attach(ctx, lot_id, blob, coa_file)
        await audit.record(
            ctx,
            "lot.received",
            "lot",
            lot_id,
            new={
                "lot_number": lot_number,
                "material_id": str(material.id),
                "material": material.code,
                "supplier": supplier,
                "supplier_lot": supplier_lot,
                "quantity": str(total),
                "unit": unit,
                "expiry_date": receipt.expiry_date.isoformat() if receipt.expiry_date else None,
                "containers": [{"quantity": str(q), "unit": u} for q, u in split],
                "status": "quarantine",
                **({"chain_of_identity": asdict(identity)} if identity else {}),
                "location_id": str(receipt.location_id) if receipt.location_id else None,
                "location": place.path if place else None,
                "coa": coas.audit_values(attached) if attached else None,
            },
        )
        return await queries.lot(lot_id)


async def _stored_first(ctx: TenantContext, coa: Upload | None) -> Blob | None:
    """A CoA's bytes in the blob store before the unit of work (slow, and harmless when the
    command then fails: an unreferenced blob), once the caller may attach one."""
    if coa is None:
        return None
    coas.check_kind(coa)
    async with tenant_transaction(ctx):
        await authorize(ctx, "materials", "manage")
    return await storage.put(ctx, coa)


async def _attach(
    ctx: TenantContext, lot_id: UUID, blob: Blob | None, coa: Upload | None
) -> StoredFileRow | None:
    """The stored file's row and the lot's link to it, in the open unit of work."""
    if blob is None or coa is None:
        return None
    stored = await storage.record(ctx, blob, coa)
    await queries.set_coa(lot_id, stored.id)
    return stored


# --- certificate of analysis ------------------------------------------------------------------


async def attach_coa(
    ctx: TenantContext,
    lot_id: UUID,
    upload: Upload,
    reason: str = "",
    replaces: UUID | None = None,
) -> LotView:
    """Attach a lot's certificate of analysis (one arriving after the goods), or replace the
    one it has (``replaces``: the file the person saw; a reason is required), while the lot is
    in quarantine or on hold. The file is stored first; its row, the lot's link and the audit
    event with its SHA-256 commit together."""
    why = check_reason(reason, limit=REASON_MAX, required=False)  # required to replace one
    coas.check_kind(upload)
    async with tenant_transaction(ctx):
        await authorize(ctx, "materials", "manage")
        _check_coa(ctx, await queries.lot(lot_id), why, replaces)
    blob = await storage.put(ctx, upload)
    async with unit_of_work(ctx):
        await authorize(ctx, "materials", "manage")
        row = await queries.lot(lot_id, lock=True)
        _check_coa(ctx, row, why, replaces)
        before = await coa_view(ctx, row)
        stored = await _attach(ctx, lot_id, blob, upload)
        assert stored is not None
        material = await queries.material(row.material_id)
        await audit.record(
            ctx,
            "lot.coa_replaced" if before else "lot.coa_attached",
            "lot",
            lot_id,
            old={"coa": coas.audit_values(before.file)} if before else None,
            new={
                "lot_number": row.lot_number,
                "material": material.code,
                "coa": coas.audit_values(stored),
            },
            reason=why or None,
        )
    return await get_lot(ctx, lot_id)


def _check_coa(ctx: TenantContext, row: LotRow, reason: str, replaces: UUID | None) -> None:
    status_from(row, today(ctx), coas.OPEN, "given a certificate of analysis")
    coas.check_replacement(row, reason, replaces)
