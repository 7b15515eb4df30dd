"""Blobs in an S3 bucket (or MinIO) through boto3. boto3 blocks: the store calls these methods
in a worker thread (``asyncio.to_thread``); one client serves every thread."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from opencdmo.settings import Settings
from opencdmo.storage.blobs import StorageUnavailable

log = logging.getLogger("opencdmo.storage")
MISSING = {"404", "NoSuchKey", "NotFound"}
PART = 5 * 1024 * 1024  # multipart part size: S3's minimum, the least memory


def streaming_config() -> TransferConfig:
    """Streamed uploads: multipart above one part, two parts in flight and at most two read
    ahead, so memory stays at a few parts whatever the file's size."""
    config = TransferConfig(
        multipart_threshold=PART,
        multipart_chunksize=PART,
        max_concurrency=2,
        max_io_queue=2,
        use_threads=True,
    )
    config.max_in_memory_upload_chunks = 2  # s3transfer's default reads ten parts ahead
    return config


class S3Backend:
    name = "s3"

    def __init__(self, bucket: str, client: Any) -> None:
        self.bucket = bucket
        self.client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Backend:
        assert settings.s3_bucket
        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url or None,
            region_name=settings.s3_region or None,
            aws_access_key_id=settings.s3_access_key_id or None,
            aws_secret_access_key=settings.s3_secret_access_key or None,
            config=Config(
                connect_timeout=5,
                read_timeout=30,
                retries={"max_attempts": 3, "mode": "standard"},
                # Checksums only where S3 asks for them: MinIO and older S3 peers refuse
                # the newer default ones; the store checks the SHA-256 itself.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
        return cls(settings.s3_bucket, client)

    def write(self, key: str, data: bytes) -> None:
        self._do(
            "write",
            key,
            lambda: self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType="application/octet-stream",
                Metadata=_metadata(key),
            ),
        )

    def write_stream(self, key: str, source: BinaryIO) -> None:
        """Upload ``source`` in parts (``upload_fileobj``): a failed multipart upload is
        aborted, so nothing appears under ``key`` unless every part arrived."""
        self._do(
            "write",
            key,
            lambda: self.client.upload_fileobj(
                source,
                self.bucket,
                key,
                ExtraArgs={
                    "ContentType": "application/octet-stream",
                    "Metadata": _metadata(key),
                },
                Config=streaming_config(),
            ),
        )

    def write_file(self, key: str, path: Path) -> None:
        """Upload a local file in parts read from disk as they are sent (``upload_file``):
        memory stays at a few small buffers, where a stream costs a few parts."""
        self._do(
            "write",
            key,
            lambda: self.client.upload_file(
                str(path),
                self.bucket,
                key,
                ExtraArgs={
                    "ContentType": "application/octet-stream",
                    "Metadata": _metadata(key),
                },
                Config=streaming_config(),
            ),
        )

    def move_file(self, key: str, path: Path) -> None:
        """``write_file``, then the local file removed."""
        self.write_file(key, path)
        path.unlink(missing_ok=True)

    def local_file(self, key: str) -> Path | None:
        return None  # the bytes are in the bucket only

    def delete(self, key: str) -> None:
        self._do("delete", key, lambda: self.client.delete_object(Bucket=self.bucket, Key=key))

    def listed(self, prefix: str) -> list[tuple[str, float]]:
        """The keys under ``prefix`` (a folder), each with its last change (epoch seconds)."""
        found: list[tuple[str, float]] = []
        try:
            pages = self.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=prefix.rstrip("/") + "/"):
                for item in page.get("Contents", []):
                    found.append((item["Key"], item["LastModified"].timestamp()))
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable("list", prefix, exc) from exc
        return found

    def open_read(self, key: str) -> BinaryIO | None:
        try:
            body: BinaryIO = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if _code(exc) in MISSING:
                return None
            raise _unavailable("read", key, exc) from exc
        except BotoCoreError as exc:
            raise _unavailable("read", key, exc) from exc
        return body

    def read(self, key: str) -> bytes | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
            body: bytes = answer["Body"].read()
        except ClientError as exc:
            if _code(exc) in MISSING:
                return None
            raise _unavailable("read", key, exc) from exc
        except BotoCoreError as exc:
            raise _unavailable("read", key, exc) from exc
        return body

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in MISSING:
                return False
            raise _unavailable("check", key, exc) from exc
        except BotoCoreError as exc:
            raise _unavailable("check", key, exc) from exc
        return True

    def _do(self, what: str, key: str, call: Any) -> None:
        try:
            call()
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            raise _unavailable(what, key, exc) from exc


def _metadata(key: str) -> dict[str, str]:
    """A content-addressed blob carries its SHA-256; a quarantined upload (keyed by its
    job) carries nothing: its content is not known to be anything yet."""
    if key.startswith("tenants/"):
        return {"sha256": key.rsplit("/", 1)[-1]}
    return {}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unavailable(what: str, key: str, exc: Exception) -> StorageUnavailable:
    log.error("S3 could not %s a blob: %s", what, exc, extra={"key": key})
    return StorageUnavailable(
        "The file storage (S3) did not answer; nothing was changed. Try again shortly."
    )
