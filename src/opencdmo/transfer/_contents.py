"""The content-level checks of package verification: the manifest's file list (each path of
its role's shape, once), each member against its entry (size, SHA-256, no nested archive,
no YAML), then the JSON and XML members parsed strictly."""

from __future__ import annotations

import json
import re
import zipfile
from collections import Counter
from typing import Any, Final

import msgspec
from lxml import etree

from opencdmo.canonical import canonical_json, content_hash
from opencdmo.transfer._archive import Limits, Problem, nested_kind
from opencdmo.transfer.format import (
    BATCHML,
    DOCUMENT_KINDS,
    DOCUMENT_NAME,
    ITEM_NAME,
    MANIFEST,
    QA,
    REVISION,
    SIGNATURE,
    FileEntry,
    Manifest,
    package_digest,
)

REVISION_KEYS: Final = {"recipe_id", "name", "product", "revision", "content", "content_hash"}
ITEM_KEYS: Final = {"kind", "slug", "version", "content_hash", "content"}
DTD: Final = re.compile(rb"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)
YAML: Final = (".yaml", ".yml")


def listing_problems(manifest: Manifest) -> list[Problem]:
    """The manifest's file list: each path once, of its role's shape; one revision, one QA
    signature file, at most one BatchML document."""
    found: list[Problem] = []
    counts = Counter(f.path for f in manifest.files)
    for path, count in counts.items():
        if path in (MANIFEST, SIGNATURE):
            found.append(
                Problem("manifest_invalid", f"The manifest lists {path!r} among its files.", path)
            )
        elif count > 1:
            found.append(Problem("manifest_invalid", f"The manifest lists {path!r} twice.", path))
    for entry in manifest.files:
        why = _shape_problem(entry.role, entry.path, entry)
        if why:
            found.append(Problem("manifest_invalid", f"{entry.path!r}: {why}.", entry.path))
    roles: Counter[str] = Counter(f.role for f in manifest.files)
    for role, wanted in (("revision", 1), ("signatures", 1)):
        if roles[role] != wanted:
            found.append(
                Problem(
                    "manifest_invalid",
                    f"The manifest lists {roles[role]} files of role {role}; a package has "
                    f"exactly {wanted}.",
                )
            )
    return found


def _shape_problem(role: str, path: str, entry: FileEntry) -> str | None:
    if path.lower().endswith(YAML):
        return "YAML is never accepted in a package"
    if role != "document" and entry.title is not None:
        return "only a document has a title"
    fixed = {"revision": REVISION, "batchml": BATCHML, "signatures": QA}
    if role in fixed:
        return None if path == fixed[role] else f"a {role} file is {fixed[role]}"
    if role == "document":
        return _document_problem(path, entry)
    match = ITEM_NAME.fullmatch(path)
    if match is None:
        return "an item is items/<kind>/<slug>@<version>.json"
    named = (match["kind"], match["slug"], match["version"])
    if named != (entry.kind, entry.slug, entry.version) or entry.content_hash is None:
        return "its kind, slug, version and content_hash must be given and match its path"
    return None


def _document_problem(path: str, entry: FileEntry) -> str | None:
    if not DOCUMENT_NAME.fullmatch(path):
        return "a document is documents/<nn>-<name>"
    if entry.title is None or entry.kind not in DOCUMENT_KINDS:
        return "a document has a title and a kind (" + ", ".join(DOCUMENT_KINDS) + ")"
    if (entry.slug, entry.version, entry.content_hash) != (None, None, None):
        return "a document has no slug, version or content_hash"
    return None


def keeps(entry: FileEntry, limits: Limits) -> bool:
    """Whether the member is read into memory to be parsed (JSON and XML, bounded)."""
    return entry.role != "document" and entry.size <= max(limits.max_json, limits.max_xml)


def member_problems(
    entry: FileEntry, info: zipfile.ZipInfo, size: int, sha256: str, head: bytes
) -> list[Problem]:
    path = entry.path
    found: list[Problem] = []
    if info.file_size != entry.size:
        found.append(
            Problem(
                "size_mismatch",
                f"{path}: the archive declares {info.file_size} bytes, the manifest {entry.size}.",
                path,
            )
        )
    elif sha256 and size != entry.size:
        found.append(
            Problem("size_mismatch", f"{path}: {size} bytes, the manifest says {entry.size}.", path)
        )
    elif sha256 and sha256 != entry.sha256:
        found.append(
            Problem(
                "hash_mismatch",
                f"{path}: its SHA-256 is {sha256}, the manifest says {entry.sha256}: the file "
                "was changed.",
                path,
            )
        )
    kind = nested_kind(head)
    if kind is not None:
        found.append(
            Problem(
                "nested_archive",
                f"{path} is {kind}: archives inside a package are refused.",
                path,
            )
        )
    return found


def parse(
    manifest: Manifest, data: dict[str, bytes | None], limits: Limits
) -> tuple[dict[str, Any], list[dict[str, Any]], bytes | None] | list[Problem]:
    """The revision, the items and the BatchML bytes; or what is wrong with them."""
    found: list[Problem] = []
    revision = _json(data.get(REVISION), REVISION, limits, REVISION_KEYS, found)
    if revision is not None:
        found += _revision_problems(manifest, revision)
    items: list[dict[str, Any]] = []
    for entry in manifest.files:
        if entry.role != "item":
            continue
        item = _json(data.get(entry.path), entry.path, limits, ITEM_KEYS, found)
        if item is None:
            continue
        expected = (entry.kind, entry.slug, entry.version, entry.content_hash)
        if (item["kind"], item["slug"], item["version"], item["content_hash"]) != expected:
            found.append(
                Problem(
                    "item_mismatch", f"{entry.path}: not the item the manifest names.", entry.path
                )
            )
        elif content_hash(item["content"]) != item["content_hash"]:
            found.append(
                Problem(
                    "hash_mismatch",
                    f"{entry.path}: its content does not hash to its content_hash.",
                    entry.path,
                )
            )
        items.append(item)
    found += _approval_problems(manifest, data.get(QA), limits)
    batchml = data.get(BATCHML)
    if batchml is not None:
        found += _xml_problems(batchml, limits)
    return found or (revision or {}, items, batchml)


def _json(
    data: bytes | None, path: str, limits: Limits, keys: set[str], found: list[Problem]
) -> dict[str, Any] | None:
    """A JSON object decoded strictly: bounded, UTF-8, canonical (sorted keys, no space, so
    no duplicate key hides), with exactly the expected keys."""
    if data is None or len(data) > limits.max_json:
        found.append(Problem("oversized", f"{path} is larger than {limits.max_json} bytes.", path))
        return None
    try:
        value = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        found.append(Problem("invalid_json", f"{path} is not valid JSON: {exc}.", path))
        return None
    if not isinstance(value, dict) or set(value) != keys:
        found.append(
            Problem(
                "invalid_json",
                f"{path} must be a JSON object with exactly the keys {', '.join(sorted(keys))}.",
                path,
            )
        )
        return None
    try:
        canonical = canonical_json(value).encode() == data
    except (ValueError, RecursionError):
        canonical = False
    if not canonical:
        found.append(
            Problem(
                "invalid_json",
                f"{path} is not canonical JSON (sorted keys, no spaces, each key once).",
                path,
            )
        )
        return None
    return value


def _revision_problems(manifest: Manifest, revision: dict[str, Any]) -> list[Problem]:
    recipe = manifest.recipe
    named = {
        "recipe_id": recipe.id,
        "name": recipe.name,
        "product": recipe.product,
        "revision": recipe.revision,
        "content_hash": recipe.content_hash,
    }
    wrong = [k for k, v in named.items() if revision.get(k) != v]
    if wrong:
        return [
            Problem(
                "revision_mismatch",
                f"{REVISION}: its {', '.join(wrong)} differ from the manifest's recipe.",
                REVISION,
            )
        ]
    if content_hash(revision["content"]) != recipe.content_hash:
        return [
            Problem(
                "hash_mismatch",
                f"{REVISION}: the content does not hash to the revision's content_hash.",
                REVISION,
            )
        ]
    return []


def _approval_problems(manifest: Manifest, data: bytes | None, limits: Limits) -> list[Problem]:
    if manifest.approval is None:
        return [Problem("no_approval", "The manifest has no QA approval.", MANIFEST)]
    found: list[Problem] = []
    if manifest.approval.digest != package_digest(manifest):
        found.append(
            Problem(
                "approval_mismatch",
                "The QA approval signs another package digest than this package's.",
                MANIFEST,
            )
        )
    try:
        qa = json.loads(data or b"") if data is not None and len(data) <= limits.max_json else None
    except (ValueError, RecursionError):
        qa = None
    if qa != msgspec.to_builtins(manifest.approval):
        found.append(Problem("approval_mismatch", f"{QA} is not the manifest's QA approval.", QA))
    return found


def _xml_problems(data: bytes, limits: Limits) -> list[Problem]:
    """BatchML: no DTD, entity or other declaration at all (billion laughs, external
    entities), parsed without resolving entities, without the network, bounded."""
    if len(data) > limits.max_xml:
        return [Problem("oversized", f"{BATCHML} is larger than {limits.max_xml} bytes.", BATCHML)]
    if DTD.search(data):
        return [
            Problem(
                "xml_dtd",
                f"{BATCHML} has a DTD or entity declaration: refused (entities can expand "
                "without bound or read other files).",
                BATCHML,
            )
        ]
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        return [Problem("invalid_xml", f"{BATCHML} is not well-formed XML: {exc}.", BATCHML)]
    info = root.getroottree().docinfo
    if info.internalDTD is not None or info.doctype:
        return [Problem("xml_dtd", f"{BATCHML} has a document type declaration.", BATCHML)]
    return []
