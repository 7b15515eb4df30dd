"""Equipment units, their logbooks and the units bound to batch steps (tenant tables)."""

from __future__ import annotations

from piccolo.columns import JSONB, UUID, Date, Text, Timestamptz
from piccolo.table import Table

from opencdmo.db.clock import DatabaseTime


class Equipment(Table, tablename="equipment"):
    """One equipment unit of a HUB equipment class, at a site."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    code = Text()
    class_slug = Text()
    name = Text()
    site_id = UUID()
    status = Text(default="available")
    qualification_due = Date(null=True, default=None)
    calibration_due = Date(null=True, default=None)
    clean_until = Timestamptz(null=True, default=None)
    opcua = JSONB(null=True, default=None)
    created_by = UUID(null=True, default=None)
    created_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    updated_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))


class EquipmentLogEntry(Table, tablename="equipment_logbook"):
    """One entry of a unit's logbook (append-only)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    equipment_id = UUID()
    kind = Text()
    note = Text(default="")
    batch_id = UUID(null=True, default=None)
    step = Text(null=True, default=None)
    used_from = Timestamptz(null=True, default=None)
    used_to = Timestamptz(null=True, default=None)
    clean_until = Timestamptz(null=True, default=None)
    calibration_due = Date(null=True, default=None)
    status_from = Text(null=True, default=None)
    status_to = Text(null=True, default=None)
    signature_id = UUID(null=True, default=None)
    performed_by = UUID()
    performed_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))


class BatchEquipment(Table, tablename="batch_equipment"):
    """A unit bound to a step of a batch, until the step or the batch ends."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    batch_id = UUID()
    step = Text()
    equipment_id = UUID()
    bound_by = UUID()
    bound_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    released_at = Timestamptz(null=True, default=None)
