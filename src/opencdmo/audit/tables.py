"""The keyed audit chain (per tenant) and the security event chain (no tenant)."""

from __future__ import annotations

from piccolo.columns import JSON, UUID, BigInt, Integer, Text, Timestamptz
from piccolo.table import Table


class AuditHead(Table, tablename="audit_heads"):
    tenant_id = UUID(primary_key=True)
    last_seq = BigInt()
    last_hash = Text()


class AuditEvent(Table, tablename="audit_events"):
    tenant_id = UUID()
    id = UUID(primary_key=True)
    seq = BigInt(null=True, default=None)  # set when the event is sealed into the chain
    occurred_at = Timestamptz()
    actor_id = UUID(null=True, default=None)
    actor_name = Text()
    action = Text()
    entity_type = Text()
    entity_id = Text()
    old_values = JSON(null=True, default=None)
    new_values = JSON(null=True, default=None)
    reason = Text(null=True, default=None)
    request_id = Text(null=True, default=None)
    address = Text(null=True, default=None)
    prev_hash = Text(null=True, default=None)
    hash = Text(null=True, default=None)
    algorithm = Text()
    entry = BigInt()  # insertion order (the database assigns it)
    key_id = Text(null=True, default=None)
    mac = Text(null=True, default=None)


class SecurityHead(Table, tablename="security_head"):
    id = Integer(primary_key=True)
    last_seq = BigInt()
    last_hash = Text()


class SecurityEvent(Table, tablename="security_events"):
    seq = BigInt(primary_key=True)
    occurred_at = Timestamptz()
    actor_id = UUID(null=True, default=None)
    actor_name = Text()
    action = Text()
    detail = JSON()
    request_id = Text(null=True, default=None)
    address = Text(null=True, default=None)
    prev_hash = Text()
    hash = Text()
    algorithm = Text()
    key_id = Text(null=True, default=None)
