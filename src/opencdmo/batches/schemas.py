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


class BatchCreated(Struct):
    id: UUID
    number: str
    control_recipe_hash: str


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


class EntryWithHistory(EntryOut, kw_only=True):
    superseded_by: UUID | None


class EntryList(Struct):
    items: list[EntryWithHistory]
