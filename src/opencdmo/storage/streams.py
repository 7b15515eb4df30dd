"""Streams for files too large to hold in memory: hash a file in one pass, spool a stream to a
temporary file while hashing it, and readers that check the SHA-256 as the bytes go through.

All of it blocks (files, sockets): the blob store calls it in a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

CHUNK = 1024 * 1024


class DigestMismatch(Exception):
    """The bytes read do not hash to the SHA-256 expected of them."""

    def __init__(self, expected: str, found: str) -> None:
        super().__init__(f"expected SHA-256 {expected}, read {found}")
        self.expected, self.found = expected, found


def hash_file(path: Path) -> tuple[str, int]:
    """The file's SHA-256 and size, in one pass of bounded memory."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def spool(source: BinaryIO, directory: Path | None = None) -> tuple[Path, str, int]:
    """Copy ``source`` to a new temporary file while hashing it: (path, SHA-256, size).
    The caller removes the file."""
    handle, name = tempfile.mkstemp(prefix=".upload-", suffix=".tmp", dir=directory)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(handle, "wb") as out:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name), digest.hexdigest(), size


class CheckedReader:
    """Reads through to ``inner`` while hashing; at the end of the stream, bytes that do not
    hash to ``expected`` raise ``on_mismatch(found)`` instead of a clean end (a reader that
    stops early never learns; the store's readers all read to the end)."""

    def __init__(
        self,
        inner: BinaryIO,
        expected: str,
        on_mismatch: Callable[[str], Exception] | None = None,
    ) -> None:
        self.inner, self.expected = inner, expected
        self.on_mismatch = on_mismatch or (lambda found: DigestMismatch(expected, found))
        self._digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.inner.read(size) if size is not None and size >= 0 else self.inner.read()
        if chunk:
            self._digest.update(chunk)
            self.size += len(chunk)
        elif size != 0:
            found = self._digest.hexdigest()
            if found != self.expected:
                raise self.on_mismatch(found)
        return chunk

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> CheckedReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def copy_to(source: BinaryIO, target: BinaryIO) -> None:
    shutil.copyfileobj(source, target, CHUNK)


async def read_chunks(reader: CheckedReader) -> AsyncIterator[bytes]:
    """The stream's bytes, read in a worker thread; bytes that do not match their SHA-256
    end the download before its end (the client never gets a complete damaged file)."""
    try:
        while chunk := await asyncio.to_thread(reader.read, CHUNK):
            yield chunk
    finally:
        await asyncio.to_thread(reader.close)
