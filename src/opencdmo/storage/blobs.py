"""The blob store: content-addressed bytes under a key of the tenant's own.

``put(ctx, data)`` stores the bytes and returns their key, SHA-256 and size; ``get(ctx, key)``
returns them only when they still hash to the SHA-256 their key names (a blob changed in
storage is refused, never served); ``exists(ctx, key)``. Files too large for memory:
``put_file(ctx, path_or_stream)`` streams them in (multipart on S3) and ``open(ctx, key)``
streams them out, checking the SHA-256 as they are read. The key is
``tenants/<tenant id>/<sha256>``, made from the scope's tenant: a key of another tenant (or
any other shape) is not found, whatever is stored under it.

Quarantine: an upload not verified yet is kept under ``quarantine/<tenant id>/<job id>``
(``quarantine``, ``open_quarantined``, ``local_quarantined``, ``discard``) until its job
verifies it (then it is stored under its content key with ``put_file`` and discarded) or
refuses it. No stored file row names such a key and ``get``/``open`` refuse it: it is never
served. ``quarantined()`` lists them all, for the sweep of those left behind.

The backend (``local.LocalBackend`` or ``s3.S3Backend``) is chosen once, when the app or the
CLI starts (``configure``); blocking work (files, boto3, hashing) runs off the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar, cast
from uuid import UUID

from opencdmo.errors import AppError, NotFound
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.storage.streams import CheckedReader, hash_file, spool

log = logging.getLogger("opencdmo.storage")
T = TypeVar("T")

KEY = re.compile(
    r"tenants/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/[0-9a-f]{64}"
)


class BlobCorrupted(AppError):
    """The stored bytes no longer hash to the SHA-256 they were stored under (or are gone)."""

    status_code = 500
    title = "Stored file damaged"


class StorageUnavailable(AppError):
    """The blob store did not answer (S3 down, a disk error): nothing was changed."""

    status_code = 503
    title = "Storage unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "5"})


@dataclass(frozen=True)
class Blob:
    key: str
    sha256: str
    size: int


class Backend(Protocol):
    """Where the bytes are kept: keys are checked by the store before they get here."""

    name: str

    def write(self, key: str, data: bytes) -> None: ...

    def read(self, key: str) -> bytes | None: ...

    def exists(self, key: str) -> bool: ...

    def write_stream(self, key: str, source: BinaryIO) -> None:
        """Store what ``source`` reads to its end, in bounded memory; all or nothing."""
        ...

    def write_file(self, key: str, path: Path) -> None:
        """Store a local file, streamed; all or nothing."""
        ...

    def move_file(self, key: str, path: Path) -> None:
        """Store a local file no one else writes and remove it (moved when it can be)."""
        ...

    def local_file(self, key: str) -> Path | None:
        """The stored file on this machine's disk, when the backend keeps one."""
        ...

    def delete(self, key: str) -> None:
        """Remove what is under ``key`` (only a blob that does not match its key)."""
        ...

    def open_read(self, key: str) -> BinaryIO | None: ...

    def listed(self, prefix: str) -> list[tuple[str, float]]:
        """The keys under ``prefix`` (a folder), each with its last change (epoch seconds)."""
        ...


QUARANTINE = "quarantine"
QUARANTINE_KEY = re.compile(
    r"quarantine/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/"
    r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)


@dataclass(frozen=True)
class Quarantined:
    """An upload kept until its job verifies it: its tenant, job and last change."""

    tenant_id: UUID
    job_id: UUID
    key: str
    changed_at: float  # epoch seconds


def quarantine_key(tenant_id: UUID, job_id: UUID) -> str:
    return f"{QUARANTINE}/{tenant_id}/{job_id}"


def tenant_key(tenant_id: UUID, sha256: str) -> str:
    return f"tenants/{tenant_id}/{sha256}"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def put(self, ctx: TenantContext, data: bytes) -> Blob:
        """Store ``data`` for the tenant (storing the same bytes again changes nothing)."""
        digest = await asyncio.to_thread(sha256_of, data)
        key = tenant_key(ctx.tenant_id, digest)
        await self._call(self.backend.write, key, data)
        return Blob(key, digest, len(data))

    async def get(self, ctx: TenantContext, key: str) -> bytes:
        """The bytes under the tenant's ``key``, checked against the SHA-256 it names."""
        expected = self._own(ctx, key)
        data = await self._call(self.backend.read, key)
        if data is None:
            log.error("blob missing from storage", extra={"key": key})
            raise BlobCorrupted(
                f"The stored file {expected[:12]}… is missing from storage; it cannot be "
                "served. Tell your administrator (the audit trail keeps its SHA-256)."
            )
        found = await asyncio.to_thread(sha256_of, data)
        if found != expected:
            raise _damaged(key, expected, found)
        return data

    async def put_file(self, ctx: TenantContext, source: Path | BinaryIO) -> Blob:
        """Store a file or a stream of any size, never whole in memory.

        The content address is known first: a path is hashed in one pass (a stream is spooled
        to a temporary file while it is hashed), then uploaded under its final key, streamed
        from disk. That costs a second local read rather than an upload to a temporary key
        and a copy inside the bucket (S3 has no rename). A caller's file that changed during
        the upload is hashed again after it: a mismatch removes what was stored and refuses
        (readers check the SHA-256 in any case, so such bytes are never served).
        """
        if isinstance(source, Path):
            return await self._put_path(ctx, source)
        # the source's own failures (a sender gone) are not the storage's: raised as they are
        path, _, _ = await asyncio.to_thread(spool, source)
        try:
            return await self._put_path(ctx, path)
        finally:
            await asyncio.to_thread(path.unlink, True)

    async def adopt(self, ctx: TenantContext, path: Path) -> Blob:
        """Store a temporary file this process wrote and no one else writes, and remove it:
        hashed once, then moved into place (no copy, no second hashing) where the backend
        can, uploaded and removed where it cannot."""
        digest, size = await self._call(hash_file, path)
        blob = Blob(tenant_key(ctx.tenant_id, digest), digest, size)
        if await self._call(self.backend.exists, blob.key):
            await asyncio.to_thread(path.unlink, True)
            return blob
        await self._call(self.backend.move_file, blob.key, path)
        return blob

    def local_file(self, ctx: TenantContext, key: str) -> Path | None:
        """The tenant's stored file on this machine's disk (read it, never write it), when
        the backend keeps one; None otherwise (read it with ``open``)."""
        self._own(ctx, key)
        return self.backend.local_file(key)

    async def _put_path(self, ctx: TenantContext, path: Path) -> Blob:
        digest, size = await self._call(hash_file, path)
        blob = Blob(tenant_key(ctx.tenant_id, digest), digest, size)
        if await self._call(self.backend.exists, blob.key):
            return blob
        await self._call(self.backend.write_file, blob.key, path)
        if (await self._call(hash_file, path))[0] != digest:
            await self._call(self.backend.delete, blob.key)
            raise FileChanged(f"The file {path.name} changed while it was stored; try again.")
        return blob

    def put_verified_blocking(
        self, ctx: TenantContext, source: BinaryIO, sha256: str, size: int
    ) -> Blob:
        """Store a stream whose SHA-256 and size are known before it is read (a member of a
        verified package), straight under its key in one pass, for code running in a worker
        thread: bytes that do not hash to ``sha256`` raise ``DigestMismatch`` and leave
        nothing stored (the backends write all or nothing)."""
        blob = Blob(tenant_key(ctx.tenant_id, sha256), sha256, size)
        if not self._blocking(self.backend.exists, blob.key):
            checked = cast(BinaryIO, CheckedReader(source, sha256))
            self._blocking(self.backend.write_stream, blob.key, checked)
        return blob

    async def open(self, ctx: TenantContext, key: str) -> CheckedReader:
        """A stream of the tenant's blob (blocking reads: read it in a worker thread); read
        to its end, bytes that do not match the key's SHA-256 raise ``BlobCorrupted``."""
        expected = self._own(ctx, key)
        return _checked(key, expected, await self._call(self.backend.open_read, key))

    def open_blocking(self, ctx: TenantContext, key: str) -> CheckedReader:
        """``open`` for code already running in a worker thread (a package being written
        streams its documents from here)."""
        expected = self._own(ctx, key)
        return _checked(key, expected, self._blocking(self.backend.open_read, key))

    async def exists(self, ctx: TenantContext, key: str) -> bool:
        self._own(ctx, key)
        return await self._call(self.backend.exists, key)

    async def quarantine(self, ctx: TenantContext, job_id: UUID, path: Path) -> str:
        """Keep a temporary file this process wrote (an upload) under the tenant's quarantine
        key of ``job_id``, and remove it (moved where the backend can); returns the key."""
        key = quarantine_key(ctx.tenant_id, job_id)
        await self._call(self.backend.move_file, key, path)
        return key

    def local_quarantined(self, ctx: TenantContext, job_id: UUID) -> Path | None:
        """The quarantined upload on this machine's disk (read it, never write it), when the
        backend keeps one; None otherwise (read it with ``open_quarantined``)."""
        return self.backend.local_file(quarantine_key(ctx.tenant_id, job_id))

    async def open_quarantined(self, ctx: TenantContext, job_id: UUID) -> BinaryIO | None:
        """A stream of the quarantined upload (blocking reads); None when it is gone."""
        return await self._call(self.backend.open_read, quarantine_key(ctx.tenant_id, job_id))

    async def discard(self, ctx: TenantContext, job_id: UUID) -> None:
        """Remove the quarantined upload of ``job_id`` (nothing happens when it is gone)."""
        await self._call(self.backend.delete, quarantine_key(ctx.tenant_id, job_id))

    async def discard_key(self, key: str) -> None:
        """Remove a quarantined upload by its key (its tenant gone: no scope names it)."""
        if not QUARANTINE_KEY.fullmatch(key):
            raise NotFound("No such quarantined upload.")
        await self._call(self.backend.delete, key)

    async def quarantined(self) -> list[Quarantined]:
        """Every quarantined upload of every tenant (the sweep's list)."""
        found = []
        for key, changed in await self._call(self.backend.listed, QUARANTINE):
            match = QUARANTINE_KEY.fullmatch(key)
            if match is not None:
                found.append(Quarantined(UUID(match[1]), UUID(match[2]), key, changed))
        return found

    def _own(self, ctx: TenantContext, key: str) -> str:
        """The SHA-256 the key names, when it is a key of the scope's tenant."""
        prefix = f"tenants/{ctx.tenant_id}/"
        if not KEY.fullmatch(key) or not key.startswith(prefix):
            raise NotFound("No such stored file.")
        return key.removeprefix(prefix)

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        """``function`` run in a worker thread (see ``_blocking``)."""
        return await asyncio.to_thread(self._blocking, function, *args)

    def _blocking(self, function: Callable[..., T], *args: Any) -> T:
        """A backend call; the storage's own failures are a 503 that changed nothing."""
        try:
            return function(*args)
        except StorageUnavailable:
            raise
        except OSError as exc:
            log.error("blob storage failed: %s", exc, extra={"backend": self.backend.name})
            raise StorageUnavailable(
                "The file storage did not answer; nothing was changed. Try again shortly."
            ) from exc


def _checked(key: str, expected: str, stream: BinaryIO | None) -> CheckedReader:
    if stream is None:
        log.error("blob missing from storage", extra={"key": key})
        raise BlobCorrupted(
            f"The stored file {expected[:12]}… is missing from storage; it cannot be "
            "served. Tell your administrator (the audit trail keeps its SHA-256)."
        )
    return CheckedReader(stream, expected, lambda found: _damaged(key, expected, found))


def _damaged(key: str, expected: str, found: str) -> BlobCorrupted:
    log.error("blob does not match its hash", extra={"key": key, "sha256": found})
    return BlobCorrupted(
        f"The stored file {expected[:12]}… does not match its SHA-256 (it hashes to "
        f"{found[:12]}…): it was changed or damaged in storage and is not served. "
        "Tell your administrator (the audit trail keeps the SHA-256 it was stored with)."
    )


class FileChanged(AppError):
    """The file given to ``put_file`` changed between its hashing and its upload."""

    status_code = 409
    title = "File changed"


_store: BlobStore | None = None


def store_for(settings: Settings) -> BlobStore:
    """S3 when a bucket is set, else the data directory's ``blobs`` folder."""
    if settings.s3_bucket:
        from opencdmo.storage.s3 import S3Backend

        return BlobStore(S3Backend.from_settings(settings))
    from opencdmo.storage.local import LocalBackend

    return BlobStore(LocalBackend(settings.data_dir / "blobs"))


def configure(settings: Settings) -> BlobStore:
    """Choose this process's blob store (the app and the CLI call it at start)."""
    return use(store_for(settings))


def use(store: BlobStore) -> BlobStore:
    global _store
    _store = store
    return store


def blobs() -> BlobStore:
    if _store is None:
        raise RuntimeError("the blob store is not configured: call storage.blobs.configure()")
    return _store
