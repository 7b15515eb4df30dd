"""The restore drill: a database filled by the demo (its batches included) and files in the
blob store, backed up, restored into a new empty database, and checked: every table's row
count, the audit trail, every stored file's hash, row security as the app role. The blob
store on both backends: S3 (a real moto server) as the source, the data directory and
another bucket as targets."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tarfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import pytest
from moto.server import ThreadedMotoServer

from opencdmo.db.embedded import start_embedded
from opencdmo.ops.backup import TABLES
from opencdmo.scope import SYSTEM, TenantContext
from opencdmo.settings import Settings
from opencdmo.storage.blobs import BlobStore, store_for
from opencdmo.storage.local import LocalBackend
from tests.conftest import AUDIT_KEY, DATA_DIR, _recreate, _with_database

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Side:
    """One installation: its database, data directory and blob store settings."""

    url: str
    data_dir: Path
    s3: dict[str, str]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCDMO_")}
        env.update(
            {
                "OPENCDMO_DATABASE_URL": self.url,
                "OPENCDMO_DATA_DIR": str(self.data_dir),
                "OPENCDMO_AUDIT_KEY": AUDIT_KEY,
                "OPENCDMO_AUDIT_CHECKPOINT_DIR": str(self.data_dir / "checkpoints"),
                "OPENCDMO_ARGON2_TIME_COST": "1",
                "OPENCDMO_ARGON2_MEMORY_KIB": "1024",
                **self.s3,
            }
        )
        return env

    def store(self) -> BlobStore:
        return store_for(Settings.from_env(self.env()))


def _s3(env: dict[str, str]) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=env["OPENCDMO_S3_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret",
    )


@pytest.fixture(scope="module")
def moto() -> Iterator[dict[str, str]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "OPENCDMO_S3_ENDPOINT_URL": f"http://{host}:{port}",
        "OPENCDMO_S3_REGION": "us-east-1",
        "OPENCDMO_S3_ACCESS_KEY_ID": "testing",
        "OPENCDMO_S3_SECRET_ACCESS_KEY": "testing-secret",
    }
    client = _s3(env)
    for bucket in ("drill-source", "drill-target"):
        client.create_bucket(Bucket=bucket)
    client.close()
    yield env
    server.stop()


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[tuple[str, list[str]]]:
    """The test server, and the databases of this module (dropped at the end)."""
    url = os.environ.get("OPENCDMO_TEST_DATABASE_URL") or start_embedded(DATA_DIR)
    made: list[str] = []
    yield url, made
    for name in made:
        await _recreate(url, name, drop_only=True)


async def _side(
    server: tuple[str, list[str]], data_dir: Path, s3: dict[str, str], bucket: str | None
) -> Side:
    url, made = server
    name = f"opencdmo_drill_{uuid.uuid4().hex[:8]}"
    await _recreate(url, name)
    made.append(name)
    return Side(
        _with_database(url, name), data_dir, {**s3, "OPENCDMO_S3_BUCKET": bucket} if bucket else {}
    )


async def _cli(side: Side, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opencdmo.cli",
        *args,
        env=side.env(),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def _counts(url: str) -> dict[str, int]:
    connection = await asyncpg.connect(url)
    try:
        names = [r[0] for r in await connection.fetch(TABLES)]
        return {n: await connection.fetchval(f'SELECT count(*) FROM "{n}"') for n in names}
    finally:
        await connection.close()


async def _add_files(side: Side, count: int) -> list[str]:
    """Files in the source's blob store, each named by a stored-file row of a demo tenant."""
    store = side.store()
    connection = await asyncpg.connect(side.url)
    try:
        tenant, user = await connection.fetchrow(
            "SELECT m.tenant_id, m.user_id FROM memberships m JOIN tenants t ON t.id = m.tenant_id"
            " WHERE t.slug = 'larkspur-cdmo' LIMIT 1"
        )
        ctx = TenantContext(tenant, "larkspur-cdmo", "Larkspur", "cdmo", SYSTEM, None, (), 1)
        keys = []
        for n in range(count):
            blob = await store.put(ctx, b"%PDF-1.7\n" + os.urandom(64 * 1024 + n) + b"\n%%EOF\n")
            await connection.execute(
                "INSERT INTO stored_files (tenant_id, id, sha256, size_bytes, content_type,"
                " filename, storage_key, uploaded_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                tenant,
                uuid.uuid4(),
                blob.sha256,
                blob.size,
                "application/pdf",
                f"coa-{n}.pdf",
                blob.key,
                user,
            )
            keys.append(blob.key)
        return keys
    finally:
        await connection.close()


async def _stored_hashes(store: BlobStore, keys: list[str]) -> dict[str, str]:
    import hashlib

    found = {}
    for key in keys:
        data = await asyncio.to_thread(store.backend.read, key)
        found[key] = hashlib.sha256(data).hexdigest() if data is not None else "missing"
    return found


async def test_restore_drill(
    server: tuple[str, list[str]], moto: dict[str, str], tmp_path: Path
) -> None:
    source = await _side(server, tmp_path / "source", moto, "drill-source")
    code, out = await _cli(source, "demo", "tenants")
    assert code == 0, out
    assert "batch" in out
    keys = await _add_files(source, 3)
    before = await _counts(source.url)
    assert before["batches"] > 0 and before["audit_events"] > 0 and before["stored_files"] >= 3

    archive = tmp_path / "backup.tar"
    code, out = await _cli(source, "backup", "--out", str(archive))
    assert code == 0, out
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        names = set(tar.getnames())
    assert manifest["tables"] == before
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert "database.dump" in listed and listed.keys() <= names
    for key in keys:
        assert listed[f"blobs/{key}"] == key.rsplit("/", 1)[1]

    # Into a new empty database with the data directory's blob store ...
    local = await _side(server, tmp_path / "local", moto, None)
    code, out = await _cli(local, "restore", str(archive))
    assert code == 0, out
    assert "restored and verified" in out
    assert await _counts(local.url) == before
    code, out = await _cli(local, "audit", "verify")
    assert code == 0, out
    assert "audit trail intact" in out
    assert isinstance(local.store().backend, LocalBackend)
    wanted = {key: key.rsplit("/", 1)[1] for key in keys}
    assert await _stored_hashes(local.store(), keys) == wanted

    # ... and into another with another S3 bucket, from the unpacked directory.
    unpacked = tmp_path / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    bucket = await _side(server, tmp_path / "bucket", moto, "drill-target")
    code, out = await _cli(bucket, "restore", str(unpacked))
    assert code == 0, out
    assert await _counts(bucket.url) == before
    assert await _stored_hashes(bucket.store(), keys) == wanted
    code, out = await _cli(bucket, "audit", "verify")
    assert code == 0, out

    # Row security and the app role came back: no tenant set, no tenant rows.
    app_url = local.url.replace("postgres@", "opencdmo_app@", 1).replace(
        "postgres:@", "opencdmo_app:@", 1
    )
    connection = await asyncpg.connect(app_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM memberships") == 0
        tenant = await connection.fetchval("SELECT id FROM tenants WHERE slug = 'larkspur-cdmo'")
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant))
            assert await connection.fetchval("SELECT count(*) FROM memberships") > 0
    finally:
        await connection.close()
    owner = await asyncpg.connect(local.url)
    try:
        unforced = await owner.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
            " AND c.relkind IN ('r', 'p') AND a.attname = 'tenant_id'"
            " AND NOT (c.relrowsecurity AND c.relforcerowsecurity)"
        )
    finally:
        await owner.close()
    assert not unforced, "every tenant table keeps forced row security"

    # A second restore into the now non-empty database is refused, and changes nothing.
    code, out = await _cli(local, "restore", str(archive))
    assert code == 2, out
    assert "is not empty" in out and "restore" in out
    assert await _counts(local.url) == before

    # A damaged backup is refused before anything is restored.
    damaged = unpacked / "blobs" / keys[0]
    damaged.write_bytes(b"changed")
    empty = await _side(server, tmp_path / "empty", moto, None)
    code, out = await _cli(empty, "restore", str(unpacked))
    assert code == 2, out
    assert f"blobs/{keys[0]}: its SHA-256 differs" in out
    assert await _counts(empty.url) == {}

    # A stored file damaged in the source's store is named, and the rest is still backed up.
    _s3(moto).put_object(Bucket="drill-source", Key=keys[1], Body=b"changed in storage")
    code, out = await _cli(source, "backup", "--out", str(tmp_path / "again"))
    assert code == 1, out
    assert f"PROBLEM {keys[1]}: its bytes no longer hash to its key" in out
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert {f"blobs/{keys[0]}", f"blobs/{keys[2]}"} <= {f["path"] for f in again["files"]}
    assert f"blobs/{keys[1]}" not in {f["path"] for f in again["files"]}
    assert len(again["problems"]) == 1


async def test_backup_refuses_an_existing_target(
    server: tuple[str, list[str]], tmp_path: Path
) -> None:
    side = await _side(server, tmp_path / "side", {}, None)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "something").write_text("x")
    code, out = await _cli(side, "backup", "--out", str(taken))
    assert code == 2, out
    assert "already exists" in out
    code, out = await _cli(side, "restore", str(tmp_path / "nothing-here"))
    assert code == 2, out
    assert "no such backup" in out


EXTERNAL = os.environ.get(
    "OPENCDMO_TEST_EXTERNAL_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
async def external() -> AsyncIterator[tuple[str, list[str]]]:
    """The machine's own PostgreSQL (its own pg_dump on PATH), when it is there."""
    try:
        connection = await asyncpg.connect(EXTERNAL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no external PostgreSQL at {EXTERNAL}: {exc}")
    await connection.close()
    made: list[str] = []
    yield EXTERNAL, made
    for name in made:
        await _recreate(EXTERNAL, name, drop_only=True)


async def test_backup_and_restore_on_an_external_server(
    external: tuple[str, list[str]], tmp_path: Path
) -> None:
    source = await _side(external, tmp_path / "source", {}, None)
    code, out = await _cli(source, "db", "upgrade")
    assert code == 0, out
    code, out = await _cli(source, "hub", "sync", str(ROOT / "hub_content"))
    assert code == 0, out
    code, out = await _cli(source, "tenants", "apply", str(ROOT / "tenants"))
    assert code == 0, out
    keys = await _add_files(source, 1)
    code, out = await _cli(source, "backup", "--out", str(tmp_path / "backup"))
    assert code == 0, out
    target = await _side(external, tmp_path / "target", {}, None)
    code, out = await _cli(target, "restore", str(tmp_path / "backup"))
    assert code == 0, out
    assert await _counts(target.url) == await _counts(source.url)
    assert await _stored_hashes(target.store(), keys) == {k: k.rsplit("/", 1)[1] for k in keys}
    code, out = await _cli(target, "audit", "verify")
    assert code == 0, out
