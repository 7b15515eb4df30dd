"""Writing a package archive: streaming, member by member, never the whole package in memory.

Each member comes as a ``Member``: its manifest entry and a function that yields its bytes
in chunks (called once to hash it, and once more to write it, for members that are not
already in memory). JSON and XML members are deflated; documents are stored as they are
(they are mostly compressed already, and verifying a stored member costs one hash).
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Final

from opencdmo.transfer.format import MANIFEST, SIGNATURE, FileEntry

CHUNK: Final = 1024 * 1024
REGULAR_FILE: Final = 0o100644 << 16  # unix mode in external_attr: a regular file, rw-r--r--
UNIX: Final = 3  # create_system: the external attributes are unix modes


@dataclass(frozen=True)
class Member:
    entry: FileEntry
    chunks: Callable[[], Iterator[bytes]]


def hashed(chunks: Iterable[bytes]) -> tuple[int, str]:
    """The size and SHA-256 of a stream of chunks."""
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def from_bytes(data: bytes) -> Callable[[], Iterator[bytes]]:
    return lambda: iter((data,))


def from_file(path: Path) -> Callable[[], Iterator[bytes]]:
    def chunks() -> Iterator[bytes]:
        with path.open("rb") as handle:
            while block := handle.read(CHUNK):
                yield block

    return chunks


def _info(name: str, when: datetime, compress: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
    info.compress_type = compress
    info.create_system = UNIX
    info.external_attr = REGULAR_FILE
    return info


def write_archive(
    out: BinaryIO,
    manifest: bytes,
    signature: bytes,
    members: Iterable[Member],
    when: datetime,
) -> None:
    """The archive: ``manifest.json``, ``manifest.sig``, then each member in order."""
    with zipfile.ZipFile(out, "w", allowZip64=True) as archive:
        for name, data in ((MANIFEST, manifest), (SIGNATURE, signature)):
            archive.writestr(_info(name, when, zipfile.ZIP_DEFLATED), data)
        for member in members:
            entry = member.entry
            method = zipfile.ZIP_STORED if entry.role == "document" else zipfile.ZIP_DEFLATED
            info = _info(entry.path, when, method)
            info.file_size = entry.size  # so that a member over 2 GiB gets its ZIP64 fields
            with archive.open(info, "w", force_zip64=entry.size >= zipfile.ZIP64_LIMIT) as sink:
                for chunk in member.chunks():
                    sink.write(chunk)
