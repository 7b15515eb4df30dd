"""Equipment units, their logbooks, the units bound to batch steps and the samples captured
from them (tenant tables)."""

from __future__ import annotations

from piccolo.columns import (
    JSONB,
    UUID,
    BigInt,
    Bytea,
    Date,
    DoublePrecision,
    Integer,
    Text,
    Timestamptz,
)
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


class EquipmentSample(Table, tablename="equipment_samples"):
    """One captured change of one signal of a unit (append-only; partitioned by month of
    ``source_time`` in SQL, which Piccolo cannot declare). Its key is (tenant_id,
    equipment_id, signal, source_time); Piccolo needs one primary key column of it."""

    tenant_id = UUID()
    equipment_id = UUID(primary_key=True)
    signal = Text()
    value = DoublePrecision(null=True, default=None)
    text_value = Text(null=True, default=None)
    status_code = BigInt(default=0)
    source_time = Timestamptz()
    server_time = Timestamptz(null=True, default=None)
    stored_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))


class CaptureLease(Table, tablename="capture_leases"):
    """Which capture worker captures a unit, until when (renewed every few seconds)."""

    tenant_id = UUID()
    equipment_id = UUID(primary_key=True)
    worker = Text()
    acquired_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    expires_at = Timestamptz()


class SampleSeal(Table, tablename="sample_seals"):
    """A period of a unit's stored samples sealed: per signal its count and digest, and one
    digest over them, vouched for by an audit event (append-only; a period sealed again has
    a higher ``version``)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    equipment_id = UUID()
    period_start = Timestamptz()
    period_end = Timestamptz()
    version = Integer(default=1)
    samples = BigInt()
    signals = JSONB()
    digest = Text()
    sealed_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))


class CaptureWorker(Table, tablename="capture_workers"):
    """A live capture worker of a tenant, until ``expires_at`` (renewed every few seconds)."""

    tenant_id = UUID()
    worker = Text(primary_key=True)
    seen_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    expires_at = Timestamptz()


class SetpointWrite(Table, tablename="batch_setpoint_writes"):
    """One attempt to write a phase's parameter values to the setpoint nodes of the unit
    bound to its step: claimed before the write, finished with its outcome."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    batch_id = UUID()
    step = Text()
    phase = Text()
    equipment_id = UUID()
    idempotency_key = Text()
    requested = JSONB()
    results = JSONB(null=True, default=None)
    outcome = Text(null=True, default=None)
    written_by = UUID()
    started_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    finished_at = Timestamptz(null=True, default=None)


class TrustedCertificate(Table, tablename="opcua_trusted_certificates"):
    """An OPC UA server certificate the tenant trusts (until removed, with a reason)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    thumbprint = Text()
    certificate = Bytea()
    subject = Text()
    not_after = Timestamptz()
    added_by = UUID()
    added_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    removed_by = UUID(null=True, default=None)
    removed_at = Timestamptz(null=True, default=None)
    removal_reason = Text(null=True, default=None)
