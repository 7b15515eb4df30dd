"""API structs of storage locations, moves, labels and stock settings."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from msgspec import Meta, Struct

from opencdmo.fields import Name, Short

Reason = Annotated[str, Meta(max_length=2000)]
Code = Annotated[str, Meta(max_length=64)]
Kind = Literal[
    "site",
    "room",
    "freezer",
    "fridge",
    "incubator",
    "shelf",
    "ln2_tank",
    "rack",
    "box",
    "position",
]
ContainerIds = Annotated[list[UUID], Meta(min_length=1, max_length=1000)]


class LocationIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """A location: a site's root (``kind`` site and ``site``, the site's code), or a location
    of ``kind`` in ``parent_id``, its code unique among its siblings. ``name`` defaults to
    "<Kind> <code>" (a position: its code); ``storage_condition`` (such as "-80 °C") is kept
    by everything in it that says none of its own."""

    kind: Kind
    code: Code = ""
    name: Short = ""
    storage_condition: Short = ""
    parent_id: UUID | None = None
    site: Code | None = None


class LocationOut(Struct, kw_only=True):
    id: UUID
    parent_id: UUID | None
    site_id: UUID
    kind: str
    code: str
    name: str
    path: str
    storage_condition: str
    kept_condition: str  # its own, or the nearest one above it
    created_at: datetime
    retired_at: datetime | None


class TreeLocationOut(LocationOut, kw_only=True):
    depth: int
    containers: int  # held by the location itself


class LocationTree(Struct):
    items: list[TreeLocationOut]


class StoredOut(Struct, kw_only=True):
    id: UUID
    lot_id: UUID
    lot_number: str
    number: int
    material_id: UUID
    material_code: str
    quantity: Decimal
    unit: str
    status: str
    location_id: UUID | None
    location: str | None
    label_printed_at: datetime | None
    warning: str | None  # the location keeps another storage condition than the material


class LocationDetail(LocationOut, kw_only=True):
    children: list[TreeLocationOut]
    stored: list[StoredOut]


class MoveIn(Struct, forbid_unknown_fields=True, kw_only=True):
    container_ids: ContainerIds
    reason: Reason | None = None


class MovedOut(Struct, kw_only=True):
    container: StoredOut
    from_location_id: UUID | None
    from_location: str | None


class MovedList(Struct):
    items: list[MovedOut]


class MoveOut(Struct, kw_only=True):
    from_location_id: UUID | None
    from_location: str | None
    to_location_id: UUID
    to_location: str
    reason: str | None
    moved_by: UUID
    moved_at: datetime


class ContainerDetail(StoredOut, kw_only=True):
    moves: list[MoveOut]


class LabelsPrintedIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """The containers whose labels were printed (all the lot's when not given)."""

    container_ids: ContainerIds | None = None


class LabelsPrintedOut(Struct):
    containers: list[int]


class ReorderLevelIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """The reorder level in the material's default unit (null: none)."""

    reorder_level: Decimal | None


class SuppliersIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """The approved suppliers (empty: any supplier)."""

    suppliers: Annotated[list[Name], Meta(max_length=100)]


class StockOut(Struct, kw_only=True):
    material_id: UUID
    code: str
    name: str
    default_unit: str
    on_hand: Decimal
    reorder_level: Decimal | None
    approved_suppliers: list[str]
    below_reorder_level: bool


class ExpiringOut(Struct, kw_only=True):
    lot_id: UUID
    lot_number: str
    material_code: str
    expiry_date: date | None
    status: str


# --- forms (the pages post these; the same limits as the API) --------------------------------

FormId = Annotated[str, Meta(max_length=40)]
FormNumber = Annotated[str, Meta(max_length=60)]


class MaterialForm(Struct, forbid_unknown_fields=False, kw_only=True):
    code: Annotated[str, Meta(max_length=64)]
    name: Short
    material_type: Annotated[str, Meta(max_length=40)]
    default_unit: Annotated[str, Meta(max_length=64)]
    storage_condition: Short = ""
    shelf_life_days: FormNumber = ""
    library_item_id: Annotated[str, Meta(max_length=64)] = ""  # a HUB material it stands for


class ReceiptForm(Struct, forbid_unknown_fields=False, kw_only=True):
    """The receipt form: ``containers`` is a count, or each container's quantity in the lot's
    unit separated by commas or spaces ("500, 500, 1000")."""

    material_id: FormId
    lot_number: Annotated[str, Meta(max_length=120)]
    supplier: Short
    supplier_lot: Annotated[str, Meta(max_length=120)]
    quantity: FormNumber
    unit: Annotated[str, Meta(max_length=64)]
    expiry_date: Annotated[str, Meta(max_length=20)] = ""
    containers: Annotated[str, Meta(max_length=20_000)] = ""
    location_id: FormId = ""
    coa_note: Annotated[str, Meta(max_length=4000)] = ""


class MoveForm(Struct, forbid_unknown_fields=False, kw_only=True):
    to_location: FormId
    container_ids: Annotated[list[FormId], Meta(max_length=1000)] = []
    reason: Reason = ""


class LocationForm(Struct, forbid_unknown_fields=False, kw_only=True):
    kind: Annotated[str, Meta(max_length=40)] = ""
    code: Code = ""
    name: Short = ""
    storage_condition: Short = ""
    site: Code = ""


class ReasonForm(Struct, forbid_unknown_fields=False, kw_only=True):
    reason: Reason = ""


class SignForm(Struct, forbid_unknown_fields=False, kw_only=True):
    password: Annotated[str, Meta(max_length=1000)] = ""
    reason: Reason = ""


class LabelsForm(Struct, forbid_unknown_fields=False, kw_only=True):
    container_ids: Annotated[list[FormId], Meta(max_length=1000)] = []


class ReorderForm(Struct, forbid_unknown_fields=False, kw_only=True):
    reorder_level: FormNumber = ""


class SuppliersForm(Struct, forbid_unknown_fields=False, kw_only=True):
    suppliers: Annotated[str, Meta(max_length=20_000)] = ""  # one a line
