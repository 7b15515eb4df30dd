"""Data access for received packages, sends to partners and verification jobs (in the
transaction open in the context; row-level security keeps each query inside the tenant)."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from opencdmo.db import sql
from opencdmo.db.clock import database_now
from opencdmo.db.rows import columns, typed
from opencdmo.errors import NotFound
from opencdmo.transfer.tables import TransferJob, TransferPackage, TransferSend


@dataclass(frozen=True)
class ReceivedRow:
    id: UUID
    direction: str
    status: str
    revision: int | None
    content_hash: str
    sha256: str
    size_bytes: int
    storage_key: str
    sender_fingerprint: str
    sender_tenant_id: UUID | None
    sender_name: str
    recipe_name: str
    partner_link_id: UUID | None
    findings: Any
    manifest: Any
    status_reason: str | None
    verified_by: UUID | None
    created_by: UUID
    created_at: datetime
    status_changed_at: datetime

    @property
    def finding_list(self) -> list[dict[str, Any]]:
        found = json.loads(self.findings) if isinstance(self.findings, str) else self.findings
        return list(found or [])

    @property
    def manifest_dict(self) -> dict[str, Any] | None:
        found = json.loads(self.manifest) if isinstance(self.manifest, str) else self.manifest
        return dict(found) if found else None


@dataclass(frozen=True)
class SendRow:
    id: UUID
    package_id: UUID
    receiver_tenant_id: UUID
    receiver_name: str
    partner_link_id: UUID
    sent_by: UUID
    sent_by_name: str
    sent_at: datetime


@dataclass(frozen=True)
class JobRow:
    id: UUID
    package_id: UUID | None
    stage: str
    done_bytes: int
    total_bytes: int
    state: str
    started_by: UUID
    started_at: datetime
    updated_at: datetime
    findings: Any = None
    error: str | None = None

    @property
    def finding_list(self) -> list[dict[str, Any]]:
        found = json.loads(self.findings) if isinstance(self.findings, str) else self.findings
        return list(found or [])


@dataclass(frozen=True)
class ReceiverStatus:
    package_id: UUID
    receiver_tenant_id: UUID
    status: str
    status_reason: str | None
    status_changed_at: datetime


async def received(package_id: UUID, *, lock: bool = False) -> ReceivedRow:
    query = (
        TransferPackage.select(*columns(TransferPackage, ReceivedRow))
        .where(TransferPackage.id == package_id)
        .where(TransferPackage.direction == "received")
    )
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    if raw is None:
        raise NotFound("No such received package.")
    return typed(ReceivedRow, raw)


async def exists(package_id: UUID) -> bool:
    return bool(await TransferPackage.exists().where(TransferPackage.id == package_id))


async def inbox() -> list[ReceivedRow]:
    rows = (
        await TransferPackage.select(*columns(TransferPackage, ReceivedRow))
        .where(TransferPackage.direction == "received")
        .order_by(TransferPackage.created_at, ascending=False)
    )
    return [typed(ReceivedRow, r) for r in rows]


async def insert_received(tenant_id: UUID, values: dict[str, Any]) -> None:
    findings = values.pop("findings", [])
    manifest = values.pop("manifest", None)
    await TransferPackage.insert(
        TransferPackage(
            tenant_id=tenant_id,
            direction="received",
            findings=json.dumps(findings),
            manifest=None if manifest is None else json.dumps(manifest),
            status_changed_at=database_now(),
            **values,
        )
    )


async def set_status(
    package_id: UUID,
    status: str,
    findings: list[dict[str, Any]],
    reason: str | None,
    by: UUID | None,
    manifest: dict[str, Any] | None = None,
) -> None:
    await TransferPackage.update(
        {
            TransferPackage.manifest: None if manifest is None else json.dumps(manifest),
            TransferPackage.status: status,
            TransferPackage.findings: json.dumps(findings),
            TransferPackage.status_reason: reason,
            TransferPackage.verified_by: by,
            TransferPackage.status_changed_at: database_now(),
        }
    ).where(TransferPackage.id == package_id)


async def sends(package_id: UUID | None = None) -> list[SendRow]:
    query = TransferSend.select(*columns(TransferSend, SendRow)).order_by(
        TransferSend.sent_at, ascending=False
    )
    if package_id is not None:
        query = query.where(TransferSend.package_id == package_id)
    return [typed(SendRow, r) for r in await query]


async def insert_send(tenant_id: UUID, new: SendRow) -> None:
    values = {f.name: getattr(new, f.name) for f in fields(SendRow) if f.name != "sent_at"}
    await TransferSend.insert(TransferSend(tenant_id=tenant_id, sent_at=database_now(), **values))


# Raw SQL: a set-returning function (the receivers' status of the packages sent, migration
# 0034), which Piccolo's query builder does not call.
_STATUSES = (
    f"SELECT {', '.join(f.name for f in fields(ReceiverStatus))} FROM sent_package_statuses()"
)
# Raw SQL: a set-returning function (the active partners' signing keys, migration 0034).
_PARTNER_KEYS = "SELECT fingerprint FROM trusted_partner_keys()"


async def receiver_statuses() -> dict[tuple[UUID, UUID], ReceiverStatus]:
    rows = await sql.connection().fetch(_STATUSES)
    found = [typed(ReceiverStatus, r) for r in rows]
    return {(s.package_id, s.receiver_tenant_id): s for s in found}


async def partner_fingerprints() -> set[str]:
    return {r["fingerprint"] for r in await sql.connection().fetch(_PARTNER_KEYS)}


async def insert_job(tenant_id: UUID, job_id: UUID, stage: str, total: int, by: UUID) -> None:
    await TransferJob.insert(
        TransferJob(
            tenant_id=tenant_id,
            id=job_id,
            stage=stage,
            total_bytes=total,
            started_by=by,
            started_at=database_now(),
            updated_at=database_now(),
        )
    )


async def update_job(job_id: UUID, values: dict[str, Any]) -> None:
    if "findings" in values:
        values = {**values, "findings": json.dumps(values["findings"])}
    changes = {getattr(TransferJob, k): v for k, v in values.items()}
    await TransferJob.update({**changes, TransferJob.updated_at: database_now()}).where(
        TransferJob.id == job_id
    )


async def job(job_id: UUID, *, lock: bool = False) -> JobRow:
    query = TransferJob.select(*columns(TransferJob, JobRow)).where(TransferJob.id == job_id)
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    if raw is None:
        raise NotFound("No such verification.")
    return typed(JobRow, raw)


async def job_exists(job_id: UUID) -> bool:
    return bool(await TransferJob.exists().where(TransferJob.id == job_id))


async def running_job(package_id: UUID) -> JobRow | None:
    raw = (
        await TransferJob.select(*columns(TransferJob, JobRow))
        .where((TransferJob.package_id == package_id) & (TransferJob.state == "running"))
        .first()
    )
    return None if raw is None else typed(JobRow, raw)


async def latest_job(package_id: UUID) -> JobRow | None:
    raw = (
        await TransferJob.select(*columns(TransferJob, JobRow))
        .where(TransferJob.package_id == package_id)
        .order_by(TransferJob.started_at, ascending=False)
        .first()
    )
    return None if raw is None else typed(JobRow, raw)
