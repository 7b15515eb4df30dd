"""Part 11 electronic signatures, append-only."""

from __future__ import annotations

from piccolo.columns import UUID, Text, Timestamptz
from piccolo.table import Table


class Signature(Table, tablename="signatures"):
    tenant_id = UUID()
    id = UUID(primary_key=True)
    record_type = Text()
    record_id = Text()
    record_version = Text()
    record_hash = Text()
    signer_id = UUID()
    signer_name = Text()
    meaning = Text()
    reason = Text()
    signed_at = Timestamptz()
    method = Text(default="password")
