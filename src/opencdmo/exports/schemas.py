"""The exports API's bodies and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from msgspec import Meta, Struct

Filter = Annotated[str, Meta(max_length=200)]


class ExportSubjectIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """What to export: a batch (``batch_record_xml``; ``shared``: a batch a CDMO partner
    made for us, its released record shared with us), or the audit trail's format and
    filter (``audit_trail``: as ``GET .../audit/export`` takes them)."""

    batch_id: UUID | None = None
    shared: bool = False  # the batch is a CDMO partner's, made for us (its shared record)
    format: Literal["csv", "json"] | None = None
    actor: Filter | None = None
    entity: Filter | None = None
    action: Filter | None = None
    since: Filter | None = None
    until: Filter | None = None


class ExportIn(Struct, forbid_unknown_fields=True):
    """An export to build: its kind and its subject."""

    kind: Literal["batch_record_xml", "audit_trail"]
    subject: ExportSubjectIn


class ExportLinks(Struct):
    self: str
    page: str
    file: str | None


class ExportOut(Struct, kw_only=True):
    """An export: its state (queued, running, done, failed), why it failed, and once done
    its file's name, media type, size and SHA-256 (download it from ``links.file``)."""

    id: UUID
    kind: str
    subject: dict[str, Any]
    state: str
    error: str | None
    requested_by: UUID
    requested_at: datetime
    finished_at: datetime | None
    file_name: str | None
    media_type: str | None
    size_bytes: int | None
    sha256: str | None
    links: ExportLinks
