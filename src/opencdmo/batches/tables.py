"""Batches, their control recipes (append-only) and the batch number counters (tenant
tables)."""

from __future__ import annotations

from piccolo.columns import JSONB, UUID, Boolean, DoublePrecision, Integer, Text, Timestamptz
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
    sponsor_tenant_id = UUID(null=True, default=None)
    planned_start = Timestamptz()
    status = Text(default="idle")
    donor_id = Text(null=True, default=None)
    coi_label = Text(null=True, default=None)
    apheresis_id = Text(null=True, default=None)
    created_by = UUID(null=True, default=None)
    created_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    updated_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    started_at = Timestamptz(null=True, default=None)
    ended_at = Timestamptz(null=True, default=None)
    disposition = Text(null=True, default=None)
    disposition_signature_id = UUID(null=True, default=None)
    dispositioned_at = Timestamptz(null=True, default=None)


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
    equipment_source = JSONB(null=True, default=None)  # the samples an equipment value is from


class BatchPhase(Table, tablename="batch_phases"):
    """The ISA-88 state of one phase of a batch, and its place in recipe order (the key is
    tenant, batch, step and phase; Piccolo is told one of its columns)."""

    tenant_id = UUID()
    batch_id = UUID()
    position = Integer()
    procedure = Text()
    step = Text()
    phase = Text(primary_key=True)
    status = Text(default="idle")
    started_at = Timestamptz(null=True, default=None)
    started_by = UUID(null=True, default=None)
    ended_at = Timestamptz(null=True, default=None)
    ended_by = UUID(null=True, default=None)
    updated_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))


class BatchException(Table, tablename="batch_exceptions"):
    """An exception the system raised in a batch, and its disposition (given once)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    batch_id = UUID()
    kind = Text()
    severity = Text()
    step = Text(null=True, default=None)
    phase = Text(null=True, default=None)
    field = Text(null=True, default=None)
    entry_id = UUID(null=True, default=None)
    message = Text()
    raised_by = UUID(null=True, default=None)
    raised_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    disposition = Text(null=True, default=None)
    disposition_comment = Text(null=True, default=None)
    dispositioned_by = UUID(null=True, default=None)
    dispositioned_at = Timestamptz(null=True, default=None)
    deviation_id = UUID(null=True, default=None)


class Deviation(Table, tablename="deviations"):
    """A deviation opened from exceptions of a batch; QA closes it with a signature."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    batch_id = UUID()
    number = Text()
    classification = Text()
    description = Text()
    impact = Text(null=True, default=None)
    root_cause = Text(null=True, default=None)
    capa_reference = Text(null=True, default=None)
    status = Text(default="open")
    opened_by = UUID()
    opened_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    closed_by = UUID(null=True, default=None)
    closed_at = Timestamptz(null=True, default=None)
    close_signature_id = UUID(null=True, default=None)
    updated_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))


class BatchVerification(Table, tablename="batch_verifications"):
    """A second person's signature on a performed phase (append-only)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    batch_id = UUID()
    step = Text()
    phase = Text()
    kind = Text()
    signature_id = UUID()
    verified_by = UUID()
    verified_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))


class BatchIdentityCheck(Table, tablename="batch_identity_checks"):
    """A COI label scanned or typed at a step, and whether it matched (append-only)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    batch_id = UUID()
    step = Text()
    scanned = Text()
    matched = Boolean()
    checked_by = UUID()
    checked_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))


class BatchCustody(Table, tablename="batch_custody"):
    """Who holds a batch's material and where, from when (append-only)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    batch_id = UUID()
    holder_id = UUID()
    location = Text()
    received_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))


class BatchExcursion(Table, tablename="batch_excursions"):
    """A bound signal outside its phase's limits for longer than the tenant's debounce: its
    exception, where, the limits it left, its start, its end (set once) and extreme value."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    exception_id = UUID()
    batch_id = UUID()
    binding_id = UUID()
    equipment_id = UUID()
    step = Text()
    phase = Text()
    signal = Text()
    unit = Text(null=True, default=None)
    low = DoublePrecision(null=True, default=None)
    high = DoublePrecision(null=True, default=None)
    started_at = Timestamptz()
    ended_at = Timestamptz(null=True, default=None)
    extreme = DoublePrecision()
    raised_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))


class ExcursionCursor(Table, tablename="excursion_cursors"):
    """How far one signal of a unit bound to a batch step has been evaluated, and the
    excursion open there (key: tenant, binding and signal; Piccolo is told one of them)."""

    tenant_id = UUID()
    binding_id = UUID(primary_key=True)
    signal = Text()
    cursor_at = Timestamptz(null=True, default=None)
    open_phase = Text(null=True, default=None)
    open_started_at = Timestamptz(null=True, default=None)
    open_extreme = DoublePrecision(null=True, default=None)
    open_exception_id = UUID(null=True, default=None)
    updated_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
