"""The tech-transfer package format ``opencdmo-transfer-package/1`` (docs/transfer-package.md).

A ZIP archive whose first member is ``manifest.json`` and second ``manifest.sig`` (the
sender's Ed25519 signature, base64, over the exact bytes of ``manifest.json``); then the
files the manifest lists, each with its size, SHA-256, media type and role. The manifest is
a typed struct, decoded strictly (unknown fields, wrong types and oversized fields refused).

The QA e-signature ("approved for transfer") signs the *package digest*: the SHA-256 of the
canonical JSON of the manifest without its ``approval`` block and without the entry of
``signatures/qa.json`` (which holds that signature, so it cannot be part of what it signs).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Annotated, Any, Final, Literal

import msgspec

from opencdmo.canonical import canonical_json

FORMAT: Final = "opencdmo-transfer-package/1"
MEANING: Final = "approved for transfer"
MANIFEST: Final = "manifest.json"
SIGNATURE: Final = "manifest.sig"
REVISION: Final = "recipe/revision.json"
BATCHML: Final = "recipe/batchml.xml"
QA: Final = "signatures/qa.json"

# Member names: relative, "/"-separated segments of a strict alphabet, bounded.
NAME_MAX: Final = 200
SEGMENT: Final = r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}"
SAFE_NAME: Final = re.compile(rf"{SEGMENT}(?:/{SEGMENT}){{0,3}}")
ITEM_NAME: Final = re.compile(
    r"items/(?P<kind>[a-z][a-z_]{0,39})/(?P<slug>[a-z0-9][a-z0-9-]{0,79})"
    r"@(?P<version>[0-9A-Za-z][0-9A-Za-z.+-]{0,39})\.json"
)
DOCUMENT_NAME: Final = re.compile(r"documents/[0-9]{2}-[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

ROLES: Final = ("revision", "item", "document", "batchml", "signatures")
# A document's kind (its manifest entry's ``kind``).
DOCUMENT_KINDS: Final = ("sop", "development_report", "risk_assessment", "other")
MEDIA_JSON: Final = "application/json"
MEDIA_XML: Final = "application/xml"

Hex64 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
LongText = Annotated[str, msgspec.Meta(max_length=2000)]
Uuid = Annotated[
    str, msgspec.Meta(pattern="^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
Instant = Annotated[
    str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
]
Path = Annotated[str, msgspec.Meta(min_length=1, max_length=NAME_MAX)]
Size = Annotated[int, msgspec.Meta(ge=0, le=2**40)]


class Key(msgspec.Struct, forbid_unknown_fields=True):
    algorithm: Literal["Ed25519"]
    public_key: Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9+/]{43}=$")]
    fingerprint: Hex64


class Sender(msgspec.Struct, forbid_unknown_fields=True):
    tenant_id: Uuid
    slug: Annotated[str, msgspec.Meta(pattern="^[a-z0-9][a-z0-9-]{0,62}$")]
    name: Text
    kind: Text
    key: Key


class RecipeRef(msgspec.Struct, forbid_unknown_fields=True):
    id: Uuid
    name: Text
    product: Annotated[str, msgspec.Meta(max_length=200)]
    revision: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
    content_hash: Hex64


class Approval(msgspec.Struct, forbid_unknown_fields=True):
    signer_name: Text
    meaning: Literal["approved for transfer"]
    reason: LongText
    signed_at: Instant
    signature_id: Uuid
    digest: Hex64


class FileEntry(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    path: Path
    size: Size
    sha256: Hex64
    media_type: Text
    role: Literal["revision", "item", "document", "batchml", "signatures"]
    kind: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    slug: Annotated[str, msgspec.Meta(max_length=80)] | None = None
    version: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    content_hash: Hex64 | None = None
    title: Text | None = None  # a document's title (documents only, required there)


class Manifest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    format: Literal["opencdmo-transfer-package/1"]
    package_id: Uuid
    created_at: Instant
    sender: Sender
    recipe: RecipeRef
    files: Annotated[list[FileEntry], msgspec.Meta(max_length=10_000)]
    approval: Approval | None = None


MANIFEST_DECODER: Final = msgspec.json.Decoder(Manifest, strict=True)


def encode_manifest(manifest: Manifest) -> bytes:
    """The manifest's bytes as written (canonical JSON, UTF-8): these bytes are signed."""
    return canonical_json(msgspec.to_builtins(manifest)).encode()


def digest_document(manifest: Manifest) -> dict[str, Any]:
    """What the QA e-signature signs: the manifest without its approval block and without
    the entry of the file that holds the approval."""
    body: dict[str, Any] = msgspec.to_builtins(manifest)
    body.pop("approval", None)
    body["files"] = [f for f in body["files"] if f["role"] != "signatures"]
    return body


def package_digest(manifest: Manifest) -> str:
    """The SHA-256 (hex) of the canonical JSON of ``digest_document``."""
    return hashlib.sha256(canonical_json(digest_document(manifest)).encode()).hexdigest()


def fingerprint(raw_public_key: bytes) -> str:
    """A public key's fingerprint: the SHA-256 (hex) of its 32 raw bytes."""
    return hashlib.sha256(raw_public_key).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def item_path(kind: str, slug: str, version: str) -> str:
    return f"items/{kind}/{slug}@{version}.json"


def document_path(number: int, filename: str) -> str:
    """``documents/<nn>-<safe name>``: the file's name reduced to the safe alphabet."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", filename).strip("-._") or "document"
    return f"documents/{number:02d}-{cleaned[:100]}"


def path_problem(name: str) -> str | None:
    """Why a member name is not allowed (None: it is a safe name)."""
    if len(name) > NAME_MAX:
        return f"is longer than {NAME_MAX} characters"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "is an absolute path"
    if any(part in ("..", ".") for part in name.split("/")):
        return "climbs out of the archive (a '..' or '.' segment)"
    if name.endswith("/"):
        return "is a directory entry"
    if not SAFE_NAME.fullmatch(name):
        return "has characters outside the safe set (A-Z a-z 0-9 . _ @ + - and '/')"
    return None
