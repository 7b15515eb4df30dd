"""Equipment units, their logbooks, the units bound to batch steps and the HUB classes they
are of: typed rows, read and written in the transaction open in the context (none opens or
commits one of its own; row-level security keeps every query inside the tenant)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from piccolo.columns.combination import WhereRaw

from opencdmo.db.clock import database_now
from opencdmo.db.rows import columns, typed
from opencdmo.equipment.tables import BatchEquipment, Equipment, EquipmentLogEntry, SampleSeal
from opencdmo.errors import NotFound
from opencdmo.hub import library_queries as copies
from opencdmo.hub.model import EquipmentClass, decode_json
from opencdmo.hub.tables import HubItem, HubVersion


@dataclass(frozen=True)
class UnitRow:
    id: UUID
    code: str
    class_slug: str
    name: str
    site_id: UUID
    status: str
    qualification_due: date | None
    calibration_due: date | None
    clean_until: datetime | None
    opcua: Any  # JSON text, or None
    created_at: datetime
    updated_at: datetime

    @property
    def connection(self) -> dict[str, Any] | None:
        if self.opcua is None:
            return None
        found: dict[str, Any] = (
            json.loads(self.opcua) if isinstance(self.opcua, str) else self.opcua
        )
        return found


@dataclass(frozen=True)
class Settable:
    """What a unit's registration sets (its code never changes)."""

    class_slug: str
    name: str
    site_id: UUID
    qualification_due: date | None
    calibration_due: date | None
    opcua: dict[str, Any] | None


@dataclass(frozen=True)
class LogRow:
    id: UUID
    equipment_id: UUID
    kind: str
    note: str
    batch_id: UUID | None
    step: str | None
    used_from: datetime | None
    used_to: datetime | None
    clean_until: datetime | None
    calibration_due: date | None
    status_from: str | None
    status_to: str | None
    signature_id: UUID | None
    performed_by: UUID
    performed_at: datetime


@dataclass(frozen=True)
class NewEntry:
    kind: str
    note: str = ""
    batch_id: UUID | None = None
    step: str | None = None
    used_from: datetime | None = None
    used_to: datetime | None = None
    clean_until: datetime | None = None
    calibration_due: date | None = None
    status_from: str | None = None
    status_to: str | None = None
    signature_id: UUID | None = None


@dataclass(frozen=True)
class BindingRow:
    id: UUID
    batch_id: UUID
    step: str
    equipment_id: UUID
    bound_by: UUID
    bound_at: datetime
    released_at: datetime | None


# --- units ------------------------------------------------------------------------------------


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


async def insert_unit(tenant_id: UUID, code: str, new: Settable, created_by: UUID | None) -> UUID:
    rows = await Equipment.insert(
        Equipment(
            tenant_id=tenant_id,
            code=code,
            class_slug=new.class_slug,
            name=new.name,
            site_id=new.site_id,
            qualification_due=new.qualification_due,
            calibration_due=new.calibration_due,
            opcua=_json(new.opcua),
            created_by=created_by,
        )
    ).returning(Equipment.id)
    found: UUID = rows[0]["id"]
    return found


async def update_unit(unit_id: UUID, new: Settable) -> None:
    await Equipment.update(
        {
            Equipment.class_slug: new.class_slug,
            Equipment.name: new.name,
            Equipment.site_id: new.site_id,
            Equipment.qualification_due: new.qualification_due,
            Equipment.calibration_due: new.calibration_due,
            Equipment.opcua: _json(new.opcua),
            Equipment.updated_at: database_now(),
        }
    ).where(Equipment.id == unit_id)


async def unit(unit_id: UUID, *, lock: bool = False) -> UnitRow:
    """The unit (row-locked until the unit of work ends with ``lock``)."""
    query = Equipment.select(*columns(Equipment, UnitRow)).where(Equipment.id == unit_id)
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    if raw is None:
        raise NotFound("No such equipment.")
    return typed(UnitRow, raw)


async def unit_by_code(code: str, *, lock: bool = False) -> UnitRow | None:
    query = Equipment.select(*columns(Equipment, UnitRow)).where(
        WhereRaw("lower(code) = lower({})", code)
    )
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    return None if raw is None else typed(UnitRow, raw)


async def units() -> list[UnitRow]:
    rows = await Equipment.select(*columns(Equipment, UnitRow)).order_by(Equipment.code)
    return [typed(UnitRow, r) for r in rows]


async def units_by_id(ids: list[UUID]) -> dict[UUID, UnitRow]:
    if not ids:
        return {}
    rows = await Equipment.select(*columns(Equipment, UnitRow)).where(Equipment.id.is_in(ids))
    return {r["id"]: typed(UnitRow, r) for r in rows}


async def codes(ids: list[UUID]) -> dict[str, str]:
    if not ids:
        return {}
    rows = await Equipment.select(Equipment.id, Equipment.code).where(Equipment.id.is_in(ids))
    return {str(r["id"]): r["code"] for r in rows}


async def seal_names(ids: list[UUID]) -> dict[str, tuple[str, datetime]]:
    """Seal id -> (its unit's code, the start of its period)."""
    if not ids:
        return {}
    seals = await SampleSeal.select(
        SampleSeal.id, SampleSeal.equipment_id, SampleSeal.period_start
    ).where(SampleSeal.id.is_in(ids))
    found = await codes(list({r["equipment_id"] for r in seals}))
    return {
        str(r["id"]): (found.get(str(r["equipment_id"]), "?"), r["period_start"]) for r in seals
    }


async def set_status(unit_id: UUID, status: str) -> None:
    await Equipment.update({Equipment.status: status, Equipment.updated_at: database_now()}).where(
        Equipment.id == unit_id
    )


async def set_clean_until(unit_id: UUID, until: datetime) -> None:
    await Equipment.update(
        {Equipment.clean_until: until, Equipment.updated_at: database_now()}
    ).where(Equipment.id == unit_id)


async def set_calibration_due(unit_id: UUID, due: date) -> None:
    await Equipment.update(
        {Equipment.calibration_due: due, Equipment.updated_at: database_now()}
    ).where(Equipment.id == unit_id)


# --- logbook ----------------------------------------------------------------------------------


async def insert_entry(tenant_id: UUID, unit_id: UUID, new: NewEntry, by: UUID) -> UUID:
    rows = await EquipmentLogEntry.insert(
        EquipmentLogEntry(
            tenant_id=tenant_id,
            equipment_id=unit_id,
            performed_by=by,
            **{k: getattr(new, k) for k in NewEntry.__dataclass_fields__},
        )
    ).returning(EquipmentLogEntry.id)
    found: UUID = rows[0]["id"]
    return found


async def logbook(unit_id: UUID) -> list[LogRow]:
    """The unit's entries, newest first."""
    rows = await (
        EquipmentLogEntry.select(*columns(EquipmentLogEntry, LogRow))
        .where(EquipmentLogEntry.equipment_id == unit_id)
        .order_by(EquipmentLogEntry.performed_at, ascending=False)
    )
    return [typed(LogRow, r) for r in rows]


# --- bindings ---------------------------------------------------------------------------------


async def insert_binding(
    tenant_id: UUID, batch_id: UUID, step: str, unit_id: UUID, by: UUID
) -> UUID:
    rows = await BatchEquipment.insert(
        BatchEquipment(
            tenant_id=tenant_id, batch_id=batch_id, step=step, equipment_id=unit_id, bound_by=by
        )
    ).returning(BatchEquipment.id)
    found: UUID = rows[0]["id"]
    return found


async def bindings(batch_id: UUID, *, active: bool = False, lock: bool = False) -> list[BindingRow]:
    query = BatchEquipment.select(*columns(BatchEquipment, BindingRow)).where(
        BatchEquipment.batch_id == batch_id
    )
    if active:
        query = query.where(BatchEquipment.released_at.is_null())
    if lock:
        query = query.lock_rows("UPDATE")
    rows = await query.order_by(BatchEquipment.bound_at)
    return [typed(BindingRow, r) for r in rows]


async def binding(binding_id: UUID) -> BindingRow:
    raw = await (
        BatchEquipment.select(*columns(BatchEquipment, BindingRow))
        .where(BatchEquipment.id == binding_id)
        .first()
    )
    if raw is None:
        raise NotFound("No such equipment binding.")
    return typed(BindingRow, raw)


async def holder(unit_id: UUID) -> BindingRow | None:
    """The binding that holds the unit now, if any."""
    raw = await (
        BatchEquipment.select(*columns(BatchEquipment, BindingRow))
        .where((BatchEquipment.equipment_id == unit_id) & BatchEquipment.released_at.is_null())
        .first()
    )
    return None if raw is None else typed(BindingRow, raw)


async def release(binding_id: UUID) -> datetime:
    rows = await (
        BatchEquipment.update({BatchEquipment.released_at: database_now()})
        .where(BatchEquipment.id == binding_id)
        .returning(BatchEquipment.released_at)
    )
    found: datetime = rows[0]["released_at"]
    return found


# --- classes ----------------------------------------------------------------------------------


async def equipment_class(slug: str) -> EquipmentClass | None:
    """The class of that slug: the tenant library's copy, or the latest version of a HUB
    class the tenant sees (row-level security decides which)."""
    for copy in await copies.typed_copies("equipment_class"):
        if copy.slug == slug and isinstance(copy.content, EquipmentClass):
            return copy.content
    raw = await (
        HubVersion.select(HubVersion.content)
        .where(
            (HubVersion.item_id._.kind == "equipment_class")
            & (HubVersion.item_id._.slug == slug)
            & (HubVersion.version == HubVersion.item_id._.latest_version)
        )
        .order_by(HubVersion.item_id._.created_at)
        .first()
    )
    if raw is None:
        return None
    content = decode_json(
        raw["content"] if isinstance(raw["content"], str) else json.dumps(raw["content"])
    )
    return content if isinstance(content, EquipmentClass) else None


async def class_slugs() -> list[tuple[str, str]]:
    """Every equipment class the tenant may register a unit of: (slug, name)."""
    found = {c.slug: c.content.name for c in await copies.typed_copies("equipment_class")}
    rows = await HubItem.select(HubItem.slug, HubItem.name).where(
        (HubItem.kind == "equipment_class") & HubItem.latest_version.is_not_null()
    )
    for r in rows:
        found.setdefault(r["slug"], r["name"])
    return sorted(found.items(), key=lambda p: p[1].casefold())


async def now() -> datetime:
    """The database's time (a check against a stored time uses the same clock that wrote it).
    Raw SQL: Piccolo has no select without a table."""
    rows = await Equipment.raw("SELECT clock_timestamp() AS now")
    found: datetime = rows[0]["now"]
    return found
