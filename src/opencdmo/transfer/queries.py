"""Tech-transfer data access: typed rows, read and written in the transaction open in the
context (row-level security keeps every query inside the tenant)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from opencdmo.db.clock import database_now
from opencdmo.db.rows import columns, typed
from opencdmo.errors import NotFound
from opencdmo.transfer.tables import SigningKey, TransferPackage, TrustedKey


@dataclass(frozen=True)
class KeyRow:
    id: UUID
    algorithm: str
    public_key: bytes
    fingerprint: str
    encrypted_private_key: bytes
    nonce: bytes
    created_by: UUID | None
    created_at: datetime


@dataclass(frozen=True)
class TrustedRow:
    id: UUID
    fingerprint: str
    public_key: bytes
    label: str
    added_by: UUID
    added_at: datetime
    removed_by: UUID | None
    removed_at: datetime | None
    removal_reason: str | None

    @property
    def current(self) -> bool:
        return self.removed_at is None


@dataclass(frozen=True)
class PackageRow:
    id: UUID
    direction: str
    recipe_id: UUID | None
    revision: int | None
    content_hash: str
    sha256: str
    size_bytes: int
    status: str
    storage_key: str
    signature_id: UUID | None
    sender_fingerprint: str
    created_by: UUID
    created_at: datetime


def _key(raw: dict[str, object]) -> KeyRow:
    found = typed(KeyRow, raw)
    return KeyRow(
        **{
            **found.__dict__,
            "public_key": bytes(found.public_key),
            "encrypted_private_key": bytes(found.encrypted_private_key),
            "nonce": bytes(found.nonce),
        }
    )


async def signing_key() -> KeyRow | None:
    raw = await SigningKey.select(*columns(SigningKey, KeyRow)).first()
    return None if raw is None else _key(raw)


async def insert_key(
    tenant_id: UUID,
    public_key: bytes,
    fingerprint: str,
    sealed: bytes,
    nonce: bytes,
    by: UUID | None,
) -> UUID | None:
    """Insert the tenant's key; None when another was inserted first (one per tenant)."""
    rows = await (
        SigningKey.insert(
            SigningKey(
                tenant_id=tenant_id,
                algorithm="Ed25519",
                public_key=public_key,
                fingerprint=fingerprint,
                encrypted_private_key=sealed,
                nonce=nonce,
                created_by=by,
            )
        )
        .on_conflict(target=SigningKey.tenant_id, action="DO NOTHING")
        .returning(SigningKey.id)
    )
    return rows[0]["id"] if rows else None


def _trusted(raw: dict[str, object]) -> TrustedRow:
    found = typed(TrustedRow, raw)
    return TrustedRow(**{**found.__dict__, "public_key": bytes(found.public_key)})


async def insert_trusted(
    tenant_id: UUID, fingerprint: str, public_key: bytes, label: str, by: UUID
) -> UUID:
    rows = await TrustedKey.insert(
        TrustedKey(
            tenant_id=tenant_id,
            fingerprint=fingerprint,
            public_key=public_key,
            label=label,
            added_by=by,
        )
    ).returning(TrustedKey.id)
    found: UUID = rows[0]["id"]
    return found


async def trusted_key(key_id: UUID, *, lock: bool = False) -> TrustedRow:
    query = TrustedKey.select(*columns(TrustedKey, TrustedRow)).where(TrustedKey.id == key_id)
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    if raw is None:
        raise NotFound("No such trusted key.")
    return _trusted(raw)


async def current_trusted(fingerprint: str) -> TrustedRow | None:
    raw = await (
        TrustedKey.select(*columns(TrustedKey, TrustedRow))
        .where((TrustedKey.fingerprint == fingerprint) & TrustedKey.removed_at.is_null())
        .first()
    )
    return None if raw is None else _trusted(raw)


async def trusted_keys() -> list[TrustedRow]:
    """Every key the tenant trusts or trusted, the current ones first, newest first."""
    rows = await TrustedKey.select(*columns(TrustedKey, TrustedRow)).order_by(
        TrustedKey.added_at, ascending=False
    )
    return sorted((_trusted(r) for r in rows), key=lambda r: not r.current)


async def remove_trusted(key_id: UUID, by: UUID, reason: str) -> None:
    await TrustedKey.update(
        {
            TrustedKey.removed_by: by,
            TrustedKey.removed_at: database_now(),
            TrustedKey.removal_reason: reason,
        }
    ).where(TrustedKey.id == key_id)


@dataclass(frozen=True)
class NewPackage:
    id: UUID
    recipe_id: UUID
    revision: int
    content_hash: str
    sha256: str
    size_bytes: int
    storage_key: str
    signature_id: UUID
    sender_fingerprint: str


async def insert_sent(tenant_id: UUID, new: NewPackage, by: UUID) -> None:
    await TransferPackage.insert(
        TransferPackage(
            tenant_id=tenant_id,
            direction="sent",
            status="sent",
            created_by=by,
            **new.__dict__,
        )
    )


async def package(package_id: UUID) -> PackageRow:
    raw = await (
        TransferPackage.select(*columns(TransferPackage, PackageRow))
        .where(TransferPackage.id == package_id)
        .first()
    )
    if raw is None:
        raise NotFound("No such transfer package.")
    return typed(PackageRow, raw)


async def packages(recipe_id: UUID | None = None) -> list[PackageRow]:
    """The packages the tenant sent (of one recipe), newest first."""
    query = (
        TransferPackage.select(*columns(TransferPackage, PackageRow))
        .where(TransferPackage.direction == "sent")
        .order_by(TransferPackage.created_at, ascending=False)
    )
    if recipe_id is not None:
        query = query.where(TransferPackage.recipe_id == recipe_id)
    return [typed(PackageRow, r) for r in await query]


@dataclass(frozen=True)
class NewReceived:
    """A package received (and verified, or not yet): the sender's revision and content hash,
    the archive's hash, size and blob key, the sender's key."""

    id: UUID
    revision: int
    content_hash: str
    sha256: str
    size_bytes: int
    storage_key: str
    sender_fingerprint: str
    status: str = "received"


async def insert_received(tenant_id: UUID, new: NewReceived, by: UUID) -> None:
    await TransferPackage.insert(
        TransferPackage(tenant_id=tenant_id, direction="received", created_by=by, **new.__dict__)
    )


async def received(package_id: UUID, *, lock: bool = False) -> PackageRow:
    """A package the tenant received (a sent one, or none: not found)."""
    query = TransferPackage.select(*columns(TransferPackage, PackageRow)).where(
        (TransferPackage.id == package_id) & (TransferPackage.direction == "received")
    )
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    if raw is None:
        raise NotFound("No such transfer package.")
    return typed(PackageRow, raw)


async def set_status(package_id: UUID, status: str) -> None:
    await TransferPackage.update({TransferPackage.status: status}).where(
        TransferPackage.id == package_id
    )
