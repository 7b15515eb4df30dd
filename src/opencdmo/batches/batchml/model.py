"""What a batch production record export is made from: plain frozen values, no database.

Times must carry their offset (UTC-aware datetimes); ids may be UUIDs or strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

Ref = str | UUID
Value = str | int | float | Decimal | bool


@dataclass(frozen=True)
class BatchHeader:
    """The batch: identity, recipe, ISA-88 state (idle, running, held, paused, stopped,
    aborted, complete), disposition (None, 'released', 'rejected') and chain of identity."""

    batch_id: Ref
    number: str
    recipe_id: Ref
    recipe_name: str
    revision: int
    product: str
    formula: str
    site_code: str
    sponsor: str
    status: str
    planned_start: datetime
    control_recipe_hash: str
    disposition: str | None = None
    actual_start: datetime | None = None
    actual_end: datetime | None = None
    created_at: datetime | None = None
    donor_id: str | None = None
    coi_label: str | None = None
    apheresis_id: str | None = None


@dataclass(frozen=True)
class Phase:
    key: str
    name: str
    state: str
    started_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True)
class Operation:
    """A step of the control recipe (an ISA-88 operation) and its phases."""

    key: str
    name: str
    state: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    phases: tuple[Phase, ...] = ()


@dataclass(frozen=True)
class UnitProcedure:
    key: str
    name: str
    state: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    operations: tuple[Operation, ...] = ()


@dataclass(frozen=True)
class Entry:
    """One value entered for a field of a phase of a step. A correction supersedes an earlier
    entry, which stays in the record. ``source``: manual, equipment or calculated; ``check``:
    in_limits, outside_normal, outside_par or invalid; ``unit``: a UCUM code."""

    id: Ref
    step: str
    phase: str
    field_key: str
    field_name: str
    value: Value
    source: str
    entered_by: str
    entered_at: datetime
    check: str
    unit: str | None = None
    device_time: datetime | None = None
    supersedes: Ref | None = None
    reason: str | None = None


@dataclass(frozen=True)
class ExceptionRecord:
    """An exception raised during the batch and, once reviewed, its disposition."""

    id: Ref
    kind: str
    severity: str
    message: str
    raised_at: datetime
    step: str | None = None
    phase: str | None = None
    disposition: str | None = None
    disposition_comment: str | None = None
    disposed_by: str | None = None
    disposed_at: datetime | None = None


@dataclass(frozen=True)
class Deviation:
    """A deviation raised against the batch; classification minor, major or critical."""

    id: Ref
    number: str
    classification: str
    description: str
    status: str
    opened_at: datetime
    closed_at: datetime | None = None


@dataclass(frozen=True)
class Signature:
    """A Part 11 signature of a record, with its manifestation (name, time, meaning)."""

    id: Ref
    meaning: str
    signer_name: str
    signed_at: datetime
    reason: str
    record_type: str
    record_id: Ref
    record_hash: str | None = None


@dataclass(frozen=True)
class CustodyEvent:
    """Who held the batch's material, where, from when until when (open while still held)."""

    holder: str
    location: str
    from_at: datetime
    to_at: datetime | None = None


@dataclass(frozen=True)
class MaterialEvent:
    """A container used in a step (``Consume``) or a lot a step made (``Produce``)."""

    id: UUID
    kind: str  # "Consume" or "Produce"
    at: datetime
    step: str
    lot_id: UUID
    lot_number: str
    material: str
    quantity: Decimal
    unit: str
    person: str | None = None
    container: int | None = None


@dataclass(frozen=True)
class BatchRecordDoc:
    """Everything the export says about one batch, as of ``exported_at``."""

    header: BatchHeader
    exported_at: datetime
    unit_procedures: tuple[UnitProcedure, ...] = ()
    entries: tuple[Entry, ...] = ()
    exceptions: tuple[ExceptionRecord, ...] = ()
    deviations: tuple[Deviation, ...] = ()
    signatures: tuple[Signature, ...] = ()
    custody: tuple[CustodyEvent, ...] = ()
    materials: tuple[MaterialEvent, ...] = ()
