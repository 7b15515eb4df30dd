"""API structs of the recipes context."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from msgspec import Meta, Struct

from opencdmo.fields import Name, Secret, Short, Text
from opencdmo.recipes.model import RecipeContent

Revision = Annotated[int, Meta(ge=1, le=2**31 - 1)]


class RecipeCreate(Struct, forbid_unknown_fields=True):
    name: Name
    product: Short = ""


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


class RevisionSave(Struct, forbid_unknown_fields=True):
    base_revision: Revision
    content: RecipeContent
    message: Short = ""


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


class SignRequest(Struct, forbid_unknown_fields=True):
    password: Secret
    reason: Text


class Transitioned(Struct):
    """The outcome of a lifecycle command: whether the recipe moved (an approval may be one of
    several the tenant's signature flow needs) and its status now."""

    moved: bool
    status: str


class FromHub(Struct, forbid_unknown_fields=True):
    hub_item_id: UUID
    version: Annotated[str, Meta(max_length=100)] | None = None


class Created(Struct):
    id: UUID


class RecipePublish(Struct, forbid_unknown_fields=True):
    """How the effective revision is listed on the HUB, and the publication signature."""

    slug: Annotated[str, Meta(max_length=80)]
    version: Annotated[str, Meta(max_length=100)]
    summary: Short
    description: Text
    changelog: Text
    password: Secret
    reason: Text
    licence: Annotated[str, Meta(max_length=100)] = "CC-BY-4.0"
    tags: Annotated[list[Annotated[str, Meta(max_length=60)]], Meta(max_length=50)] = []
    visibility: Annotated[str, Meta(max_length=20)] = "private"


class PublicationOut(Struct):
    item_id: UUID
    slug: str
    version: str
    visibility: str
    published_at: datetime


class GapOut(Struct):
    """An element of an imported BatchML document with no counterpart here, and why."""

    kind: str
    ref: str
    name: str
    reason: str


class BatchmlImportOut(Struct):
    """A draft master recipe imported from BatchML: the document, and its gap report."""

    id: UUID
    recipe_id: UUID
    recipe_name: str
    document_sha256: str
    document_id: str
    document_version: str
    document_name: str
    size_bytes: int
    imported_at: datetime
    gaps: list[GapOut]


class DocumentOut(Struct):
    """A document of a master recipe: its title and kind, its file (name, type, size and
    SHA-256), who attached it and when; who removed it, when and why (kept when removed)."""

    id: UUID
    recipe_id: UUID
    title: str
    kind: str
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    added_by: str
    added_at: datetime
    removed: bool
    removed_by: str | None
    removed_at: datetime | None
    removal_reason: str | None
    download: str


class DocumentRemove(Struct, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(max_length=1000)]
