"""Verifying a tech-transfer package before anything else is done with it: streaming, member
by member from the archive file, never extracting anything to a path, writing nothing.

``verify_file(path, trusted)`` returns the findings (each a code, a message naming the
problem and the member) and, when there are none, the parsed ``PackageContents``. Checked in
order, stopping where going on would mean trusting what failed:

1. the archive: a ZIP at all (not truncated), its entry count and declared sizes bounded,
   every name safe (no ``..``, absolute or drive paths, backslashes), unique even after
   case folding and Unicode normalisation, every entry a regular file (no symbolic or hard
   links, directories, devices), not encrypted, stored or deflated, no entry overlapping
   another, no compression-ratio bomb;
2. ``manifest.json`` first and ``manifest.sig`` second; the manifest decoded strictly;
3. the Ed25519 signature over the manifest's exact bytes by the key the manifest names
   (its fingerprint the SHA-256 of the raw key), and that key trusted;
4. every member listed in the manifest and every listed file in the archive, each read
   while its size and SHA-256 are computed, reading stopped past its declared size; no
   member an archive or compressed file itself; no YAML;
5. the contents: the revision and each item canonical JSON whose content hashes to its
   declared hash, BatchML XML without a DTD or entities, the QA signature file equal to
   the manifest's approval, whose digest is the package's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zipfile
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from opencdmo.transfer import _archive, _contents
from opencdmo.transfer._archive import MAGIC_SPAN, Limits, Problem
from opencdmo.transfer.format import (
    MANIFEST,
    MANIFEST_DECODER,
    SIGNATURE,
    Manifest,
    fingerprint,
)

__all__ = ["Finding", "Limits", "PackageContents", "Progress", "Unreadable", "Verification"]

Finding = Problem
# Called while members are read: (bytes verified so far, bytes the archive declares).
Progress = Callable[[int, int], None]


class Unreadable(Exception):
    """The input cannot be read at all (no such file, a directory, no permission)."""


@dataclass(frozen=True)
class ReceivedDocument:
    """A document of a valid package: its member, size and SHA-256 (as verified), type,
    title and kind (as the signed manifest names them)."""

    path: str
    size: int
    sha256: str
    media_type: str
    title: str
    kind: str


@dataclass(frozen=True)
class PackageContents:
    """What a valid package holds, for the receiving side."""

    manifest: Manifest
    revision: dict[str, Any]
    items: list[dict[str, Any]]
    documents: list[ReceivedDocument]
    batchml: bytes | None


@dataclass(frozen=True)
class Verification:
    findings: list[Finding]
    contents: PackageContents | None = None
    manifest: Manifest | None = None  # decoded, even when later checks failed
    members: int = 0
    verified_bytes: int = 0

    @property
    def valid(self) -> bool:
        return not self.findings and self.contents is not None

    @property
    def fingerprint(self) -> str | None:
        return self.manifest.sender.key.fingerprint if self.manifest else None


@dataclass
class _Read:
    size: int = 0
    sha256: str = ""
    head: bytes = b""
    data: bytes | None = None
    problem: Finding | None = None


@dataclass
class _Run:
    limits: Limits
    progress: Progress | None = None
    declared: int = 0
    inflated: int = 0
    findings: list[Finding] = field(default_factory=list)


def verify_file(
    path: Path,
    trusted: Collection[str] | None,
    limits: Limits | None = None,
    progress: Progress | None = None,
) -> Verification:
    """Verify the package at ``path``; ``trusted``: the fingerprints of the sender keys to
    accept (None: leave the key's trust to the caller, which checks ``fingerprint``);
    ``progress``: told how far reading is, after each chunk."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise Unreadable(f"{path}: {exc.strerror or exc}") from None
    with handle:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise Unreadable(f"{path}: {exc.strerror or exc}") from None
        return _verify(handle, size, trusted, _Run(limits or Limits(), progress))


def _verify(
    handle: IO[bytes], size: int, trusted: Collection[str] | None, run: _Run
) -> Verification:
    limits = run.limits
    record = _archive.directory_size(handle, size)
    if record is None:
        return _refused(
            "not_a_zip",
            "The file is not a ZIP archive, or it is truncated (it has no end of central "
            "directory record).",
        )
    entries, directory_bytes, directory_start = record
    if entries > limits.max_entries or directory_bytes > limits.max_entries * 1024:
        return _refused(
            "entry_bomb",
            f"The archive declares {entries} entries; a package has at most {limits.max_entries}.",
        )
    handle.seek(0)
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
        return _refused("not_a_zip", f"The file is not a readable ZIP archive: {exc}.")
    with archive:
        return _checked(archive, directory_start, trusted, run)


def _refused(code: str, message: str, member: str | None = None) -> Verification:
    return Verification([Finding(code, message, member)])


def _checked(
    archive: zipfile.ZipFile, directory_start: int, trusted: Collection[str] | None, run: _Run
) -> Verification:
    infos = archive.infolist()
    structural = _archive.names_problems(infos)
    for info in infos:
        structural += _archive.entry_problems(info, run.limits)
    structural += _archive.layout_problems(infos, directory_start)
    total = _archive.total_problem(infos, run.limits)
    if total is not None:
        structural.append(total)
    if structural:
        return Verification(structural)
    run.declared = sum(i.file_size for i in infos)
    order = [i.filename for i in infos[:2]]
    if order != [MANIFEST, SIGNATURE]:
        return _refused(
            "manifest_order",
            f"The archive must begin with {MANIFEST} then {SIGNATURE}; it begins with "
            f"{', '.join(order) or 'nothing'}.",
        )
    manifest_bytes = _whole(archive, infos[0], run.limits.max_manifest, run)
    signature = _whole(archive, infos[1], run.limits.max_signature, run)
    if run.findings or manifest_bytes is None or signature is None:
        return Verification(run.findings)
    try:
        manifest = MANIFEST_DECODER.decode(manifest_bytes)
    except (msgspec.DecodeError, RecursionError) as exc:
        return _refused("manifest_invalid", f"The manifest does not match the format: {exc}.")
    problem = _signature_problem(manifest, manifest_bytes, signature, trusted)
    if problem is not None and problem.code != "untrusted_key":
        return Verification([problem], manifest=manifest)
    if problem is not None:
        run.findings.append(problem)
    return _members(archive, infos[2:], manifest, run)


def _signature_problem(
    manifest: Manifest, data: bytes, signature: bytes, trusted: Collection[str] | None
) -> Finding | None:
    key = manifest.sender.key
    raw = base64.b64decode(key.public_key)
    if fingerprint(raw) != key.fingerprint:
        return Finding(
            "bad_fingerprint",
            "The manifest's key fingerprint is not the SHA-256 of its public key.",
            MANIFEST,
        )
    try:
        sig = base64.b64decode(signature.strip(), validate=True)
        Ed25519PublicKey.from_public_bytes(raw).verify(sig, data)
    except (binascii.Error, ValueError, InvalidSignature):
        return Finding(
            "bad_signature",
            "The manifest's signature does not verify with the sender's key: the manifest "
            "was changed after it was signed, or signed by another key.",
            SIGNATURE,
        )
    if trusted is not None and key.fingerprint not in trusted:
        return Finding(
            "untrusted_key",
            f"The sender's key {key.fingerprint} ({manifest.sender.name}) is not trusted "
            "here: trust it by its fingerprint first.",
            SIGNATURE,
        )
    return None


def _members(
    archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], manifest: Manifest, run: _Run
) -> Verification:
    listed = {entry.path: entry for entry in manifest.files}
    run.findings += _contents.listing_problems(manifest)
    present = {info.filename for info in infos}
    for info in infos:
        if info.filename not in listed:
            run.findings.append(
                Finding(
                    "unlisted_member",
                    f"The archive holds {info.filename!r}, which the manifest does not list.",
                    info.filename,
                )
            )
    for path in listed:
        if path not in present:
            run.findings.append(
                Finding(
                    "missing_member",
                    f"The manifest lists {path!r}, which is not in the archive.",
                    path,
                )
            )
    reads: dict[str, _Read] = {}
    verified = 0
    for info in infos:
        entry = listed.get(info.filename)
        if entry is None:
            continue
        read = _stream(archive, info, entry.size, _contents.keeps(entry, run.limits), run)
        reads[info.filename] = read
        verified += read.size
        run.findings += _contents.member_problems(entry, info, read.size, read.sha256, read.head)
        if read.problem is not None:
            run.findings.append(read.problem)
    if run.findings:
        return Verification(run.findings, manifest=manifest, members=len(infos))
    parsed = _contents.parse(manifest, {p: r.data for p, r in reads.items()}, run.limits)
    if isinstance(parsed, list):
        return Verification(parsed, manifest=manifest, members=len(infos))
    revision, items, batchml = parsed
    documents = [
        ReceivedDocument(
            e.path,
            reads[e.path].size,
            reads[e.path].sha256,
            e.media_type,
            e.title or "",
            e.kind or "",
        )
        for e in manifest.files
        if e.role == "document"
    ]
    contents = PackageContents(manifest, revision, items, documents, batchml)
    return Verification([], contents, manifest, len(infos) + 2, verified)


def _whole(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, run: _Run) -> bytes | None:
    """A small member's bytes (the manifest, its signature), at most ``limit``."""
    if info.file_size > limit:
        run.findings.append(
            Finding(
                "oversized",
                f"{info.filename} declares {info.file_size} bytes; at most {limit} are accepted.",
                info.filename,
            )
        )
        return None
    read = _stream(archive, info, info.file_size, True, run)
    if read.problem is not None:
        run.findings.append(read.problem)
        return None
    return read.data


def _stream(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, declared: int, keep: bool, run: _Run
) -> _Read:
    """Read one member in chunks, hashing it; stop as soon as it inflates past what it
    declared (to the manifest or the directory) or past the package's total."""
    read, digest = _Read(), hashlib.sha256()
    kept: list[bytes] = []
    cap = min(declared, info.file_size)
    try:
        with archive.open(info) as source:
            while chunk := source.read(1024 * 1024):
                read.size += len(chunk)
                run.inflated += len(chunk)
                if read.size > cap or run.inflated > run.limits.max_total:
                    read.problem = Finding(
                        "size_bomb",
                        f"{info.filename} inflates past the {cap} bytes it declares.",
                        info.filename,
                    )
                    return read
                if len(read.head) < MAGIC_SPAN:
                    read.head += chunk[: MAGIC_SPAN - len(read.head)]
                digest.update(chunk)
                if keep:
                    kept.append(chunk)
                if run.progress is not None:
                    run.progress(run.inflated, run.declared)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
        read.problem = Finding(
            "corrupt_member",
            f"{info.filename} cannot be read from the archive: {exc}.",
            info.filename,
        )
        return read
    read.sha256 = digest.hexdigest()
    read.data = b"".join(kept) if keep else None
    return read
