"""Materials, lots, their containers and status changes, storage locations and container
moves (tenant tables)."""

from __future__ import annotations

from piccolo.columns import UUID, Array, Date, Integer, Numeric, Text, Timestamptz
from piccolo.table import Table

from opencdmo.db.clock import DatabaseTime


class Material(Table, tablename="materials"):
    """One material of the tenant's material master."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    code = Text()
    name = Text()
    material_type = Text()
    storage_condition = Text(default="")
    shelf_life_days = Integer(null=True, default=None)
    default_unit = Text()
    library_item_id = UUID(null=True, default=None)
    created_by = UUID(null=True, default=None)
    created_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    reorder_level = Numeric(null=True, default=None)
    approved_suppliers = Array(Text(), default=list)


class Lot(Table, tablename="lots"):
    """A received lot of a material, and its status."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    material_id = UUID()
    lot_number = Text()
    supplier = Text()
    supplier_lot = Text()
    quantity = Numeric()
    unit = Text()
    expiry_date = Date(null=True, default=None)
    status = Text(default="quarantine")
    received_by = UUID()
    received_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    coa_note = Text(null=True, default=None)
    updated_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    origin_batch_id = UUID(null=True, default=None)
    origin_step = Text(null=True, default=None)
    donor_id = Text(null=True, default=None)
    coi_label = Text(null=True, default=None)
    apheresis_id = Text(null=True, default=None)
    coa_file_id = UUID(null=True, default=None)  # the certificate of analysis (stored_files)


class LotContainer(Table, tablename="lot_containers"):
    """One container a lot was received in (or split into)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    lot_id = UUID()
    number = Integer()
    quantity = Numeric()
    unit = Text()
    remaining = Numeric()
    location_id = UUID(null=True, default=None)
    label_printed_at = Timestamptz(null=True, default=None)
    label_printed_by = UUID(null=True, default=None)


class LotStatusChange(Table, tablename="lot_status_changes"):
    """A change of a lot's status, with who, when, why and its signature (append-only)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    lot_id = UUID()
    from_status = Text(null=True, default=None)
    to_status = Text()
    reason = Text()
    changed_by = UUID()
    changed_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    signature_id = UUID(null=True, default=None)


class BatchConsumption(Table, tablename="batch_consumptions"):
    """One use of a container in a step of a batch (append-only)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    batch_id = UUID()
    step = Text()
    material = Text(null=True, default=None)  # the bill of materials line's material
    container_id = UUID()
    lot_id = UUID()
    material_id = UUID()
    quantity = Numeric()
    unit = Text()
    container_quantity = Numeric()
    container_unit = Text()
    consumed_by = UUID()
    consumed_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    idempotency_key = Text(null=True, default=None)  # the client's, for a retry


class BatchReservation(Table, tablename="batch_reservations"):
    """A container (or part of it) kept for a batch's bill of materials line."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    batch_id = UUID()
    material = Text()
    container_id = UUID()
    quantity = Numeric()
    reserved_by = UUID()
    reserved_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    released_at = Timestamptz(null=True, default=None)


class GenealogyLink(Table, tablename="genealogy_links"):
    """An edge of the genealogy graph: a lot went into a batch, or a batch made a lot."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    parent_id = UUID()
    parent_kind = Text()
    child_id = UUID()
    child_kind = Text()
    quantity = Numeric(null=True, default=None)
    unit = Text(null=True, default=None)
    linked_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))


class StorageLocation(Table, tablename="storage_locations"):
    """A place where containers are stored, in a tree: a site's root, rooms, storage units
    (freezer, fridge, incubator, shelf, LN2 tank), racks, boxes and positions."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    parent_id = UUID(null=True, default=None)
    site_id = UUID()
    kind = Text()
    code = Text()
    name = Text()
    storage_condition = Text(default="")
    created_by = UUID(null=True, default=None)
    created_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    retired_at = Timestamptz(null=True, default=None)


class ContainerMove(Table, tablename="container_moves"):
    """A container put somewhere: at receipt (from nowhere) or moved (append-only)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    container_id = UUID()
    from_location_id = UUID(null=True, default=None)
    to_location_id = UUID()
    reason = Text(null=True, default=None)
    moved_by = UUID()
    moved_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
