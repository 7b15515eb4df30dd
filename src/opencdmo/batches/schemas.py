"""API structs of the batches context."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
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
