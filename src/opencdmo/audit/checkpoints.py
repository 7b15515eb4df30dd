"""Signed checkpoints of each chain's head, kept where the database cannot rewrite them.

A checkpoint says: chain C had ``seq`` events, the last with MAC ``hash``, at time ``at``;
signed with a key derived from the audit key (HMAC-SHA256), named by the key's id. The
default store appends one JSON line per checkpoint to a file per chain in a directory of the
host (``<data dir>/audit-checkpoints``). A store is anything with ``append`` and ``latest``:
an object-locked S3 bucket can be one.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from opencdmo.audit.keys import AuditKey, Keyring, same
from opencdmo.canonical import canonical_json
from opencdmo.settings import Settings

PURPOSE = "opencdmo audit checkpoint"
TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class Checkpoint:
    chain: str  # "tenant-<uuid>" or "platform-security"
    label: str  # what people call the chain (the tenant's slug when written)
    seq: int
    hash: str
    at: str  # UTC, ISO 8601
    key_id: str
    signature: str = ""

    def body(self) -> str:
        return canonical_json({k: v for k, v in asdict(self).items() if k != "signature"})


def sign(key: AuditKey, chain: str, label: str, seq: int, digest: str) -> Checkpoint:
    at = datetime.now(UTC).isoformat(timespec="seconds")
    unsigned = Checkpoint(chain, label, seq, digest, at, key.id)
    return replace(unsigned, signature=key.derive(PURPOSE).mac(unsigned.body()))


def signature_problem(checkpoint: Checkpoint, ring: Keyring) -> str | None:
    """Why a checkpoint's signature cannot be trusted, or None."""
    key = ring.get(checkpoint.key_id)
    if key is None:
        return (
            f"signed with key {checkpoint.key_id}, which this verifier does not hold "
            f"(its key is {ring.current.id}): wrong key"
        )
    if not same(key.derive(PURPOSE).mac(checkpoint.body()), checkpoint.signature):
        return "its signature does not verify: the checkpoint was altered or forged"
    return None


def parse(line: str) -> Checkpoint | None:
    """A checkpoint from its line, or None when the line is not one (wrong fields or types)."""
    try:
        data = json.loads(line)
        values = {k: data[k] for k in Checkpoint.__dataclass_fields__}
    except (ValueError, TypeError, KeyError):
        return None
    typed = isinstance(values["seq"], int) and not isinstance(values["seq"], bool)
    if not typed or not all(isinstance(v, str) for k, v in values.items() if k != "seq"):
        return None
    return Checkpoint(**values)


class CheckpointStore(Protocol):
    def append(self, checkpoint: Checkpoint) -> None:
        """Keep one more checkpoint of its chain; never rewrite an earlier one."""

    def latest(self, chain: str, count: int) -> list[Checkpoint | None]:
        """The chain's last ``count`` entries, newest first (None: an unreadable entry)."""


_CHAIN_NAME = re.compile(r"^[a-z0-9-]{1,80}$")


class LocalCheckpointStore:
    """An append-only JSON-lines file per chain in a directory (0700, files 0600)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, chain: str) -> Path:
        if not _CHAIN_NAME.match(chain):
            raise ValueError(f"not a chain name: {chain!r}")
        return self.directory / f"{chain}.jsonl"

    def append(self, checkpoint: Checkpoint) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        line = (canonical_json(asdict(checkpoint)) + "\n").encode()
        fd = os.open(self._path(checkpoint.chain), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # app processes and the CLI may append at once
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def latest(self, chain: str, count: int) -> list[Checkpoint | None]:
        path = self._path(chain)
        if not path.exists():
            return []
        return [parse(line) for line in _tail_lines(path, count)]


def _tail_lines(path: Path, count: int) -> Iterator[str]:
    """The last ``count`` lines of a file, newest first (read from its end)."""
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - TAIL_BYTES))
        chunk = handle.read()
    lines = chunk.decode(errors="replace").splitlines()
    if size > TAIL_BYTES and lines:
        lines = lines[1:]  # the first line of the chunk may be cut
    yield from (line for line in reversed(lines[-count:]) if line.strip())


def store_for(settings: Settings) -> LocalCheckpointStore:
    return LocalCheckpointStore(settings.resolved_audit_checkpoint_dir())


def tenant_chain(tenant_id: object) -> str:
    return f"tenant-{tenant_id}"


SECURITY_CHAIN = "platform-security"
