"""Writing the audit trail: in the caller's transaction (sealed into the chain right after it
commits), or autonomously for security events."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from opencdmo.audit import queries, sealer
from opencdmo.audit.chain import KEYED, SECURITY_KEYED_FIELDS, chain_mac, entry_mac
from opencdmo.audit.keys import keyring
from opencdmo.canonical import canonical_json
from opencdmo.db.engine import get_engine
from opencdmo.db.sql import clock
from opencdmo.db.tx import after_commit, autonomous, joined
from opencdmo.scope import Actor, RequestMeta, TenantContext

log = logging.getLogger(__name__)


async def _append(
    connection: Any,
    tenant_id: UUID,
    actor: Actor,
    meta: RequestMeta,
    action: str,
    entity_type: str,
    entity_id: str,
    old: Any,
    new: Any,
    reason: str | None,
    at: datetime | None = None,
) -> int:
    """Write one unchained event carrying its own MAC; the sealer chains it after commit.
    ``at``: when it happened by the database's clock, read by the command already (else it
    is read here)."""
    key = keyring().current
    row: dict[str, Any] = {
        "tenant_id": tenant_id,
        "id": uuid.uuid4(),
        "occurred_at": at if at is not None else await clock(connection),
        "actor_id": actor.id,
        "actor_name": actor.full_name,
        "action": action,
        "entity_type": entity_type,
        "entity_id": str(entity_id),
        "old_values": None if old is None else canonical_json(old),
        "new_values": None if new is None else canonical_json(new),
        "reason": reason,
        "request_id": meta.request_id,
        "address": meta.address,
        "key_id": key.id,
    }
    return await queries.insert_event(connection, row, KEYED, entry_mac(key, row))


async def record(
    ctx: TenantContext,
    action: str,
    entity_type: str,
    entity_id: object,
    *,
    old: Any = None,
    new: Any = None,
    reason: str | None = None,
    at: datetime | None = None,
) -> int:
    """Append one event in the command's unit of work (which must be open); returns its entry
    number (the order it was written in). Its sequence number in the tenant's chain is given
    when it is sealed, right after the transaction commits (before the command returns).
    ``at``: the database's time of what it records, when the command has it already (an
    inserted row's own timestamp): one round trip fewer."""
    tenant_id = ctx.tenant_id
    async with joined(ctx) as connection:
        after_commit(f"audit-seal:{tenant_id}", lambda: sealer.seal(tenant_id))
        return await _append(
            connection,
            ctx.tenant_id,
            ctx.actor,
            ctx.meta,
            action,
            entity_type,
            str(entity_id),
            old,
            new,
            reason,
            at,
        )


async def record_across(
    ctx: TenantContext,
    tenant_id: UUID,
    action: str,
    entity_type: str,
    entity_id: object,
    *,
    old: Any = None,
    new: Any = None,
    reason: str | None = None,
) -> int:
    """Append one event to another tenant's chain in the command's unit of work: the event
    of a step between two tenants (a partner relationship) that each tenant's trail records.
    The transaction's tenant setting must be switched to ``tenant_id`` around the call
    (``partners.crossing``): row-level security refuses the event otherwise. The actor is
    the command's, named as such in the other tenant's trail."""
    async with joined(ctx) as connection:
        after_commit(f"audit-seal:{tenant_id}", lambda: sealer.seal(tenant_id))
        actor = Actor(ctx.actor.id, ctx.actor.email, f"{ctx.actor.full_name} ({ctx.name})")
        return await _append(
            connection,
            tenant_id,
            actor,
            ctx.meta,
            action,
            entity_type,
            str(entity_id),
            old,
            new,
            reason,
        )


async def start_chain(ctx: TenantContext) -> None:
    """Begin the tenant's chain (its head at the genesis hash), in the open unit of work."""
    async with joined(ctx):
        await queries.start_chain(ctx.tenant_id)


async def record_security(
    action: str,
    *,
    actor: Actor,
    meta: RequestMeta,
    tenant_id: UUID | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """A security event that survives the request's rollback: its own transaction.

    With a tenant it joins that tenant's chain (entity type ``security``); without one it goes
    to the platform's security chain. Called while a transaction is open in this context, the
    write runs in a task of its own, so the caller does not wait for it (``drain`` does).
    """
    detail = detail or {}
    if get_engine().current_transaction.get() is not None:
        task = asyncio.get_running_loop().create_task(
            _write_security(action, actor, meta, tenant_id, detail)
        )
        _pending.add(task)
        task.add_done_callback(_pending.discard)
        return
    await _write_security(action, actor, meta, tenant_id, detail)


async def record_security_in(ctx: TenantContext, action: str, detail: dict[str, Any]) -> int:
    """The tenant's security event (the one ``record_security`` writes) in the command's
    unit of work instead of a transaction of its own: for work retried until it commits
    (a job), where the event must be written once with the outcome it records."""
    return await record(ctx, action, "security", detail.get("path", "-"), new=detail)


_pending: set[asyncio.Task[None]] = set()


async def drain() -> None:
    """Wait for deferred security events and sealing rounds (shutdown, tests)."""
    while _pending:
        await asyncio.gather(*list(_pending))
    await sealer.drain()


async def _write_security(
    action: str, actor: Actor, meta: RequestMeta, tenant_id: UUID | None, detail: dict[str, Any]
) -> None:
    try:
        async with autonomous(tenant_id) as connection:
            if tenant_id is not None:
                await _append(
                    connection,
                    tenant_id,
                    actor,
                    meta,
                    action,
                    "security",
                    detail.get("path", "-"),
                    None,
                    detail,
                    None,
                )
            else:
                await _append_security(connection, actor, meta, action, detail)
    except Exception:  # a failing security log must not turn a 4xx into a 500, but is loud
        log.exception("could not record security event %s", action)
        return
    if tenant_id is not None:
        await sealer.seal(tenant_id)


async def _append_security(
    connection: Any, actor: Actor, meta: RequestMeta, action: str, detail: dict[str, Any]
) -> None:
    """The platform chain is written rarely and in its own short transaction: chained at once
    (its head row stays locked until that transaction ends)."""
    key = keyring().current
    head = await queries.lock_security_head(connection)
    row: dict[str, Any] = {
        "seq": head.last_seq + 1,
        "occurred_at": head.at,
        "actor_id": actor.id,
        "actor_name": actor.full_name,
        "action": action,
        "detail": canonical_json(detail),
        "request_id": meta.request_id,
        "address": meta.address,
        "key_id": key.id,
    }
    digest = chain_mac(key, head.last_hash, row, SECURITY_KEYED_FIELDS)
    await queries.append_security_event(connection, row, head.last_hash, digest, KEYED)
