"""The inventory's commands and reads: the material master, lots and their containers, QC's
release or rejection with an e-signature, holding and unholding a lot (receiving one and its
certificate of analysis: ``inventory.receipt``).

Every command is one unit of work with its audit event, the lot row-locked. A lot whose
expiry date has passed (in the tenant's zone) reads as expired and is never usable: it is
not released, and it is shown as expired whatever its stored status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg

from opencdmo import quantities, units
from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.tx import read_view, tenant_transaction, unit_of_work
from opencdmo.errors import Conflict, Forbidden, NotFound, ValidationFailed
from opencdmo.fields import check_name, check_reason, check_text
from opencdmo.inventory import coa as coas
from opencdmo.inventory import location_queries, queries
from opencdmo.inventory.coa import CoaView
from opencdmo.inventory.location_queries import Place
from opencdmo.inventory.queries import (
    ContainerRow,
    LotRow,
    MaterialRow,
    NewMaterial,
    StatusChangeRow,
)
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.signatures import service as signatures
from opencdmo.signatures.service import SignedRecord
from opencdmo.storage import service as storage
from opencdmo.storage.queries import StoredFileRow
from opencdmo.tenancy import service as tenancy

MATERIAL_TYPES = (
    "raw_material",
    "consumable",
    "reagent",
    "starting_material",
    "intermediate",
    "product",
)
STORED = ("quarantine", "released", "rejected", "on_hold", "consumed")
STATUSES = (*STORED, "expired")
# Stored statuses a passed expiry date overrides (a rejected or consumed lot stays so).
EXPIRABLE = queries.EXPIRABLE
STATUS_NAMES = {
    "quarantine": "in quarantine",
    "released": "released",
    "rejected": "rejected",
    "on_hold": "on hold",
    "consumed": "consumed",
    "expired": "expired",
}
REASON_MAX = 2000


def today(ctx: TenantContext) -> date:
    """Today's date in the tenant's zone (UTC when it has none)."""
    try:
        zone = ZoneInfo(ctx.time_zone or "UTC")
    except (KeyError, ValueError):  # pragma: no cover - zones are checked when set
        zone = ZoneInfo("UTC")
    return datetime.now(zone).date()


def shown_status(row: LotRow, on: date) -> str:
    """The lot's status as people see it: ``expired`` once its expiry date has passed."""
    return status_on(row.status, row.expiry_date, on)


def status_on(status: str, expiry_date: date | None, on: date) -> str:
    """A stored status as shown on ``on``: ``expired`` once the expiry date has passed."""
    if status in EXPIRABLE and expiry_date is not None and expiry_date < on:
        return "expired"
    return status


def actor_of(ctx: TenantContext) -> UUID:
    if ctx.user_id is None:
        raise Forbidden("Only a signed-in person handles materials.")
    return ctx.user_id


def a_reason(value: str) -> str:
    return check_reason(value, limit=REASON_MAX)


def one_line(value: str, field: str, label: str, limit: int = 200) -> str:
    text = check_name(value, field, label).strip()
    if len(text) > limit:
        raise ValidationFailed(f"{label} has at most {limit} characters.", details={"field": field})
    return text


def unit_code(code: str, field: str) -> str:
    try:
        quantities.unit(code)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, details={"field": field}) from exc
    return code


def bounded(amount: Decimal, unit: str, field: str) -> Decimal:
    """A received amount a person could mean: more than nothing, at most 10¹⁵, with at most
    15 decimal places."""
    if amount <= 0:
        raise ValidationFailed(
            "A received quantity is more than nothing.", details={"field": field}
        )
    exponent = amount.as_tuple().exponent
    if amount > 10**15 or (isinstance(exponent, int) and exponent < -15):
        raise ValidationFailed(
            f"{units.quantity(amount, unit)} is not a quantity this application keeps "
            "(at most 10^15, with at most 15 decimal places).",
            details={"field": field},
        )
    return amount


# --- materials --------------------------------------------------------------------------------


async def create_material(
    ctx: TenantContext,
    code: str,
    name: str,
    material_type: str,
    default_unit: str,
    storage_condition: str = "",
    shelf_life_days: int | None = None,
    library_item_id: UUID | None = None,
) -> MaterialRow:
    """A material of the tenant's master: its code is unique in the tenant."""
    code = one_line(code, "code", "The code", 64)
    name = one_line(name, "name", "The name")
    if material_type not in MATERIAL_TYPES:
        raise ValidationFailed(
            f"material_type: must be one of {', '.join(MATERIAL_TYPES)}.",
            details={"field": "material_type"},
        )
    default_unit = unit_code(default_unit, "default_unit")
    storage = check_text(storage_condition, "storage_condition", "The storage condition").strip()
    if len(storage) > 200:
        raise ValidationFailed(
            "The storage condition has at most 200 characters.",
            details={"field": "storage_condition"},
        )
    if shelf_life_days is not None and not 1 <= shelf_life_days <= 36500:
        raise ValidationFailed(
            "The shelf life is between 1 and 36500 days.", details={"field": "shelf_life_days"}
        )
    async with unit_of_work(ctx):
        await authorize(ctx, "materials", "manage")
        if library_item_id is not None and not await queries.library_item_exists(library_item_id):
            raise ValidationFailed(
                "No such item in the tenant's library.", details={"field": "library_item_id"}
            )
        if await queries.material_by_code(code) is not None:
            raise Conflict(f"A material with the code {code} exists already.")
        new = NewMaterial(
            code, name, material_type, storage, shelf_life_days, default_unit, library_item_id
        )
        try:
            material_id = await queries.insert_material(ctx.tenant_id, new, actor_of(ctx))
        except asyncpg.UniqueViolationError:  # added by someone else a moment ago
            raise Conflict(f"A material with the code {code} exists already.") from None
        await audit.record(
            ctx,
            "material.created",
            "material",
            material_id,
            new={
                "code": code,
                "name": name,
                "material_type": material_type,
                "default_unit": default_unit,
                "storage_condition": storage,
                "shelf_life_days": shelf_life_days,
                "library_item_id": str(library_item_id) if library_item_id else None,
            },
        )
        return await queries.material(material_id)


async def list_materials(ctx: TenantContext) -> list[MaterialRow]:
    async with read_view(ctx):
        await authorize(ctx, "materials", "read")
        return await queries.materials()


async def get_material(ctx: TenantContext, material_id: UUID) -> MaterialRow:
    async with read_view(ctx):
        await authorize(ctx, "materials", "read")
        return await queries.material(material_id)


# --- reads ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LotView:
    lot: LotRow
    material: MaterialRow
    status: str  # as shown: expired once the expiry date has passed
    containers: list[ContainerRow]
    history: list[StatusChangeRow]
    places: dict[UUID, Place]  # where the containers' locations are
    coa: CoaView | None = None

    @property
    def coa_open(self) -> bool:
        """Whether a certificate of analysis may be attached or replaced now."""
        return self.status in coas.OPEN


@dataclass(frozen=True)
class LotSummary:
    lot: LotRow
    material_code: str
    status: str


async def list_lots(
    ctx: TenantContext, status: str | None = None, limit: int = 50, offset: int = 0
) -> list[LotSummary]:
    """Lots with the status as shown (``expired`` included), latest received first."""
    if status is not None and status not in STATUSES:
        raise ValidationFailed(
            f"status: must be one of {', '.join(STATUSES)}.", details={"field": "status"}
        )
    on = today(ctx)
    async with read_view(ctx):
        await authorize(ctx, "materials", "read")
        found = await queries.lots(status, on, limit, offset)
        codes = await queries.material_codes(list({r.material_id for r in found}))
    return [LotSummary(r, codes.get(r.material_id, ""), shown_status(r, on)) for r in found]


async def get_lot(ctx: TenantContext, lot_id: UUID) -> LotView:
    async with read_view(ctx):
        await authorize(ctx, "materials", "read")
        row = await queries.lot(lot_id)
        containers = await queries.containers(lot_id)
        return LotView(
            row,
            await queries.material(row.material_id),
            shown_status(row, today(ctx)),
            containers,
            await queries.history(lot_id),
            await location_queries.places([c.location_id for c in containers]),
            await coa_view(ctx, row),
        )


async def coa_view(ctx: TenantContext, row: LotRow) -> CoaView | None:
    if row.coa_file_id is None:
        return None
    stored = (await storage.stored_files(ctx, [row.coa_file_id]))[row.coa_file_id]
    names = await tenancy.people_names(ctx, [stored.uploaded_by])
    return CoaView(stored, names.get(stored.uploaded_by, "a former member"))


async def coa_file(ctx: TenantContext, lot_id: UUID) -> tuple[StoredFileRow, bytes]:
    """The lot's certificate of analysis and its bytes, checked against their SHA-256; a lot
    without one is not found either."""
    async with tenant_transaction(ctx):
        await authorize(ctx, "materials", "read")
        row = await queries.lot(lot_id)
        if row.coa_file_id is None:
            raise NotFound(f"Lot {row.lot_number} has no certificate of analysis.")
    return await storage.read(ctx, row.coa_file_id)


# --- status changes ---------------------------------------------------------------------------


def status_from(row: LotRow, on: date, wanted: tuple[str, ...], doing: str) -> str:
    """The lot's stored status when it is one of ``wanted`` and the lot has not expired;
    a 409 naming its state otherwise."""
    shown = shown_status(row, on)
    if shown not in wanted:
        raise Conflict(
            f"Lot {row.lot_number} is {STATUS_NAMES[shown]}: only a lot "
            + " or ".join(STATUS_NAMES[w] for w in wanted)
            + f" can be {doing}.",
            details={"status": shown},
        )
    return row.status


DECISIONS = {"release": ("released", "released for use"), "reject": ("rejected", "rejected")}


def _lot_record(row: LotRow, material: MaterialRow, to_status: str) -> SignedRecord:
    content: dict[str, Any] = {
        "lot": str(row.id),
        "lot_number": row.lot_number,
        "material": material.code,
        "supplier": row.supplier,
        "supplier_lot": row.supplier_lot,
        "quantity": str(row.quantity),
        "unit": row.unit,
        "expiry_date": row.expiry_date.isoformat() if row.expiry_date else None,
        "status": to_status,
    }
    return SignedRecord("lot", str(row.id), "1", None, content)


def _check_decision(ctx: TenantContext, row: LotRow, decision: str, on: date) -> None:
    to_status = DECISIONS[decision][0]
    status_from(row, on, ("quarantine",), to_status)
    if decision == "release" and row.received_by == ctx.user_id:
        raise Forbidden("Separation of duties: you received this lot; another person releases it.")


async def decide(
    settings: Settings,
    ctx: TenantContext,
    lot_id: UUID,
    decision: str,
    password: str,
    reason: str,
) -> LotView:
    """QC releases (``release``: signed 'released for use') or rejects (``reject``: signed
    'rejected') a lot in quarantine. Whoever received the lot may not release it."""
    if decision not in DECISIONS:
        raise ValidationFailed(
            "decision: must be release or reject.", details={"field": "decision"}
        )
    to_status, meaning = DECISIONS[decision]
    async with tenant_transaction(ctx):
        await authorize(ctx, "materials", "release")
        row = await queries.lot(lot_id)
        _check_decision(ctx, row, decision, today(ctx))
    signing = await signatures.prepare(settings, ctx, meaning, reason, password)
    async with unit_of_work(ctx):
        row = await queries.lot(lot_id, lock=True)
        _check_decision(ctx, row, decision, today(ctx))
        material = await queries.material(row.material_id)
        signature = await signatures.apply(ctx, signing, _lot_record(row, material, to_status))
        await queries.set_status(lot_id, to_status)
        await queries.insert_change(
            ctx.tenant_id,
            lot_id,
            row.status,
            to_status,
            signing.reason,
            actor_of(ctx),
            signature.id,
        )
        await audit.record(
            ctx,
            f"lot.{to_status}",
            "lot",
            lot_id,
            old={"status": row.status},
            new={
                "lot_number": row.lot_number,
                "material": material.code,
                "status": to_status,
                "signature_id": str(signature.id),
            },
            reason=signing.reason,
        )
    return await get_lot(ctx, lot_id)


async def hold(ctx: TenantContext, lot_id: UUID, reason: str) -> LotView:
    """Put a lot in quarantine or released on hold, saying why."""
    reason = a_reason(reason)
    async with unit_of_work(ctx):
        await authorize(ctx, "materials", "manage")
        row = await queries.lot(lot_id, lock=True)
        before = status_from(row, today(ctx), ("quarantine", "released"), "put on hold")
        await _change(ctx, row, before, "on_hold", reason, "lot.held")
    return await get_lot(ctx, lot_id)


async def unhold(ctx: TenantContext, lot_id: UUID, reason: str) -> LotView:
    """Take a lot off hold, back to the status it had before, saying why."""
    reason = a_reason(reason)
    async with unit_of_work(ctx):
        await authorize(ctx, "materials", "manage")
        row = await queries.lot(lot_id, lock=True)
        status_from(row, today(ctx), ("on_hold",), "taken off hold")
        held = [c for c in await queries.history(lot_id) if c.to_status == "on_hold"]
        back = (held[-1].from_status if held else None) or "quarantine"
        await _change(ctx, row, "on_hold", back, reason, "lot.unheld")
    return await get_lot(ctx, lot_id)


async def _change(
    ctx: TenantContext, row: LotRow, before: str, after: str, reason: str, action: str
) -> None:
    await queries.set_status(row.id, after)
    await queries.insert_change(ctx.tenant_id, row.id, before, after, reason, actor_of(ctx), None)
    material = await queries.material(row.material_id)
    await audit.record(
        ctx,
        action,
        "lot",
        row.id,
        old={"status": before},
        new={"lot_number": row.lot_number, "material": material.code, "status": after},
        reason=reason,
    )
