"""Stored files as typed rows. Each function runs in the transaction open in its context;
row-level security keeps it inside the tenant (another tenant's file is not found)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from opencdmo.db.clock import database_now
from opencdmo.db.rows import columns, typed
from opencdmo.errors import NotFound
from opencdmo.storage.tables import StoredFile


@dataclass(frozen=True)
class StoredFileRow:
    id: UUID
    sha256: str
    size_bytes: int
    content_type: str
    filename: str
    storage_key: str
    uploaded_by: UUID
    uploaded_at: datetime


@dataclass(frozen=True)
class NewStoredFile:
    sha256: str
    size_bytes: int
    content_type: str
    filename: str
    storage_key: str


async def insert_file(tenant_id: UUID, new: NewStoredFile, uploaded_by: UUID) -> UUID:
    rows = await StoredFile.insert(
        StoredFile(
            tenant_id=tenant_id,
            sha256=new.sha256,
            size_bytes=new.size_bytes,
            content_type=new.content_type,
            filename=new.filename,
            storage_key=new.storage_key,
            uploaded_by=uploaded_by,
            uploaded_at=database_now(),
        )
    ).returning(StoredFile.id)
    found: UUID = rows[0]["id"]
    return found


async def stored_file(file_id: UUID) -> StoredFileRow:
    raw = await (
        StoredFile.select(*columns(StoredFile, StoredFileRow))
        .where(StoredFile.id == file_id)
        .first()
    )
    if raw is None:
        raise NotFound("No such stored file.")
    return typed(StoredFileRow, raw)


async def stored_files(ids: list[UUID]) -> dict[UUID, StoredFileRow]:
    if not ids:
        return {}
    rows = await StoredFile.select(*columns(StoredFile, StoredFileRow)).where(
        StoredFile.id.is_in(ids)
    )
    return {r["id"]: typed(StoredFileRow, r) for r in rows}
