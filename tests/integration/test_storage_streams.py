"""Streaming blobs on both backends: a 50 MiB file stored and read back by its SHA-256 while
the process's traced memory stays far below the file's size (tracemalloc around the call),
uploaded to S3 in several parts, and a broken upload leaving nothing under the final key.

The S3 peer is a moto server in a process of its own on 127.0.0.1, so that the bytes it keeps
do not count in this process's memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import subprocess
import sys
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import boto3
import pytest

from opencdmo.scope import SYSTEM, TenantContext
from opencdmo.settings import Settings
from opencdmo.storage.blobs import BlobCorrupted, BlobStore, tenant_key
from opencdmo.storage.local import LocalBackend
from opencdmo.storage.s3 import PART, S3Backend
from opencdmo.storage.streams import CHUNK, DigestMismatch

MiB = 1024 * 1024
SIZE = 50 * MiB
BUCKET = "opencdmo-stream-blobs"
T = TypeVar("T")

SERVER = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print("%s:%s" % server.get_host_and_port(), flush=True)
sys.stdin.read()
server.stop()
"""


@pytest.fixture(scope="module")
def s3_settings() -> Iterator[Settings]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdin is not None
    address = process.stdout.readline().strip()
    assert address.startswith("127.0.0.1:"), address
    settings = Settings(
        s3_bucket=BUCKET,
        s3_endpoint_url=f"http://{address}",
        s3_region="us-east-1",
        s3_access_key_id="testing",
        s3_secret_access_key="testing-secret",
    )
    _client(settings).create_bucket(Bucket=BUCKET)
    yield settings
    process.stdin.close()
    process.wait(timeout=30)
    process.stdout.close()


def _client(settings: Settings) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key,
    )


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return BlobStore(LocalBackend(tmp_path / "blobs"))
    return BlobStore(S3Backend.from_settings(request.getfixturevalue("s3_settings")))


@pytest.fixture
def ctx() -> TenantContext:
    tenant = uuid.uuid4()
    return TenantContext(tenant, "streams", "Streams", "cdmo", SYSTEM, None, (), 1)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("big") / "package.bin"
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for _ in range(SIZE // MiB):
            chunk = os.urandom(MiB)
            digest.update(chunk)
            handle.write(chunk)
    return path, digest.hexdigest()


async def _peak(call: Callable[[], Awaitable[T]]) -> tuple[T, int]:
    """What ``call`` returns, and the peak growth of traced memory while it ran."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        result = await call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak - base


def _read_all(stream: Any) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


async def test_a_large_file_streams_in_and_out_in_bounded_memory(
    store: BlobStore, ctx: TenantContext, big_file: tuple[Path, str]
) -> None:
    path, sha256 = big_file
    blob, stored_peak = await _peak(lambda: store.put_file(ctx, path))
    assert (blob.key, blob.sha256, blob.size) == (tenant_key(ctx.tenant_id, sha256), sha256, SIZE)
    assert stored_peak < SIZE // 10, f"storing held {stored_peak / MiB:.1f} MiB"

    async def read_back() -> tuple[str, int]:
        return _read_all(await store.open(ctx, blob.key))

    (found, size), read_peak = await _peak(read_back)
    assert (found, size) == (sha256, SIZE)
    assert read_peak < SIZE // 10, f"reading held {read_peak / MiB:.1f} MiB"


async def test_a_stream_is_stored_like_a_file(
    store: BlobStore, ctx: TenantContext, big_file: tuple[Path, str]
) -> None:
    path, sha256 = big_file
    with path.open("rb") as handle:
        blob, peak = await _peak(lambda: store.put_file(ctx, handle))
    assert blob.sha256 == sha256 and blob.size == SIZE
    assert peak < SIZE // 10, f"storing held {peak / MiB:.1f} MiB"
    small = await store.put_file(ctx, io.BytesIO(b"a small file"))
    assert await store.get(ctx, small.key) == b"a small file"
    assert _read_all(await store.open(ctx, small.key))[1] == len(b"a small file")


async def test_s3_takes_a_large_file_in_several_parts(
    s3_settings: Settings, ctx: TenantContext, big_file: tuple[Path, str]
) -> None:
    path, _ = big_file
    blob = await BlobStore(S3Backend.from_settings(s3_settings)).put_file(ctx, path)
    head = _client(s3_settings).head_object(Bucket=BUCKET, Key=blob.key)
    parts = int(head["ETag"].strip('"').rsplit("-", 1)[1])  # a multipart ETag ends in -<parts>
    assert parts == -(-SIZE // PART) and parts > 1
    assert head["ContentLength"] == SIZE


class Broken(io.RawIOBase):
    """A source that fails after ``good`` bytes (a client gone, a disk error)."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            raise ConnectionAbortedError("the sender went away")
        n = min(len(buffer), self.left)
        buffer[:n] = b"x" * n
        self.left -= n
        return n


async def test_a_broken_upload_leaves_nothing_under_the_final_key(
    store: BlobStore, ctx: TenantContext
) -> None:
    key = tenant_key(ctx.tenant_id, "0" * 64)
    source: BinaryIO = io.BufferedReader(Broken(3 * PART))
    with pytest.raises(ConnectionAbortedError):
        store.backend.write_stream(key, source)
    assert not store.backend.exists(key)
    with pytest.raises(ConnectionAbortedError):
        await store.put_file(ctx, io.BufferedReader(Broken(2 * PART)))
    if isinstance(store.backend, LocalBackend):
        left = [p for p in store.backend.root.rglob("*") if p.is_file()]
        assert left == []  # no draft, no blob


async def test_a_stream_of_changed_bytes_is_refused_at_its_end(
    store: BlobStore, ctx: TenantContext
) -> None:
    blob = await store.put_file(ctx, io.BytesIO(b"the original bytes" * 1000))
    if isinstance(store.backend, LocalBackend):
        store.backend.path(blob.key).write_bytes(b"changed bytes" * 1000)
    else:
        assert isinstance(store.backend, S3Backend)
        store.backend.client.put_object(Bucket=BUCKET, Key=blob.key, Body=b"changed" * 1000)
    with pytest.raises(BlobCorrupted, match="does not match its SHA-256"):
        _read_all(await store.open(ctx, blob.key))


async def test_an_adopted_file_is_moved_in_and_a_verified_stream_stored_in_one_pass(
    store: BlobStore, ctx: TenantContext, tmp_path: Path
) -> None:
    """``adopt`` stores a temporary file of this process and removes it (moved on the local
    disk, uploaded on S3); ``put_verified_blocking`` stores a stream under the SHA-256 known
    before, and refuses, storing nothing, bytes that do not hash to it."""
    data = b"a received package " * 50_000
    path = tmp_path / "received.zip"
    path.write_bytes(data)
    blob = await store.adopt(ctx, path)
    assert not path.exists()
    assert (blob.sha256, blob.size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert _read_all(await store.open(ctx, blob.key)) == (blob.sha256, len(data))
    local = store.local_file(ctx, blob.key)
    assert (local is not None) == isinstance(store.backend, LocalBackend)
    again = tmp_path / "again.zip"
    again.write_bytes(data)
    assert await store.adopt(ctx, again) == blob and not again.exists()
    member = b"a document of the package " * 10_000
    digest = hashlib.sha256(member).hexdigest()
    stored = await asyncio.to_thread(
        store.put_verified_blocking, ctx, io.BytesIO(member), digest, len(member)
    )
    assert _read_all(await store.open(ctx, stored.key)) == (digest, len(member))
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    with pytest.raises(DigestMismatch):
        await asyncio.to_thread(
            store.put_verified_blocking, ctx, io.BytesIO(member), wrong, len(member)
        )
    assert not store.backend.exists(tenant_key(ctx.tenant_id, wrong))
