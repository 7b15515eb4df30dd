"""Importing a received package (``transfer:import``): when every gap is resolved, one unit of
work creates a DRAFT master recipe from the package's revision with the mapping applied (each
pin pointing at the tenant's own library item), records its lineage (the sender, package,
recipe, revision and content hash, the sender's content, the mapping as applied), sets the
package ``imported`` and audits it. A later package of a sender recipe imported before is a
new revision of the recipe it became. The draft then goes through the tenant's own approval
lifecycle.

Applying the mapping to the sender's content: a step, sampling point or release
specification keeps its pin when it maps onto a library item with identical content; mapped
onto another content (another version, an item installed from the HUB), it is pinned afresh
to that item's content and checked against it like any saved revision. A mapped equipment
class replaces the step's class.

The package's documents (SOPs, reports) come with it: each is streamed from the verified
package straight into the tenant's file storage under the SHA-256 the signed manifest gives
(before the unit of work: slow, content-addressed, harmless when the import then fails), and
attached to the recipe in the import's unit of work, each with its ``recipe.document_added``
event naming the package. A later package attaches only the documents the recipe does not
hold already (the same file under the same title); the recipe's other documents stay.
"""

from __future__ import annotations

import asyncio
import copy
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from uuid import UUID, uuid4

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db import jobs
from opencdmo.db.tx import read_view, unit_of_work
from opencdmo.errors import Conflict
from opencdmo.hub import library_queries as copies
from opencdmo.recipes import document_queries as recipe_documents
from opencdmo.recipes import documents as recipe_document
from opencdmo.recipes import queries as recipes
from opencdmo.recipes.service._pins import entries
from opencdmo.recipes.service._revisions import create_in, save_in
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.storage import queries as stored_files
from opencdmo.storage.blobs import Blob, blobs
from opencdmo.storage.queries import NewStoredFile
from opencdmo.transfer import gaps
from opencdmo.transfer import import_queries as iq
from opencdmo.transfer import queries as q
from opencdmo.transfer import receive_queries as rq
from opencdmo.transfer.gaps import GapReport
from opencdmo.transfer.import_queries import NewImport
from opencdmo.transfer.verify import ReceivedDocument

# Told how far the import is: the stage ("verify": the stored package read and checked again,
# "documents": its documents stored), the bytes done and the bytes of the stage in all.
ImportProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Imported:
    recipe_id: UUID
    revision: int
    new_recipe: bool


async def mapped_content(report: GapReport) -> dict[str, Any]:
    """The sender's content with the mapping applied (in the open transaction)."""
    content: dict[str, Any] = copy.deepcopy(report.contents.revision["content"])
    refs = {
        i["content_hash"]: f"{i['kind']}:{i['slug']}@{i['version']}" for i in report.contents.items
    }
    items = {i.ref: i for i in report.items}
    for _, entry in entries(content):
        item = items.get(refs.get(entry.get("content_hash"), ""))
        if item is None:
            continue  # pins nothing the package holds: the checks on save name it
        target = item.mapping.target_id if item.mapping is not None else item.library_id
        entry["library_item_id"] = str(target)
        chosen = await copies.stored_copy(target, lock=False) if target else None
        if chosen is None or chosen.content_hash != item.content_hash:
            entry.pop("content_hash", None)  # pinned afresh to the item's content
    classes = {e.slug: e.mapping.target for e in report.equipment if e.mapping is not None}
    for kind, entry in entries(content):
        if kind == "step" and entry.get("equipment_class") in classes:
            entry["equipment_class"] = classes[entry["equipment_class"]]
    return content


def _mapping(report: GapReport) -> list[dict[str, Any]]:
    return [g.mapping.applied() for g in report.gaps() if g.mapping is not None]


async def _into_recipe(ctx: TenantContext, report: GapReport, content: dict[str, Any]) -> Imported:
    revision = report.contents.revision
    message = (
        f"Imported from {report.sender}: {revision['name']} revision {revision['revision']} "
        f"(package {report.package.id})"
    )
    if report.previous is not None:
        recipe_id = report.previous.recipe_id
        row = await recipes.recipe(recipe_id, lock=True)
        saved = await save_in(ctx, recipe_id, content, row.current_revision, message)
        return Imported(recipe_id, saved, False)
    recipe_id = await create_in(ctx, revision["name"], revision["product"])
    return Imported(recipe_id, await save_in(ctx, recipe_id, content, 1, message), True)


class _Counted:
    """Reads through to a member of the package, telling ``told`` the bytes read so far."""

    def __init__(self, inner: IO[bytes], told: Callable[[int], None]) -> None:
        self.inner, self.told = inner, told

    def read(self, size: int = -1) -> bytes:
        chunk = self.inner.read(size)
        self.told(len(chunk))
        return chunk

    def readable(self) -> bool:
        return True


def _store_documents(
    ctx: TenantContext,
    path: Path,
    documents: list[ReceivedDocument],
    progress: ImportProgress | None,
) -> list[tuple[ReceivedDocument, Blob]]:
    """Each document of the verified package at ``path`` in the tenant's storage (blocking:
    run in a worker thread)."""
    total, done = sum(d.size for d in documents), [0]

    def told(read: int) -> None:
        done[0] += read
        if progress is not None and read:
            progress("documents", done[0], total)

    if progress is not None:
        progress("documents", 0, total)
    stored: list[tuple[ReceivedDocument, Blob]] = []
    with zipfile.ZipFile(path) as archive:
        for document in documents:
            with archive.open(document.path) as member:
                source: Any = _Counted(member, told)
                stored.append(
                    (
                        document,
                        blobs().put_verified_blocking(ctx, source, document.sha256, document.size),
                    )
                )
    return stored


def _filename(document: ReceivedDocument) -> str:
    """The file's name as the sender's member gives it (``documents/<nn>-<name>``)."""
    return document.path.removeprefix("documents/").split("-", 1)[-1]


async def _attach(
    ctx: TenantContext,
    recipe_id: UUID,
    stored: list[tuple[ReceivedDocument, Blob]],
    package_id: UUID,
) -> list[dict[str, Any]]:
    """The stored documents attached to the recipe (those it does not hold already), in the
    open unit of work, each audited; returns them as the import's event names them."""
    held = await recipe_documents.documents(recipe_id, removed=False)
    files = await stored_files.stored_files([d.file_id for d in held])
    have = {(files[d.file_id].sha256, d.title) for d in held if d.file_id in files}
    by = gaps.person(ctx)
    attached: list[dict[str, Any]] = []
    for document, blob in stored:
        if (blob.sha256, document.title) in have:
            continue
        have.add((blob.sha256, document.title))
        new = NewStoredFile(
            blob.sha256, blob.size, document.media_type, _filename(document), blob.key
        )
        file = await stored_files.stored_file(
            await stored_files.insert_file(ctx.tenant_id, new, by)
        )
        kind = recipe_document.check_kind(document.kind)
        document_id = await recipe_documents.insert_document(
            ctx.tenant_id, recipe_id, file.id, document.title, kind, by
        )
        values = {
            "document_id": str(document_id),
            "title": document.title,
            "kind": kind,
            "file": recipe_document.file_values(file),
            "from_package": str(package_id),
        }
        await audit.record(
            ctx, recipe_document.ADDED, recipe_document.ENTITY, recipe_id, new=values
        )
        attached.append(
            {"document_id": str(document_id), "title": document.title, "sha256": blob.sha256}
        )
    return attached


def _not_imported_yet(status: str) -> None:
    if status == "imported":
        raise Conflict("This package was imported already.")


async def import_package(
    settings: Settings,
    ctx: TenantContext,
    package_id: UUID,
    progress: ImportProgress | None = None,
) -> Imported:
    """Import the package as a draft (or a new revision), see the module. ``progress`` is
    told how far the stored package's check and its documents' storing are."""
    async with read_view(ctx):
        await authorize(ctx, "transfer", "import")
        row = await gaps.analysable(package_id)
        _not_imported_yet(row.status)
    verifying = None if progress is None else (lambda done, total: progress("verify", done, total))
    async with gaps.fetched(settings, ctx, row, verifying) as (path, contents):
        stored = await asyncio.to_thread(_store_documents, ctx, path, contents.documents, progress)
    async with unit_of_work(ctx):
        await authorize(ctx, "transfer", "import")
        row = await gaps.analysable(package_id, lock=True)
        _not_imported_yet(row.status)
        report = await gaps.report_in(row, contents)
        open_gaps = report.unresolved
        if open_gaps:
            raise Conflict(
                f"{len(open_gaps)} gap(s) are not resolved yet: {', '.join(open_gaps)}.",
                details={"unresolved": open_gaps},
            )
        made = await _into_recipe(ctx, report, await mapped_content(report))
        documents = await _attach(ctx, made.recipe_id, stored, package_id)
        sender, revision = contents.manifest.sender, contents.revision
        mapping = _mapping(report)
        await iq.insert_import(
            ctx.tenant_id,
            NewImport(
                package_id,
                made.recipe_id,
                made.revision,
                UUID(sender.tenant_id),
                sender.name,
                UUID(revision["recipe_id"]),
                revision["revision"],
                revision["content_hash"],
                revision["content"],
                mapping,
            ),
            gaps.person(ctx),
        )
        await q.set_status(package_id, "imported")
        await audit.record(
            ctx,
            "transfer.package_imported",
            "transfer_package",
            package_id,
            old={"status": row.status},
            new={
                "status": "imported",
                "recipe_id": str(made.recipe_id),
                "revision": made.revision,
                "new_recipe": made.new_recipe,
                "sender_tenant_id": sender.tenant_id,
                "sender": sender.name,
                "sender_recipe_id": revision["recipe_id"],
                "sender_revision": revision["revision"],
                "content_hash": revision["content_hash"],
                "mapping": mapping,
                "changes": report.changes,
                "documents": documents,
            },
        )
        return made


# --- the import as a job (the page's Import: a large package takes a while) ----------------

IMPORT_JOB = "transfer.import"
CHECKED_SHARE = 0.5  # of the bar: the stored package's check, then its documents stored


async def start_import(settings: Settings, ctx: TenantContext, package_id: UUID) -> UUID:
    """Ask the job worker to import the package: refused here and now (409, with the list)
    while a gap is open, when it is imported already or being imported; else its progress
    row and the ``transfer.import`` job in one unit of work. Returns the progress id."""
    async with read_view(ctx):
        await authorize(ctx, "transfer", "import")
        row = await gaps.analysable(package_id)
        _not_imported_yet(row.status)
    contents = await gaps.load(settings, ctx, row)
    job_id = uuid4()
    async with unit_of_work(ctx):
        await authorize(ctx, "transfer", "import")
        row = await gaps.analysable(package_id, lock=True)
        _not_imported_yet(row.status)
        open_gaps = (await gaps.report_in(row, contents)).unresolved
        if open_gaps:
            raise Conflict(
                f"{len(open_gaps)} gap(s) are not resolved yet: {', '.join(open_gaps)}.",
                details={"unresolved": open_gaps},
            )
        running = await rq.running_job(package_id)
        if running is not None and running.stage == "import":
            raise Conflict("This package is being imported already; the outcome shows here.")
        await rq.insert_job(ctx.tenant_id, job_id, "import", 0, gaps.person(ctx))
        await rq.update_job(job_id, {"package_id": package_id})
        args = {"package_id": str(package_id), "job_id": str(job_id)}
        await jobs.enqueue_for(ctx, IMPORT_JOB, args, dedupe_key=f"{IMPORT_JOB}:{job_id}")
    return job_id


async def _job_values(ctx: TenantContext, job_id: UUID, values: dict[str, Any]) -> None:
    async with unit_of_work(ctx):
        await rq.update_job(job_id, values)


async def run_import(
    settings: Settings, ctx: TenantContext, package_id: UUID, job_id: UUID
) -> Imported | None:
    """The worker's side of ``start_import``: the import with its progress kept in the job's
    row (one bar: the check of the stored package, then its documents), done or failed at
    the end. Idempotent: a package imported already (the job's earlier attempt committed)
    only marks the job done."""
    async with read_view(ctx):
        row = await q.received(package_id)
    if row.status == "imported":
        await _job_values(ctx, job_id, {"state": "done"})
        return None
    await _job_values(ctx, job_id, {"state": "running", "done_bytes": 0, "total_bytes": 100})
    seen = {"percent": 0}

    def told(stage: str, done: int, total: int) -> None:
        part = done / total if total else 1.0
        share = part * CHECKED_SHARE if stage == "verify" else CHECKED_SHARE + part / 2
        seen["percent"] = min(99, int(share * 100))

    task = asyncio.ensure_future(import_package(settings, ctx, package_id, told))
    shown = 0
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=0.5)
            if seen["percent"] != shown:
                shown = seen["percent"]
                await _job_values(ctx, job_id, {"done_bytes": shown})
        made = task.result()
    except BaseException:
        await _job_values(ctx, job_id, {"state": "failed"})
        raise
    await _job_values(ctx, job_id, {"state": "done", "done_bytes": 100})
    return made


async def last_import(ctx: TenantContext, package_id: UUID) -> tuple[Any, str | None] | None:
    """The package's latest import job, if its latest job is one, with the error in words
    when it failed (the person may press Import again)."""
    async with read_view(ctx) as conn:
        await authorize(ctx, "transfer", "import")
        found = await rq.latest_job(package_id)
        if found is None or found.stage != "import":
            return None
        error = None
        if found.state == "failed":
            queued = await jobs.by_key(ctx.tenant_id, f"{IMPORT_JOB}:{found.id}", conn)
            error = (queued.error if queued is not None else None) or (
                "The import stopped before the end."
            )
        return found, error
