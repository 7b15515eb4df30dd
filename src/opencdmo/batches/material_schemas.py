"""API structs of materials in a batch: consumptions, reservations, outputs."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from msgspec import Meta, Struct

from opencdmo.batches.schemas import IdempotencyKey
from opencdmo.fields import Key
from opencdmo.inventory.schemas import ContainerQuantity, LotNumber, UnitCode


class ConsumptionIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """A container used in a step: scanned (its id from the label) or picked."""

    step: Key
    container_id: UUID
    quantity: Decimal
    unit: UnitCode
    idempotency_key: IdempotencyKey | None = None  # made by the client: a retry is given the first


class ConsumptionOut(Struct, kw_only=True):
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


class Consumed(Struct, kw_only=True):
    consumption: ConsumptionOut
    exceptions: list[str]


class ReservationOut(Struct, kw_only=True):
    id: UUID
    material: str
    container_id: UUID
    lot_id: UUID
    quantity: Decimal
    unit: str
    reserved_by: UUID
    reserved_at: datetime


class ShortageOut(Struct, kw_only=True):
    material: str
    wanted: Decimal
    reserved: Decimal
    unit: str


class ReservedOut(Struct, kw_only=True):
    reservations: list[ReservationOut]
    shortages: list[ShortageOut]


class OutputIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """What a step made: a lot of an intermediate, product or starting material."""

    step: Key
    material_id: UUID
    quantity: Decimal
    unit: UnitCode
    lot_number: LotNumber | None = None
    expiry_date: date | None = None
    containers: (
        Annotated[int, Meta(ge=1, le=1000)]
        | Annotated[list[ContainerQuantity], Meta(min_length=1, max_length=1000)]
        | None
    ) = None


class LineOut(Struct, kw_only=True):
    step: str
    step_name: str
    material: str
    quantity: Decimal
    unit: str
    used: Decimal
    reserved: Decimal


class BatchMaterialsOut(Struct, kw_only=True):
    lines: list[LineOut]
    consumptions: list[ConsumptionOut]
    reservations: list[ReservationOut]
    outputs: list[UUID]
