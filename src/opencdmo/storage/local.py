"""Blobs as files under one directory (``<data dir>/blobs`` by default): a key is a relative
path, each file written whole to a temporary name and renamed into place, so a reader sees
either no file or all of it."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024  # what a streamed copy holds in memory at once


class LocalBackend:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key

    def write(self, key: str, data: bytes) -> None:
        self._place(key, lambda handle: handle.write(data))

    def write_stream(self, key: str, source: BinaryIO) -> None:
        """Copy ``source`` in chunks to a draft beside the target, then rename it into place:
        a copy that fails part way leaves nothing under ``key``."""
        self._place(key, lambda handle: shutil.copyfileobj(source, handle, CHUNK))

    def write_file(self, key: str, path: Path) -> None:
        with path.open("rb") as source:
            self.write_stream(key, source)

    def move_file(self, key: str, path: Path) -> None:
        """Move a file no one else writes into place (synced, then renamed: no copy) when it
        is on the store's file system; copied like ``write_file`` when it is not."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with path.open("rb+") as handle:
            os.fsync(handle.fileno())
        try:
            os.replace(path, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            self.write_file(key, path)
            path.unlink(missing_ok=True)
        _sync_directory(target.parent)

    def local_file(self, key: str) -> Path | None:
        """The stored file itself (never written again: blobs are renamed into place)."""
        found = self.path(key)
        return found if found.is_file() else None

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def listed(self, prefix: str) -> list[tuple[str, float]]:
        """The keys under ``prefix`` (a folder), each with its last change (epoch seconds);
        drafts being written are left out."""
        folder = self.path(prefix)
        if not folder.is_dir():
            return []
        found = []
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                found.append((path.relative_to(self.root).as_posix(), path.stat().st_mtime))
        return found

    def _place(self, key: str, fill: Callable[[BinaryIO], object]) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        draft = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            with draft.open("xb") as handle:
                fill(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(draft, target)
        finally:
            draft.unlink(missing_ok=True)
        _sync_directory(target.parent)

    def read(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    def open_read(self, key: str) -> BinaryIO | None:
        try:
            return self.path(key).open("rb")
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()


def _sync_directory(directory: Path) -> None:
    """The rename itself survives a crash once its directory is synced."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
