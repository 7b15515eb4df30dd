"""Exports: asking for one (a command: the row, its audit events and the ``exports.build``
job commit together), building it (the job, as the person who asked), waiting for it, and
reading one's own exports and their files.

An export is the asker's own: another person's export, like another tenant's, is a 404.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.audit import queries as audit_queries
from opencdmo.audit.service import record as audit
from opencdmo.batches import batchml, sponsor_view
from opencdmo.batches import export as batch_export
from opencdmo.batches import queries as batch_queries
from opencdmo.batches import record as batch_record
from opencdmo.db import jobs
from opencdmo.db.clock import database_now
from opencdmo.db.rows import columns, typed
from opencdmo.db.tx import tenant_transaction, unit_of_work
from opencdmo.errors import Forbidden, NotFound, ValidationFailed
from opencdmo.exports import audit_trail
from opencdmo.exports.tables import Export
from opencdmo.scope import TenantContext
from opencdmo.storage.blobs import blobs

JOB = "exports.build"
ENTITY = "export"
BATCH_RECORD = "batch_record_xml"
AUDIT_TRAIL = "audit_trail"
KINDS = (BATCH_RECORD, AUDIT_TRAIL)
XML = "application/xml"
NO_LONGER_PERMITTED = "You are no longer permitted to export this"
STOPPED = "The export stopped before it was built; export again."
POLL_SECONDS = 0.2
STATE_NAMES = {
    "queued": "Waiting to be built",
    "running": "Being built",
    "done": "Ready",
    "failed": "Failed",
}


@dataclass(frozen=True)
class ExportRow:
    id: UUID
    kind: str
    subject: Any
    requested_by: UUID
    requested_at: datetime
    state: str
    error: str | None
    storage_key: str | None
    file_name: str | None
    media_type: str | None
    size_bytes: int | None
    sha256: str | None
    finished_at: datetime | None

    @property
    def subject_dict(self) -> dict[str, Any]:
        kept = json.loads(self.subject) if isinstance(self.subject, str) else self.subject
        return dict(kept or {})

    @property
    def state_name(self) -> str:
        """The state in words, for people."""
        return STATE_NAMES.get(self.state, self.state)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    @property
    def title(self) -> str:
        if self.kind == BATCH_RECORD:
            return "Batch record (BatchML)"
        return f"Audit trail ({self.subject_dict.get('format', '').upper()})"


async def _row(export_id: UUID, *, lock: bool = False) -> ExportRow | None:
    query = Export.select(*columns(Export, ExportRow)).where(Export.id == export_id)
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    return None if raw is None else typed(ExportRow, raw)


async def _update(export_id: UUID, values: dict[str, Any]) -> None:
    changes = {getattr(Export, k): v for k, v in values.items()}
    await Export.update(changes).where(Export.id == export_id)


def _batch_id(subject: dict[str, Any]) -> UUID:
    raw = subject.get("batch_id")
    try:
        return UUID(str(raw))
    except ValueError:
        raise ValidationFailed(
            f"batch_id: '{raw}' is not a batch id.", details={"field": "batch_id"}
        ) from None


def audit_subject(ctx: TenantContext, raw: dict[str, Any]) -> dict[str, Any]:
    """An audit trail export's format and filter from what was asked (checked: a bad filter
    is a 422 that says what is wrong)."""
    fmt = raw.get("format") or "csv"
    if fmt not in audit_trail.FORMATS:
        raise ValidationFailed(
            f"format: '{fmt}' is not one of csv, json.", details={"field": "format"}
        )
    texts: dict[str, str | None] = {}
    for name in ("actor", "entity", "action", "since", "until"):
        value = raw.get(name)
        if value is not None and not isinstance(value, str):
            raise ValidationFailed(f"'{name}' must be text.", details={"field": name})
        texts[name] = value
    flt = audit_queries.parse_filter(
        ctx, texts["actor"], texts["entity"], texts["action"], texts["since"], texts["until"]
    )
    return audit_trail.subject(flt, str(fmt))


async def request(ctx: TenantContext, kind: str, subject: dict[str, Any]) -> ExportRow:
    """Ask for an export of ``kind``: authorized as its page is, its subject checked in this
    tenant (another tenant's batch is a 404), then the row, the audit events and the job in
    one unit of work."""
    if kind not in KINDS:
        raise ValidationFailed(
            f"kind: '{kind}' is not one of {', '.join(KINDS)}.", details={"field": "kind"}
        )
    if ctx.user_id is None:
        raise Forbidden("Only a person may ask for an export.")
    export_id = uuid.uuid4()
    shared = None
    if kind == BATCH_RECORD and subject.get("shared"):
        # a batch made for us by a CDMO partner: named by sponsor_batches(), read in the CDMO
        shared = await sponsor_view.shared_batch(ctx, _batch_id(subject))
    async with unit_of_work(ctx):
        if shared is not None:
            await authorize(ctx, "partners", "read")
            kept: dict[str, Any] = {
                "batch_id": str(shared.batch_id),
                "number": shared.number,
                "shared": True,
            }
        elif kind == BATCH_RECORD:
            batch_id = _batch_id(subject)
            batch = await batch_queries.batch(batch_id)
            await authorize(ctx, "batches", "read", site_id=batch.site_id)
            kept = {"batch_id": str(batch_id), "number": batch.number}
        else:
            await authorize(ctx, "audit", "export")
            kept = audit_subject(ctx, subject)
            await audit(ctx, "audit.exported", "audit_trail", ctx.slug, new=kept)
        await Export.insert(
            Export(
                tenant_id=ctx.tenant_id,
                id=export_id,
                kind=kind,
                subject=json.dumps(kept),
                requested_by=ctx.user_id,
                requested_at=database_now(),
            )
        )
        await audit(ctx, "export.requested", ENTITY, export_id, new={"kind": kind, **kept})
        await jobs.enqueue_for(ctx, JOB, {"export_id": str(export_id)})
        found = await _row(export_id)
    assert found is not None
    return found


async def get(ctx: TenantContext, export_id: UUID) -> ExportRow:
    """One's own export (anyone else's, another tenant's: 404)."""
    async with tenant_transaction(ctx):
        found = await _row(export_id)
    if found is None or found.requested_by != ctx.user_id:
        raise NotFound("No such export.")
    return found


async def mine(ctx: TenantContext, limit: int = 200) -> list[ExportRow]:
    """One's own exports, newest first."""
    async with tenant_transaction(ctx):
        raw = (
            await Export.select(*columns(Export, ExportRow))
            .where(Export.requested_by == ctx.user_id)
            .order_by(Export.requested_at, ascending=False)
            .limit(limit)
        )
    return [typed(ExportRow, r) for r in raw]


async def wait(ctx: TenantContext, export_id: UUID, seconds: float) -> ExportRow:
    """The export once built or failed, or as it is after ``seconds``."""
    waited = 0.0
    found = await get(ctx, export_id)
    while not found.finished and waited < seconds:
        await asyncio.sleep(POLL_SECONDS)
        waited += POLL_SECONDS
        found = await get(ctx, export_id)
    return found


async def open_file(ctx: TenantContext, export_id: UUID) -> tuple[ExportRow, Any]:
    """One's own built export and a stream of its stored file (blocking reads: read it in a
    thread); the download is recorded (``export.downloaded``)."""
    found = await get(ctx, export_id)
    if found.state != "done" or found.storage_key is None:
        raise NotFound("This export has no file yet.")
    stream = await blobs().open(ctx, found.storage_key)
    async with unit_of_work(ctx):
        await audit(ctx, "export.downloaded", ENTITY, export_id, new={"sha256": found.sha256})
    return found, stream


async def failed(ctx: TenantContext, export_id: UUID, error: str) -> None:
    """Mark an export failed with why, in words (a done one stays done)."""
    async with unit_of_work(ctx):
        found = await _row(export_id, lock=True)
        if found is None or found.state == "done":
            return
        await _update(export_id, {"state": "failed", "error": error[:4000]})
        await audit(ctx, "export.failed", ENTITY, export_id, new={"error": error[:4000]})


def _write(path: Path, data: bytes) -> None:
    with path.open("ab") as out:
        out.write(data)


async def _build_file(ctx: TenantContext, found: ExportRow) -> tuple[Any, str, str]:
    """The stored blob, file name and media type of the export (built as ``ctx``'s actor:
    the reads check the permission again)."""
    subject = found.subject_dict
    if found.kind == BATCH_RECORD and subject.get("shared"):
        record = await sponsor_view.shared_record(ctx, _batch_id(subject), found.requested_at)
        blob = await blobs().put(ctx, record.xml)
        return blob, f"{record.number}-batch-production-record.xml", XML
    if found.kind == BATCH_RECORD:
        full = await batch_record.read(ctx, _batch_id(subject))
        xml = await asyncio.to_thread(
            lambda: batchml.to_batchml(batch_export.document(full, found.requested_at))
        )
        blob = await blobs().put(ctx, xml)
        return blob, f"{full.batch.number}-batch-production-record.xml", XML
    async with tenant_transaction(ctx):
        await authorize(ctx, "audit", "export")
    flt, fmt = audit_trail.from_subject(subject)
    handle, name = tempfile.mkstemp(prefix="opencdmo-export-")
    os.close(handle)
    path = Path(name)
    try:
        async for chunk in audit_trail.chunks(ctx, flt, fmt):
            await asyncio.to_thread(_write, path, chunk)
        blob = await blobs().adopt(ctx, path)  # moves the file into place (or removes it)
    finally:
        await asyncio.to_thread(path.unlink, True)
    return blob, audit_trail.file_name(ctx, fmt), audit_trail.media_type(fmt)


async def build(ctx: TenantContext, export_id: UUID) -> None:
    """Build the export and mark it done (with its audit event, in one unit of work).
    Idempotent: a done (or failed) export is left as it is; a rebuild after a crash stores
    the same bytes under the same content key. A person who lost the permission gets a
    failed export that says so."""
    async with unit_of_work(ctx):
        found = await _row(export_id, lock=True)
        if found is None or found.finished:
            return
        await _update(export_id, {"state": "running"})
    try:
        blob, name, media = await _build_file(ctx, found)
    except Forbidden:
        await failed(ctx, export_id, NO_LONGER_PERMITTED + " (" + found.title + ").")
        return
    except NotFound as exc:
        await failed(ctx, export_id, exc.message)
        return
    async with unit_of_work(ctx):
        again = await _row(export_id, lock=True)
        if again is None or again.finished:
            return
        await _update(
            export_id,
            {
                "state": "done",
                "storage_key": blob.key,
                "file_name": name,
                "media_type": media,
                "size_bytes": blob.size,
                "sha256": blob.sha256,
                "finished_at": database_now(),
                "error": None,
            },
        )
        await audit(
            ctx,
            "export.completed",
            ENTITY,
            export_id,
            new={"file_name": name, "size_bytes": blob.size, "sha256": blob.sha256},
        )


async def request_again(ctx: TenantContext, found: ExportRow) -> ExportRow:
    """A new export of the same kind and subject as ``found`` (Export again)."""
    subject = {k: v for k, v in found.subject_dict.items() if v is not None}
    return await request(ctx, found.kind, subject)
