"""API structs of the batches context."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from msgspec import Meta, Struct

from opencdmo.fields import Name, Short, Text

SiteCode = Annotated[str, Meta(min_length=1, max_length=64, pattern="^[A-Za-z0-9][A-Za-z0-9_-]*$")]


class ChainOfIdentityIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """The patient or donor identifiers (required for an autologous recipe)."""

    donor_id: Short | None = None
    coi_label: Short | None = None
    apheresis_id: Short | None = None


class BatchCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    recipe_id: UUID
    formula: Name
    site: SiteCode
    planned_start: datetime
    sponsor: Name
    chain_of_identity: ChainOfIdentityIn | None = None
    reserve_materials: bool = False


class BatchCreateForm(Struct, forbid_unknown_fields=True, kw_only=True):
    """The create form: the recipe and formula chosen together ("recipe id|formula"), a
    planned start in the tenant's zone when it has no offset (datetime-local)."""

    recipe_formula: Annotated[str, Meta(min_length=38, max_length=400)]
    site: SiteCode
    planned_start: Annotated[str, Meta(min_length=1, max_length=40)]
    sponsor: Name
    donor_id: Short = ""
    coi_label: Short = ""
    apheresis_id: Short = ""


class BatchCreated(Struct):
    id: UUID
    number: str
    control_recipe_hash: str
    short: list[str] = []


class BatchCommand(Struct, forbid_unknown_fields=True, kw_only=True):
    reason: Text = ""


class BatchOut(Struct, kw_only=True):
    id: UUID
    number: str
    recipe_id: UUID
    recipe_name: str
    revision: int
    formula: str
    site: str
    sponsor: str
    planned_start: datetime
    status: str
    donor_id: str | None
    coi_label: str | None
    apheresis_id: str | None
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    disposition: str | None
    disposition_signature_id: UUID | None
    dispositioned_at: datetime | None


class BatchDetail(BatchOut, kw_only=True):
    control_recipe_hash: str
    control_recipe: dict[str, Any]
    commands: list[str]


class BatchList(Struct):
    items: list[BatchOut]
    total: int
    limit: int
    offset: int


FieldKey = Annotated[str, Meta(min_length=1, max_length=64, pattern="^[a-z0-9][a-z0-9_-]*$")]
IdempotencyKey = Annotated[
    str, Meta(min_length=1, max_length=200, pattern="^[A-Za-z0-9][A-Za-z0-9._:-]*$")
]
EntryValue = Annotated[str, Meta(max_length=2000)] | bool | int | float
UnitCode = Annotated[str, Meta(min_length=1, max_length=40)]


class EntryIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """One value for a field of a phase of a step; ``idempotency_key`` is made by the client
    (a retry with the same key is given the first entry); a correction names the entry it
    ``supersedes`` and a reason."""

    step: FieldKey
    phase: FieldKey
    field: FieldKey
    value: EntryValue
    idempotency_key: IdempotencyKey
    unit: UnitCode | None = None
    source: Literal["manual", "equipment", "calculated"] = "manual"
    device_time: datetime | None = None
    supersedes: UUID | None = None
    reason: Text | None = None


class EquipmentEntryIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """A data-capture field's value taken from the equipment bound to its step (its latest
    value in the phase, or the aggregate the content names); the same idempotency key again
    is given the first entry; a correction names the entry it ``supersedes`` and a reason."""

    step: FieldKey
    phase: FieldKey
    field: FieldKey
    idempotency_key: IdempotencyKey
    supersedes: UUID | None = None
    reason: Text | None = None


class EntryOut(Struct, kw_only=True):
    id: UUID
    batch_id: UUID
    step: str
    phase: str
    field: str
    value: Any
    unit: str | None
    source: str
    entered_by: UUID
    entered_at: datetime
    device_time: datetime | None
    idempotency_key: str
    supersedes: UUID | None
    reason: str | None
    check: str
    message: str
    # for a value from equipment: the unit, signal, sample times and aggregate it came from
    equipment_source: dict[str, Any] | None = None


class EntryWithHistory(EntryOut, kw_only=True):
    superseded_by: UUID | None


class EntryList(Struct):
    items: list[EntryWithHistory]


Password = Annotated[str, Meta(min_length=1, max_length=1000)]
Reason = Annotated[str, Meta(max_length=2000)]
LongText = Annotated[str, Meta(max_length=4000)]


class PhaseOut(Struct, kw_only=True):
    position: int
    procedure: str
    step: str
    phase: str
    name: str
    status: str
    started_at: datetime | None
    started_by: UUID | None
    ended_at: datetime | None
    ended_by: UUID | None
    second_person: str | None
    identity_check: bool
    commands: list[str]


class StepOut(Struct, kw_only=True):
    key: str
    name: str
    status: str
    phases: list[PhaseOut]


class ProcedureOut(Struct, kw_only=True):
    key: str
    name: str
    status: str
    operations: list[StepOut]


class ProcedureTree(Struct):
    items: list[ProcedureOut]


class IdentityCheckIn(Struct, forbid_unknown_fields=True, kw_only=True):
    step: FieldKey
    scanned: Short


class IdentityCheckOut(Struct, kw_only=True):
    id: UUID
    step: str
    scanned: str
    matched: bool
    checked_by: UUID
    checked_at: datetime


class CustodyIn(Struct, forbid_unknown_fields=True, kw_only=True):
    location: Short


class SignIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """A signature: the signer's password again, and the reason."""

    password: Password
    reason: Reason


class VerificationOut(Struct, kw_only=True):
    kind: str
    signature_id: UUID
    signer_name: str
    signed_at: datetime
    meaning: str


class ExceptionOut(Struct, kw_only=True):
    id: UUID
    kind: str
    severity: str
    step: str | None
    phase: str | None
    field: str | None
    entry_id: UUID | None
    message: str
    raised_by: UUID | None
    raised_at: datetime
    disposition: str | None
    disposition_comment: str | None
    dispositioned_by: UUID | None
    dispositioned_at: datetime | None
    deviation_id: UUID | None
    excursion: ExcursionOut | None = None  # an equipment excursion's start, end and extreme


class ExcursionOut(Struct, kw_only=True):
    """An equipment excursion: the unit's signal outside the limits from ``started_at`` to
    ``ended_at`` (None: ongoing), its extreme value in ``unit``, and how long it lasted."""

    equipment_id: UUID
    signal: str
    unit: str | None
    low: float | None
    high: float | None
    started_at: datetime
    ended_at: datetime | None
    extreme: float
    seconds: float | None


class ExceptionList(Struct):
    items: list[ExceptionOut]


class AcceptIn(Struct, forbid_unknown_fields=True, kw_only=True):
    comment: LongText


class DeviationIn(Struct, forbid_unknown_fields=True, kw_only=True):
    exception_ids: Annotated[list[UUID], Meta(min_length=1, max_length=200)]
    classification: Literal["minor", "major", "critical"]
    description: LongText


class DeviationClose(SignIn, forbid_unknown_fields=True, kw_only=True):
    impact: LongText
    root_cause: LongText
    capa_reference: Short | None = None


class DeviationOut(Struct, kw_only=True):
    id: UUID
    batch_id: UUID
    number: str
    classification: str
    description: str
    impact: str | None
    root_cause: str | None
    capa_reference: str | None
    status: str
    opened_by: UUID
    opened_at: datetime
    closed_by: UUID | None
    closed_at: datetime | None
    close_signature_id: UUID | None


class DeviationList(Struct):
    items: list[DeviationOut]


class DispositionIn(SignIn, forbid_unknown_fields=True, kw_only=True):
    decision: Literal["release", "reject"]


class SponsoredBatchOut(Struct):
    cdmo_slug: str
    cdmo_name: str
    batch_id: UUID
    number: str
    recipe: str
    status: str
    current_step: str | None
    open_exceptions: int
    open_deviations: int
    decision: str
    decided_at: datetime | None
    planned_start: datetime
    record_available: bool
