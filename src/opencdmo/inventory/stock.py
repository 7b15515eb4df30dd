"""Stock: a material's reorder level and its approved suppliers (commands), what is on hand,
and the materials handler's watch lists (containers to label, lots expiring soon, materials
below their reorder level).

Approved suppliers are a ``text[]`` on the material, not a table of their own: the list is
one property of the material, set whole by one command whose audit event keeps the list
before and after; there is no supplier master yet for rows to point at (when there is, a
table with its foreign key replaces the column).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID

from opencdmo import units
from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.tx import read_view, unit_of_work
from opencdmo.errors import ValidationFailed
from opencdmo.fields import check_name
from opencdmo.inventory import location_queries as lq
from opencdmo.inventory import queries
from opencdmo.inventory.locations import Stored, shown_containers
from opencdmo.inventory.queries import LotRow, MaterialRow
from opencdmo.inventory.service import LotSummary, shown_status, today
from opencdmo.scope import TenantContext

SUPPLIERS_MAX = 100
SUPPLIER_MAX = 200
EXPIRING_DAYS = 30


def _plain(name: str) -> str:
    return " ".join(name.split()).casefold()


def _level(level: Decimal | None, unit: str) -> Decimal | None:
    if level is None:
        return None
    if not level.is_finite() or level < 0:
        raise ValidationFailed(
            "The reorder level is a quantity of nothing or more.",
            details={"field": "reorder_level"},
        )
    exponent = level.as_tuple().exponent
    if level > 10**15 or (isinstance(exponent, int) and exponent < -15):
        raise ValidationFailed(
            f"{units.quantity(level, unit)} is not a quantity this application keeps "
            "(at most 10^15, with at most 15 decimal places).",
            details={"field": "reorder_level"},
        )
    return Decimal(format(level.normalize(), "f"))  # 3000, not 3E+3


async def set_reorder_level(
    ctx: TenantContext, material_id: UUID, level: Decimal | None
) -> MaterialRow:
    """The material's reorder level in its default unit (none: no reorder level); below it,
    the material waits in the materials handler's queue."""
    async with unit_of_work(ctx):
        await authorize(ctx, "materials", "manage")
        material = await queries.lock_material(material_id)
        level = _level(level, material.default_unit)
        await queries.set_reorder_level(material.id, level)
        await audit.record(
            ctx,
            "material.reorder_level_set",
            "material",
            material.id,
            old={"reorder_level": _text(material.reorder_level)},
            new={
                "code": material.code,
                "reorder_level": _text(level),
                "unit": material.default_unit,
            },
        )
        return await queries.material(material.id)


def _text(level: Decimal | None) -> str | None:
    return None if level is None else str(level)


def _suppliers(names: list[str]) -> list[str]:
    if len(names) > SUPPLIERS_MAX:
        raise ValidationFailed(
            f"A material has at most {SUPPLIERS_MAX} approved suppliers.",
            details={"field": "suppliers"},
        )
    found: dict[str, str] = {}
    for name in names:
        text = " ".join(check_name(name, "suppliers", "A supplier").split())
        if len(text) > SUPPLIER_MAX:
            raise ValidationFailed(
                f"A supplier's name has at most {SUPPLIER_MAX} characters.",
                details={"field": "suppliers"},
            )
        found.setdefault(_plain(text), text)
    return list(found.values())


async def set_approved_suppliers(
    ctx: TenantContext, material_id: UUID, suppliers: list[str]
) -> MaterialRow:
    """The suppliers a receipt of the material may come from (none: any supplier)."""
    names = _suppliers(suppliers)
    async with unit_of_work(ctx):
        await authorize(ctx, "materials", "manage")
        material = await queries.lock_material(material_id)
        await queries.set_approved_suppliers(material.id, names)
        await audit.record(
            ctx,
            "material.suppliers_set",
            "material",
            material.id,
            old={"approved_suppliers": material.approved_suppliers},
            new={"code": material.code, "approved_suppliers": names},
        )
        return await queries.material(material.id)


# --- reads ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaterialStock:
    material: MaterialRow
    on_hand: Decimal  # in the material's default unit

    @property
    def below(self) -> bool:
        level = self.material.reorder_level
        return level is not None and self.on_hand < level


async def stock_of(ctx: TenantContext, materials: list[MaterialRow]) -> list[MaterialStock]:
    """Each material with its quantity on hand (in the read view open in the context)."""
    async with read_view(ctx):
        found = await queries.on_hand([m.id for m in materials], today(ctx))
    return [MaterialStock(m, found.get(m.id, Decimal(0))) for m in materials]


@dataclass(frozen=True)
class MaterialView:
    stock: MaterialStock
    lots: list[LotSummary]


async def material_view(ctx: TenantContext, material_id: UUID) -> MaterialView:
    on = today(ctx)
    async with read_view(ctx):
        await authorize(ctx, "materials", "read")
        material = await queries.material(material_id)
        (stock,) = await stock_of(ctx, [material])
        lots = await queries.lots_of_material(material.id, 100)
    return MaterialView(stock, [LotSummary(r, material.code, shown_status(r, on)) for r in lots])


async def to_label(ctx: TenantContext, limit: int) -> tuple[list[Stored], int]:
    """Containers whose label has not been printed yet (of lots not consumed), oldest
    receipt first, and how many there are."""
    async with read_view(ctx):
        await authorize(ctx, "materials", "read")
        rows, total = await lq.to_label(limit)
        return shown_containers(rows, await lq.places([r.location_id for r in rows]), ctx), total


async def expiring(
    ctx: TenantContext, limit: int, days: int = EXPIRING_DAYS
) -> tuple[list[LotSummary], int]:
    """Lots in quarantine, released or on hold that expire within ``days`` (not expired yet),
    soonest first, and how many there are."""
    on = today(ctx)
    async with read_view(ctx):
        await authorize(ctx, "materials", "read")
        rows, total = await queries.expiring(on, on + timedelta(days=days), limit)
        codes = await queries.material_codes(list({r.material_id for r in rows}))
    return [_summary(r, codes, on) for r in rows], total


def _summary(row: LotRow, codes: dict[UUID, str], on: date) -> LotSummary:
    return LotSummary(row, codes.get(row.material_id, ""), shown_status(row, on))


async def below_reorder(ctx: TenantContext, limit: int) -> tuple[list[MaterialStock], int]:
    """Materials whose quantity on hand is below their reorder level, by code."""
    async with read_view(ctx):
        await authorize(ctx, "materials", "read")
        found = [
            s for s in await stock_of(ctx, await queries.materials_with_reorder_level()) if s.below
        ]
    return found[:limit], len(found)
