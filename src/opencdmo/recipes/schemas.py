"""API structs of the recipes context."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from msgspec import Struct


class RecipeCreate(Struct):
    name: str
    product: str = ""


class RecipeSummary(Struct):
    id: UUID
    name: str
    product: str
    status: str
    current_revision: int
    effective_revision: int | None
    updated_at: datetime


class SignatureOut(Struct):
    signer: str
    meaning: str
    reason: str
    signed_at: datetime
    record_version: str
    valid: bool


class RecipeDetail(Struct):
    id: UUID
    name: str
    product: str
    status: str
    current_revision: int
    effective_revision: int | None
    content: dict[str, Any]
    signatures: list[SignatureOut]


class RevisionSave(Struct):
    base_revision: int
    content: dict[str, Any]
    message: str = ""


class Saved(Struct):
    revision: int


class RevisionOut(Struct):
    revision: int
    content_hash: str
    message: str
    saved_at: datetime
    saved_by: str | None
    effective_from: datetime | None = None
    effective_until: datetime | None = None
    ended: str | None = None  # superseded or retired


class ChangeOut(Struct):
    op: str
    path: str
    old: Any = None
    new: Any = None


class SignRequest(Struct):
    password: str
    reason: str


class Transitioned(Struct):
    """The outcome of a lifecycle command: whether the recipe moved (an approval may be one of
    several the tenant's signature flow needs) and its status now."""

    moved: bool
    status: str


class FromHub(Struct):
    hub_item_id: UUID
    version: str | None = None


class Created(Struct):
    id: UUID


class RecipePublish(Struct):
    """How the effective revision is listed on the HUB, and the publication signature."""

    slug: str
    version: str
    summary: str
    description: str
    changelog: str
    password: str
    reason: str
    licence: str = "CC-BY-4.0"
    tags: list[str] = []
    visibility: str = "private"


class PublicationOut(Struct):
    item_id: UUID
    slug: str
    version: str
    visibility: str
    published_at: datetime
