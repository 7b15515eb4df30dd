"""Blobs in an S3 bucket (or MinIO) through boto3. boto3 blocks: the store calls these methods
in a worker thread (``asyncio.to_thread``); one client serves every thread."""

from __future__ import annotations

import logging
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from opencdmo.settings import Settings
from opencdmo.storage.blobs import StorageUnavailable

log = logging.getLogger("opencdmo.storage")
MISSING = {"404", "NoSuchKey", "NotFound"}


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
        sha256 = key.rsplit("/", 1)[-1]
        self._do(
            "write",
            key,
            lambda: self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType="application/octet-stream",
                Metadata={"sha256": sha256},
            ),
        )

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
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(what, key, exc) from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unavailable(what: str, key: str, exc: Exception) -> StorageUnavailable:
    log.error("S3 could not %s a blob: %s", what, exc, extra={"key": key})
    return StorageUnavailable(
        "The file storage (S3) did not answer; nothing was changed. Try again shortly."
    )
