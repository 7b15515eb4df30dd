"""The hash chain: hash = sha256(prev_hash || canonical JSON of the event)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from opencdmo.canonical import canonical_json, sha256_hex

GENESIS = "0" * 64

AUDIT_FIELDS = (
    "tenant_id",
    "id",
    "seq",
    "occurred_at",
    "actor_id",
    "actor_name",
    "action",
    "entity_type",
    "entity_id",
    "old_values",
    "new_values",
    "reason",
    "request_id",
    "address",
)
SECURITY_FIELDS = (
    "seq",
    "occurred_at",
    "actor_id",
    "actor_name",
    "action",
    "detail",
    "request_id",
    "address",
)
JSON_FIELDS = frozenset({"old_values", "new_values", "detail"})


def _normalise(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in JSON_FIELDS:
        return json.loads(value) if isinstance(value, str) else value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def event_hash(prev_hash: str, row: Mapping[str, Any], fields: tuple[str, ...]) -> str:
    """The chain hash of one stored or to-be-stored event (JSON columns given as text or values)."""
    document = {name: _normalise(name, row[name]) for name in fields}
    return sha256_hex(prev_hash + canonical_json(document))
