"""Materials, lots, their containers and status changes (tenant tables)."""

from __future__ import annotations

from piccolo.columns import UUID, Date, Integer, Numeric, Text, Timestamptz
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
    coa_file_id = UUID(null=True, default=None)  # the certificate of analysis (stored_files)


class LotContainer(Table, tablename="lot_containers"):
    """One container a lot was received in (or split into)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    lot_id = UUID()
    number = Integer()
    quantity = Numeric()
    unit = Text()


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
