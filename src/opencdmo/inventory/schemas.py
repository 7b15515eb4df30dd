"""API structs of the inventory context."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from msgspec import Meta, Struct

from opencdmo.fields import Key, Name, Short

Password = Annotated[str, Meta(min_length=1, max_length=1000)]
Reason = Annotated[str, Meta(max_length=2000)]
LongText = Annotated[str, Meta(max_length=4000)]
UnitCode = Annotated[str, Meta(min_length=1, max_length=64)]
LotNumber = Annotated[str, Meta(min_length=1, max_length=120)]
MaterialType = Literal[
    "raw_material", "consumable", "reagent", "starting_material", "intermediate", "product"
]


class MaterialIn(Struct, forbid_unknown_fields=True, kw_only=True):
    code: Key
    name: Name
    material_type: MaterialType
    default_unit: UnitCode
    storage_condition: Short = ""
    shelf_life_days: Annotated[int, Meta(ge=1, le=36500)] | None = None
    library_item_id: UUID | None = None


class MaterialOut(Struct, kw_only=True):
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


class MaterialList(Struct):
    items: list[MaterialOut]


class ContainerQuantity(Struct, forbid_unknown_fields=True, kw_only=True):
    quantity: Decimal
    unit: UnitCode | None = None


class IdentityIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """The chain-of-identity identifiers of a patient's or donor's starting material."""

    donor_id: Short | None = None
    coi_label: Short | None = None
    apheresis_id: Short | None = None


class ReceiptIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """A delivery: ``containers`` is a number of equal containers, or each container's
    quantity (adding up to the total); one container with everything when not given. Every
    container is put at ``location_id`` when given."""

    material_id: UUID
    lot_number: LotNumber
    supplier: Name
    supplier_lot: LotNumber
    quantity: Decimal
    unit: UnitCode
    expiry_date: date | None = None
    containers: (
        Annotated[int, Meta(ge=1, le=1000)]
        | Annotated[list[ContainerQuantity], Meta(min_length=1, max_length=1000)]
        | None
    ) = None
    coa_note: LongText | None = None
    chain_of_identity: IdentityIn | None = None
    location_id: UUID | None = None


class SignIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """A signature: the signer's password again, and the reason."""

    password: Password
    reason: Reason


class ReasonIn(Struct, forbid_unknown_fields=True, kw_only=True):
    reason: Reason


class ContainerOut(Struct, kw_only=True):
    id: UUID
    number: int
    quantity: Decimal
    unit: str
    remaining: Decimal
    location_id: UUID | None
    location: str | None  # its path, "Site A / Room 101 / Freezer F-2 / Rack 3 / Box 7 / A1"
    label_printed_at: datetime | None


class StatusChangeOut(Struct, kw_only=True):
    from_status: str | None
    to_status: str
    reason: str
    changed_by: UUID
    changed_at: datetime
    signature_id: UUID | None


class LotOut(Struct, kw_only=True):
    id: UUID
    material_id: UUID
    material_code: str
    lot_number: str
    supplier: str
    supplier_lot: str
    quantity: Decimal
    unit: str
    expiry_date: date | None
    status: str
    stored_status: str
    received_by: UUID
    received_at: datetime
    coa_note: str | None
    origin_batch_id: UUID | None
    origin_step: str | None
    donor_id: str | None
    coi_label: str | None
    apheresis_id: str | None
    coa_file_id: UUID | None


class CoaOut(Struct, kw_only=True):
    """The lot's certificate of analysis as stored (its bytes: GET .../lots/{lot_id}/coa)."""

    file_id: UUID
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    uploaded_by: UUID
    uploaded_by_name: str
    uploaded_at: datetime


class LotDetail(LotOut, kw_only=True):
    containers: list[ContainerOut]
    history: list[StatusChangeOut]
    coa: CoaOut | None = None


class LotList(Struct):
    items: list[LotOut]
