"""The tenant's exports: each request, its state and once built its stored file."""

from __future__ import annotations

from piccolo.columns import JSONB, UUID, BigInt, Text, Timestamptz
from piccolo.table import Table

from opencdmo.db.clock import DatabaseTime


class Export(Table, tablename="exports"):
    """One export asked for: kind, subject, who and when, state; once done its file."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    kind = Text()
    subject = JSONB()
    requested_by = UUID()
    requested_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    state = Text(default="queued")
    error = Text(null=True, default=None)
    storage_key = Text(null=True, default=None)
    file_name = Text(null=True, default=None)
    media_type = Text(null=True, default=None)
    size_bytes = BigInt(null=True, default=None)
    sha256 = Text(null=True, default=None)
    finished_at = Timestamptz(null=True, default=None)
