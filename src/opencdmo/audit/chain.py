"""The chain: every event is MACed with the audit key over the previous event's MAC and its
canonical JSON (``hash = HMAC-SHA256(key, prev_hash || canonical JSON)``).

Events written before the chain was keyed keep their algorithm (``sha256``: unkeyed,
``hash = sha256(prev_hash || canonical JSON)``); they verify as a prefix of the chain only,
anchored by the keyed events after them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from opencdmo.audit.keys import AuditKey
from opencdmo.canonical import canonical_json, sha256_hex

GENESIS = "0" * 64
LEGACY = "sha256"
KEYED = "hmac-sha256"

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
# What an event's own MAC covers when it is written (it has no place in the chain yet) ...
ENTRY_FIELDS = (*(name for name in AUDIT_FIELDS if name != "seq"), "key_id")
# ... and what its chain MAC covers once it is sealed.
KEYED_FIELDS = (*ENTRY_FIELDS, "seq")
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
SECURITY_KEYED_FIELDS = (*SECURITY_FIELDS, "key_id")
JSON_FIELDS = frozenset({"old_values", "new_values", "detail"})


def _normalise(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in JSON_FIELDS:
        return json.loads(value) if isinstance(value, str) else value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def document(row: Mapping[str, Any], fields: tuple[str, ...]) -> str:
    """The canonical JSON of an event (JSON columns given as text or as values)."""
    return canonical_json({name: _normalise(name, row[name]) for name in fields})


def event_hash(prev_hash: str, row: Mapping[str, Any], fields: tuple[str, ...]) -> str:
    """The unkeyed (legacy) chain hash of one event."""
    return sha256_hex(prev_hash + document(row, fields))


def chain_mac(
    key: AuditKey, prev_hash: str, row: Mapping[str, Any], fields: tuple[str, ...]
) -> str:
    """The keyed chain hash of one event."""
    return key.mac(prev_hash + document(row, fields))


def entry_mac(key: AuditKey, row: Mapping[str, Any]) -> str:
    """The MAC an event carries from the moment it is written, before it is chained."""
    return key.mac("entry\n" + document(row, ENTRY_FIELDS))
