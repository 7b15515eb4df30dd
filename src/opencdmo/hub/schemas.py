"""API structs of the HUB context."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from msgspec import Meta, Struct

from opencdmo.fields import Text


class ItemSummary(Struct):
    id: UUID
    kind: str
    slug: str
    name: str
    summary: str
    latest_version: str | None
    category: str | None
    modalities: list[str]
    publisher: str
    install_count: int
    updated_at: datetime
    installed_version: str | None = None  # the version this tenant installed, if it did


class FacetValue(Struct):
    value: str
    count: int
    label: str = ""  # the value's display name


class SearchPage(Struct):
    items: list[ItemSummary]
    total: int
    page: int
    per_page: int
    facets: dict[str, list[FacetValue]]


class VersionSummary(Struct):
    version: str
    content_hash: str
    changelog: str
    published_at: datetime
    deprecated_message: str | None
    yanked: bool


class Dependency(Struct):
    depth: int
    kind: str
    slug: str
    name: str
    version: str
    pinned: bool
    item_id: UUID


class ItemDetail(Struct):
    id: UUID
    kind: str
    slug: str
    name: str
    summary: str
    publisher: str
    visibility: str
    install_count: int
    latest_version: str | None
    versions: list[VersionSummary]
    dependencies: list[Dependency]
    content: dict[str, Any]
    installed_version: str | None = None  # the version this tenant installed, if it did


class LibraryEntry(Struct):
    id: UUID
    source: str
    hub_item_id: UUID
    kind: str
    slug: str
    name: str
    version: str
    content_hash: str
    update_available: bool
    available: str | None
    deprecated_message: str | None


class ChangeOut(Struct):
    op: str
    path: str
    old: Any = None
    new: Any = None


class UpgradePreview(Struct):
    installed: str
    target: str
    changes: list[ChangeOut]


Version = Annotated[str, Meta(max_length=100)]
Secret = Annotated[str, Meta(max_length=1024)]


class InstallRequest(Struct, forbid_unknown_fields=True):
    version: Version | None = None


class UpgradeRequest(Struct, forbid_unknown_fields=True):
    to: Version
    reason: Text | None = None


class Installed(Struct):
    installed: list[str]


class ForkEdit(Struct, forbid_unknown_fields=True):
    revision: Annotated[int, Meta(ge=1, le=2**31 - 1)]
    content: dict[str, Any]


class PublishRequest(Struct, forbid_unknown_fields=True):
    version: Version
    changelog: Text
    password: Secret
    reason: Text
    visibility: Annotated[str, Meta(max_length=20)] = "private"


class VisibilityRequest(Struct, forbid_unknown_fields=True):
    visibility: Annotated[str, Meta(max_length=20)]
    shared_with: Annotated[list[Annotated[str, Meta(max_length=100)]], Meta(max_length=1000)] = []


class VersionMark(Struct, forbid_unknown_fields=True):
    deprecated_message: Text | None = None
    yank: bool = False
    reason: Text | None = None  # recorded with the audit event
