"""Files of a tenant: the blob written first (``put``: before any transaction, it is slow and
content-addressed, so a command that then rolls back leaves only an unreferenced blob), its
row recorded inside the caller's unit of work (``record``), and read back verified (``read``).

These are inner services: the context that owns the file's meaning (a lot's certificate of
analysis) authorises the caller and writes the audit event with the file's SHA-256.
"""

from __future__ import annotations

from uuid import UUID

from opencdmo.db.tx import joined, tenant_transaction
from opencdmo.errors import Forbidden
from opencdmo.scope import TenantContext
from opencdmo.storage import queries
from opencdmo.storage.blobs import Blob, blobs
from opencdmo.storage.queries import NewStoredFile, StoredFileRow
from opencdmo.storage.uploads import Upload


async def put(ctx: TenantContext, upload: Upload) -> Blob:
    """The upload's bytes in the tenant's blob store (no transaction may be open)."""
    return await blobs().put(ctx, upload.data)


async def record(ctx: TenantContext, blob: Blob, upload: Upload) -> StoredFileRow:
    """The stored file's row, in the caller's open unit of work."""
    if ctx.user_id is None:
        raise Forbidden("Only a signed-in person uploads files.")
    async with joined(ctx):
        new = NewStoredFile(blob.sha256, blob.size, upload.content_type, upload.filename, blob.key)
        return await queries.stored_file(await queries.insert_file(ctx.tenant_id, new, ctx.user_id))


async def stored_files(ctx: TenantContext, ids: list[UUID]) -> dict[UUID, StoredFileRow]:
    async with tenant_transaction(ctx):
        return await queries.stored_files(ids)


async def read(ctx: TenantContext, file_id: UUID) -> tuple[StoredFileRow, bytes]:
    """The file's row and its bytes, checked against the SHA-256 they were stored with."""
    async with tenant_transaction(ctx):
        row = await queries.stored_file(file_id)
    return row, await blobs().get(ctx, row.storage_key)
