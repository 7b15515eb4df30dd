"""Exporting a master recipe for tech transfer: the EFFECTIVE revision only, approved for
transfer by QA (``transfer:export``, a Part 11 signature with the password; the recipe's
author cannot sign it).

Order of work (ARCHITECTURE.md section 4): the revision and its pinned content are read; the
password is re-entered (a wrong one leaves nothing behind); the signature is given its id
and the database's time (``signatures.queries.slot``) so that the package can carry it; the
archive is written streaming to a temporary file in the data directory and stored as a
blob (content-addressed: harmless if the command then fails); then one unit of work, with
the recipe locked and its effective revision checked unchanged, writes the signature, the
``transfer_packages`` row and the audit event together.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from opencdmo.access.service import authorize
from opencdmo.access.sod import check_author_may_not_approve
from opencdmo.audit import service as audit
from opencdmo.db.tx import read_view, unit_of_work
from opencdmo.errors import Conflict, NotFound
from opencdmo.recipes import documents as recipe_documents
from opencdmo.recipes import queries as recipes
from opencdmo.recipes.batchml_recipe import RecipeHead, revision_to_batchml
from opencdmo.recipes.batchml_recipe import service as batchml_service
from opencdmo.recipes.documents import DocumentView
from opencdmo.recipes.service import STATUS_NAMES, InForce
from opencdmo.recipes.service._pins import entries, pinned_of
from opencdmo.recipes.tables import PinnedContent
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.signatures import queries as signature_queries
from opencdmo.signatures import service as signatures
from opencdmo.signatures.service import SignedRecord
from opencdmo.storage.blobs import Blob, blobs
from opencdmo.storage.streams import CHUNK
from opencdmo.transfer import build, keys
from opencdmo.transfer import queries as q
from opencdmo.transfer.format import (
    MEANING,
    Approval,
    Key,
    Manifest,
    RecipeRef,
    Sender,
    digest_document,
    package_digest,
)
from opencdmo.transfer.queries import NewPackage, PackageRow

RECORD_TYPE = "transfer_package"
ENTITY = "transfer_package"


@dataclass(frozen=True)
class Exported:
    package: PackageRow
    manifest: Manifest


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _in_force(ctx: TenantContext, recipe_id: UUID, *, lock: bool) -> InForce:
    row = await recipes.recipe(recipe_id, lock=lock)
    if row.effective_revision is None:
        state = STATUS_NAMES.get(row.status, row.status)
        raise Conflict(
            f"This recipe is {state} with no effective revision: only an effective revision "
            "is exported for tech transfer.",
            details={"status": row.status},
        )
    content = await recipes.content(row.id, row.effective_revision)
    hashed = await recipes.stored_hash(row.id, row.effective_revision)
    return InForce(row, row.effective_revision, content, hashed, await pinned_of(content))


async def _items(content: dict[str, Any]) -> list[dict[str, Any]]:
    """Each library item the revision pinned, with its content exactly as it was pinned."""
    hashes = sorted(
        {e["content_hash"] for _, e in entries(content) if isinstance(e.get("content_hash"), str)}
    )
    if not hashes:
        return []
    rows = await PinnedContent.select(
        PinnedContent.content_hash,
        PinnedContent.kind,
        PinnedContent.slug,
        PinnedContent.version,
        PinnedContent.content,
    ).where(PinnedContent.content_hash.is_in(hashes))
    return [
        {
            "kind": r["kind"],
            "slug": r["slug"],
            "version": r["version"],
            "content_hash": r["content_hash"],
            "content": json.loads(r["content"]),
        }
        for r in rows
    ]


def _batchml(source: InForce, names: dict[str, str], at: datetime) -> bytes:
    """The revision as ISA-88 BatchML (``recipe/batchml.xml``)."""
    row = source.recipe
    head = RecipeHead(
        str(row.id),
        row.name,
        row.product,
        source.revision,
        "effective",
        source.content_hash,
        effective_at=row.effective_at,
    )
    return revision_to_batchml(head, source.content, source.pinned, exported_at=at, names=names)


def _chunks(ctx: TenantContext, key: str) -> Callable[[], Iterator[bytes]]:
    """A stored document's bytes, streamed from the blob store in the worker thread that
    writes the package; bytes that no longer match their SHA-256 stop the export."""

    def chunks() -> Iterator[bytes]:
        with blobs().open_blocking(ctx, key) as reader:
            while block := reader.read(CHUNK):
                yield block

    return chunks


async def _documents(ctx: TenantContext, recipe_id: UUID) -> list[DocumentView]:
    """The recipe's documents not removed, as they are when the package is written: the
    package carries the recipe's current documents with its effective revision (documents
    belong to the recipe, not to one revision; QA signs the manifest that lists each by
    SHA-256, so what was sent is on record either way)."""
    return await recipe_documents.documents(ctx, recipe_id, removed=False)


def _document(ctx: TenantContext, view: DocumentView) -> build.Document:
    stored = view.file
    return build.Document(
        stored.filename,
        stored.content_type,
        _chunks(ctx, stored.storage_key),
        view.row.title,
        view.row.kind,
    )


def _carried(views: list[DocumentView]) -> list[dict[str, str]]:
    """The documents as the export's audit event names them."""
    return [{"document_id": str(v.row.id), "sha256": v.file.sha256} for v in views]


async def store_package(ctx: TenantContext, path: Path) -> Blob:
    """The one place a package file goes into the blob store (no transaction may be open)."""
    return await blobs().put_file(ctx, path)


async def package_chunks(ctx: TenantContext, row: PackageRow) -> AsyncIterator[bytes]:
    """The stored package's bytes in chunks, never whole in memory; read to the end, bytes
    that do not match the SHA-256 raise ``BlobCorrupted`` (a download is cut short, and its
    ``X-Content-SHA256`` names the hash it should have)."""
    stream = await blobs().open(ctx, row.storage_key)
    try:
        while chunk := await asyncio.to_thread(stream.read, CHUNK):
            yield chunk
    finally:
        await asyncio.to_thread(stream.close)


async def package_bytes(ctx: TenantContext, row: PackageRow) -> bytes:
    """The stored package's bytes, checked against their SHA-256 (small packages, tests)."""
    return b"".join([chunk async for chunk in package_chunks(ctx, row)])


async def write_package(ctx: TenantContext, row: PackageRow, out: Path) -> None:
    """The stored package written to ``out``, streamed."""
    handle = await asyncio.to_thread(out.open, "wb")
    try:
        async for chunk in package_chunks(ctx, row):
            await asyncio.to_thread(handle.write, chunk)
    finally:
        await asyncio.to_thread(handle.close)


def _sender(ctx: TenantContext, public: keys.PublicKey) -> Sender:
    key = Key("Ed25519", public.base64, public.fingerprint)
    return Sender(str(ctx.tenant_id), ctx.slug, ctx.name, ctx.kind, key)


def _temporary(settings: Settings) -> Path:
    """A new empty file in the data directory's ``transfer-tmp`` folder (never a path the
    package names)."""
    folder = settings.data_dir / "transfer-tmp"
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="package-", suffix=".zip", dir=folder)
    os.close(handle)
    return Path(name)


def _written(
    path: Path,
    manifest: Manifest,
    members: list[build.Member],
    approval: Approval,
    key: Ed25519PrivateKey,
    created: datetime,
) -> tuple[Manifest, int]:
    with path.open("wb") as out:
        final = build.write(out, manifest, members, approval, key, created)
    return final, path.stat().st_size


async def export_package(
    settings: Settings, ctx: TenantContext, recipe_id: UUID, password: str, reason: str
) -> Exported:
    """Export the recipe's effective revision as a signed package (see the module)."""
    async with read_view(ctx):
        await authorize(ctx, "transfer", "export")
        source = await _in_force(ctx, recipe_id, lock=False)
        items = await _items(source.content)
        names = await batchml_service.library_names()
        attached = await _documents(ctx, recipe_id)
    check_author_may_not_approve(source.recipe.author_id, ctx.user_id, MEANING)
    signing = await signatures.prepare(settings, ctx, MEANING, reason, password)
    slot = await signature_queries.slot()
    public, private = await keys.key_for_export(settings, ctx)
    row = source.recipe
    ref = RecipeRef(str(row.id), row.name, row.product, source.revision, source.content_hash)
    created = slot.signed_at  # the database's time, as every time the package records
    batchml = _batchml(source, names, created)
    carried = [_document(ctx, v) for v in attached]
    src = build.Source(_sender(ctx, public), ref, source.content, items, carried, batchml)
    package_id = uuid4()
    members = await asyncio.to_thread(build.members_of, src)
    manifest = build.unsigned(src, str(package_id), rfc3339(created), members)
    record = SignedRecord(
        RECORD_TYPE, str(package_id), "1", row.author_id, digest_document(manifest)
    )
    approval = Approval(
        signing.signer_name,
        MEANING,
        signing.reason,
        rfc3339(slot.signed_at),
        str(slot.id),
        package_digest(manifest),
    )
    path = await asyncio.to_thread(_temporary, settings)
    try:
        final, size = await asyncio.to_thread(
            _written, path, manifest, members, approval, private, created
        )
        blob = await store_package(ctx, path)
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)
    async with unit_of_work(ctx):
        await authorize(ctx, "transfer", "export")
        locked = await _in_force(ctx, recipe_id, lock=True)
        if (locked.revision, locked.content_hash) != (source.revision, source.content_hash):
            raise Conflict(
                "The recipe's effective revision changed while the package was being written; "
                "export it again."
            )
        if _carried(await _documents(ctx, recipe_id)) != _carried(attached):
            raise Conflict(
                "The recipe's documents changed while the package was being written; export "
                "it again."
            )
        signature = await signatures.apply(ctx, signing, record, slot=slot)
        new = NewPackage(
            package_id,
            row.id,
            source.revision,
            source.content_hash,
            blob.sha256,
            size,
            blob.key,
            signature.id,
            public.fingerprint,
        )
        assert signing.signer_id is not None
        await q.insert_sent(ctx.tenant_id, new, signing.signer_id)
        await audit.record(
            ctx,
            "transfer.package_exported",
            ENTITY,
            package_id,
            new={
                "recipe_id": str(row.id),
                "recipe": row.name,
                "revision": source.revision,
                "content_hash": source.content_hash,
                "sha256": blob.sha256,
                "size": size,
                "signature_id": str(signature.id),
                "digest": approval.digest,
                "fingerprint": public.fingerprint,
                "files": len(final.files),
                "documents": _carried(attached),
            },
            reason=signing.reason,
        )
        return Exported(await q.package(package_id), final)


async def sent_package(ctx: TenantContext, package_id: UUID) -> PackageRow:
    """A package the tenant sent (``transfer:export``)."""
    async with read_view(ctx):
        await authorize(ctx, "transfer", "export")
        row = await q.package(package_id)
    if row.direction != "sent":
        raise NotFound("No such transfer package.")
    return row


async def package_of(ctx: TenantContext, package_id: UUID) -> tuple[PackageRow, bytes]:
    """A package the tenant sent, with its bytes (``transfer:export``)."""
    row = await sent_package(ctx, package_id)
    return row, await package_bytes(ctx, row)


async def packages(ctx: TenantContext, recipe_id: UUID | None = None) -> list[PackageRow]:
    async with read_view(ctx):
        await authorize(ctx, "transfer", "export")
        if recipe_id is not None:
            await recipes.recipe(recipe_id)
        return await q.packages(recipe_id)
