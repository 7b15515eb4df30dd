"""The tenant's stored files (append-only): each blob it keeps, as it was uploaded."""

from __future__ import annotations

from piccolo.columns import UUID, BigInt, Text, Timestamptz
from piccolo.table import Table

from opencdmo.db.clock import DatabaseTime


class StoredFile(Table, tablename="stored_files"):
    """One uploaded file: its SHA-256, size, type and cleaned name, and where the blob is."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    sha256 = Text()
    size_bytes = BigInt()
    content_type = Text()
    filename = Text()
    storage_key = Text()
    uploaded_by = UUID()
    uploaded_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
