"""The capture worker's local spool: batches of samples it could not store (the database
unreachable), kept on disk until they are.

A spool is a directory per tenant under the data directory. Each worker writes its own
batches there, one file each (``<worker>.<seq>.batch``, written to a temporary name then
renamed, so a file is whole or absent), and holds an exclusive lock on ``<worker>.lock``
while it runs. Batches go back to the database oldest first; a worker that starts also takes
the batches of a worker that died with some spooled (its lock is free), so a crash loses
nothing it had written here. Storing skips samples already stored (the table's unique key),
so a batch written twice (a crash between storing it and deleting its file) is no harm.

The spool is bounded (``max_bytes``): when it is full, ``put`` refuses the batch (returns
None) and the caller keeps it in memory (and says so in the log); nothing is dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import msgspec

from opencdmo.equipment.samples import Row

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB of spooled samples per worker
_NAME = re.compile(r"[^A-Za-z0-9_.-]")
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(list[Row])


@dataclass(frozen=True, order=True)
class Spooled:
    """One batch on disk: its owner, its number and its path."""

    owner: str
    seq: int
    path: Path

    def rows(self) -> list[Row]:
        return _DECODER.decode(self.path.read_bytes())


class Spool:
    """The spool directory of one worker of one tenant; ``open`` before use, ``close`` after."""

    def __init__(self, directory: Path, worker: str, *, max_bytes: int = DEFAULT_MAX_BYTES):
        self.directory = directory
        self.worker = _NAME.sub("_", worker)
        self.max_bytes = max_bytes
        self._lock: IO[bytes] | None = None
        self._seq = 0
        self._bytes = 0  # of this worker's spooled batches

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = (self.directory / f"{self.worker}.lock").open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise RuntimeError(
                f"another worker named {self.worker} uses {self.directory}"
            ) from None
        self._lock = lock
        own = [s for s in self._files() if s.owner == self.worker]
        self._seq = max((s.seq for s in own), default=0)
        self._bytes = sum(s.path.stat().st_size for s in own)

    def close(self) -> None:
        if self._lock is not None:
            if not any(s.owner == self.worker for s in self._files()):
                with contextlib.suppress(OSError):
                    (self.directory / f"{self.worker}.lock").unlink()
            self._lock.close()
            self._lock = None

    @property
    def size(self) -> int:
        """The bytes of this worker's spooled batches."""
        return self._bytes

    def put(self, rows: list[Row]) -> Spooled | None:
        """Write a batch to disk (durably: fsync before the rename); None when the spool
        has no room for it."""
        data = _ENCODER.encode(rows)
        if self.size + len(data) > self.max_bytes:
            return None
        self._seq += 1
        final = self.directory / f"{self.worker}.{self._seq:012d}.batch"
        temporary = final.with_suffix(".tmp")
        with temporary.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        temporary.rename(final)
        self._bytes += len(data)
        return Spooled(self.worker, self._seq, final)

    def pending(self) -> list[Spooled]:
        """The batches to store, oldest first: this worker's, and those of workers that are
        not running (their lock is free)."""
        owners: dict[str, bool] = {self.worker: True}
        found = []
        for spooled in self._files():
            if spooled.owner not in owners:
                owners[spooled.owner] = self._dead(spooled.owner)
            if owners[spooled.owner]:
                found.append(spooled)
        return sorted(found, key=lambda s: (s.path.stat().st_mtime_ns, s.owner, s.seq))

    def done(self, spooled: Spooled) -> None:
        """The batch is stored: its file goes (and a dead owner's lock with its last one)."""
        if spooled.owner == self.worker:
            with contextlib.suppress(OSError):
                self._bytes -= spooled.path.stat().st_size
        spooled.path.unlink(missing_ok=True)
        if spooled.owner != self.worker and not any(
            s.owner == spooled.owner for s in self._files()
        ):
            with contextlib.suppress(OSError):
                (self.directory / f"{spooled.owner}.lock").unlink()

    def _dead(self, owner: str) -> bool:
        path = self.directory / f"{owner}.lock"
        try:
            lock = path.open("ab")
        except OSError:
            return False
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False  # its worker runs
            fcntl.flock(lock, fcntl.LOCK_UN)
            return True

    def _files(self) -> Iterator[Spooled]:
        if not self.directory.is_dir():
            return
        for path in self.directory.glob("*.batch"):
            owner, _, seq = path.stem.rpartition(".")
            if owner and seq.isdigit():
                yield Spooled(owner, int(seq), path)
