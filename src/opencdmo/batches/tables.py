"""Batches, their control recipes (append-only) and the batch number counters (tenant
tables)."""

from __future__ import annotations

from piccolo.columns import JSONB, UUID, Integer, Text, Timestamptz
from piccolo.table import Table

from opencdmo.db.clock import DatabaseTime


class Batch(Table, tablename="batches"):
    tenant_id = UUID()
    id = UUID(primary_key=True)
    number = Text()
    recipe_id = UUID()
    revision = Integer()
    formula = Text()
    site_id = UUID()
    sponsor = Text()
    planned_start = Timestamptz()
    status = Text(default="idle")
    donor_id = Text(null=True, default=None)
    coi_label = Text(null=True, default=None)
    apheresis_id = Text(null=True, default=None)
    created_by = UUID(null=True, default=None)
    created_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    updated_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))


class ControlRecipe(Table, tablename="control_recipes"):
    """A batch's frozen copy of its master recipe revision, with its canonical hash."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    batch_id = UUID()
    document = JSONB()
    content_hash = Text()
    created_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))


class BatchNumberCounter(Table, tablename="batch_number_counters"):
    """The last counter value given for one pattern key of a tenant."""

    tenant_id = UUID()
    key = Text(primary_key=True)
    last_value = Integer()


class BatchEntry(Table, tablename="batch_entries"):
    """One entry of a batch record (append-only): a value for a field of a phase of a step,
    with who, when, where from and its check; a correction supersedes an earlier entry."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    batch_id = UUID()
    step = Text()
    phase = Text()
    field = Text()
    value = JSONB()
    unit = Text(null=True, default=None)
    source = Text(default="manual")
    entered_by = UUID()
    entered_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    device_time = Timestamptz(null=True, default=None)
    idempotency_key = Text()
    supersedes = UUID(null=True, default=None)
    reason = Text(null=True, default=None)
    check_result = Text()
    message = Text()
