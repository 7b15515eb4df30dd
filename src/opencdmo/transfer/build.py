"""Assembling a package from what it holds (pure: no database, no storage).

``members_of(source)`` lists the members with their manifest entries (documents hashed by
streaming them once); ``unsigned(...)`` is the manifest without its approval, whose
``package_digest`` the QA e-signature signs; ``write(...)`` adds the approval and its file,
signs the manifest with the sender's Ed25519 key and writes the archive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from opencdmo.canonical import canonical_json
from opencdmo.transfer import package
from opencdmo.transfer.format import (
    BATCHML,
    MEDIA_JSON,
    MEDIA_XML,
    QA,
    REVISION,
    Approval,
    FileEntry,
    Manifest,
    RecipeRef,
    Sender,
    b64,
    document_path,
    encode_manifest,
    item_path,
)
from opencdmo.transfer.package import Member

__all__ = ["Document", "Member", "Source", "members_of", "unsigned", "write"]


@dataclass(frozen=True)
class Document:
    """A document the package carries: its file name (reduced for its member name), type,
    title and kind (``format.DOCUMENT_KINDS``), and its bytes, streamed (called twice)."""

    filename: str
    media_type: str
    chunks: Callable[[], Iterator[bytes]]
    title: str
    kind: str


@dataclass(frozen=True)
class Source:
    sender: Sender
    recipe: RecipeRef
    content: dict[str, Any]
    items: list[dict[str, Any]]  # each: kind, slug, version, content_hash, content
    documents: list[Document]
    batchml: bytes | None


def _json_member(path: str, value: Any, role: str, **named: Any) -> Member:
    data = canonical_json(value).encode()
    size, digest = package.hashed((data,))
    entry = FileEntry(path, size, digest, MEDIA_JSON, role, **named)  # type: ignore[arg-type]
    return Member(entry, package.from_bytes(data))


def members_of(source: Source) -> list[Member]:
    """Every member but the QA signature file, in the order they are written."""
    recipe = source.recipe
    revision = {
        "recipe_id": recipe.id,
        "name": recipe.name,
        "product": recipe.product,
        "revision": recipe.revision,
        "content": source.content,
        "content_hash": recipe.content_hash,
    }
    members = [_json_member(REVISION, revision, "revision")]
    for item in sorted(source.items, key=lambda i: (i["kind"], i["slug"], i["version"])):
        path = item_path(item["kind"], item["slug"], item["version"])
        named = {k: item[k] for k in ("kind", "slug", "version", "content_hash")}
        members.append(_json_member(path, item, "item", **named))
    for number, document in enumerate(source.documents, start=1):
        size, digest = package.hashed(document.chunks())
        path = document_path(number, document.filename)
        entry = FileEntry(
            path, size, digest, document.media_type, "document", document.kind, title=document.title
        )
        members.append(Member(entry, document.chunks))
    if source.batchml is not None:
        size, digest = package.hashed((source.batchml,))
        entry = FileEntry(BATCHML, size, digest, MEDIA_XML, "batchml")
        members.append(Member(entry, package.from_bytes(source.batchml)))
    return members


def unsigned(source: Source, package_id: str, created_at: str, members: list[Member]) -> Manifest:
    return Manifest(
        format="opencdmo-transfer-package/1",
        package_id=package_id,
        created_at=created_at,
        sender=source.sender,
        recipe=source.recipe,
        files=[m.entry for m in members],
    )


def write(
    out: BinaryIO,
    manifest: Manifest,
    members: list[Member],
    approval: Approval,
    key: Ed25519PrivateKey,
    when: datetime,
) -> Manifest:
    """The archive, with the approval block and file; returns the final manifest."""
    qa = canonical_json(msgspec.to_builtins(approval)).encode()
    size, digest = package.hashed((qa,))
    qa_member = Member(
        FileEntry(QA, size, digest, MEDIA_JSON, "signatures"), package.from_bytes(qa)
    )
    final = msgspec.structs.replace(
        manifest, files=[*manifest.files, qa_member.entry], approval=approval
    )
    data = encode_manifest(final)
    signature = b64(key.sign(data)).encode()
    package.write_archive(out, data, signature, [*members, qa_member], when)
    return final
