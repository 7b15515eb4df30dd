"""API structs of the audit context."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from msgspec import Struct


class AuditEventOut(Struct):
    seq: int
    occurred_at: datetime
    actor_id: UUID | None
    actor_name: str
    action: str
    entity_type: str
    entity_id: str
    old_values: Any
    new_values: Any
    reason: str | None
    request_id: str | None
    address: str | None
    prev_hash: str
    hash: str


class AuditPage(Struct):
    events: list[AuditEventOut]
    next_before: int | None
