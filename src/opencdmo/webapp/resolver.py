"""Tenant resolution: the only place that mints a TenantContext for a request."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from opencdmo.db.engine import get_engine
from opencdmo.identity import service as identity
from opencdmo.identity.queries import TokenMember
from opencdmo.scope import Actor, ExpiredToken, RequestMeta, TenantContext
from opencdmo.webapp import authcache

TOKEN_TOUCH = timedelta(seconds=60)


async def _fetch(query: str, *args: Any) -> Any:
    pool = get_engine().pool
    assert pool is not None, "the pool is not started"
    async with pool.acquire() as connection:
        return await connection.fetchrow(query, *args)


def _context(row: Any, actor: Actor, meta: RequestMeta) -> TenantContext:
    return TenantContext(
        tenant_id=row["tenant_id"],
        slug=row["tenant_slug"],
        name=row["tenant_name"],
        kind=row["tenant_kind"],
        actor=actor,
        membership_id=row["membership_id"],
        roles=tuple(row["roles"]),
        policy_version=row["policy_version"],
        time_zone=row["time_zone"],
        meta=meta,
    )


def _token_context(row: TokenMember, actor: Actor, meta: RequestMeta) -> TenantContext:
    return TenantContext(
        tenant_id=row.tenant_id,
        slug=row.tenant_slug,
        name=row.tenant_name,
        kind=row.tenant_kind,
        actor=actor,
        membership_id=row.membership_id,
        roles=row.roles,
        policy_version=row.policy_version,
        time_zone=row.time_zone,
        meta=replace(meta, credential=f"token:{row.token_id}"),
    )


async def for_user(actor: Actor, slug: str, meta: RequestMeta) -> TenantContext | None:
    """The user's scope in the tenant, or None when it does not exist or they are not a member."""
    # Raw SQL: a set-returning function (membership and roles under the tenant's row-level
    # security in one round trip), which Piccolo cannot select from.
    row = await _fetch("SELECT * FROM app_member($1, $2)", slug, actor.id)
    return None if row is None else _context(row, actor, meta)


def utcnow() -> datetime:
    return datetime.now(UTC)


async def for_token(
    token: str, slug: str, meta: RequestMeta
) -> TenantContext | ExpiredToken | None:
    """The token's scope: valid only in its own tenant, for an active user and membership,
    until it expires (checked on every use, also when the lookup comes from the cache)."""
    key = (slug, identity.hash_token(token))
    row: TokenMember | None = authcache.tokens.get(key)
    if row is None:
        generation = authcache.tokens.generation
        row = await identity.token_member(*key)
        if row is None:
            return None
        authcache.tokens.put(key, row, generation)
    actor = Actor(row.user_id, row.email, row.full_name)
    now = utcnow()
    if row.token_expires_at <= now:
        authcache.tokens.forget(key)
        return ExpiredToken(row.tenant_id, row.token_id, actor, row.token_expires_at)
    last_used = row.token_last_used_at
    if last_used is None or now - last_used > TOKEN_TOUCH:
        await identity.touch_token(row.tenant_id, row.token_id)
        authcache.tokens.forget(key)  # the next lookup reads the new last use
    return _token_context(row, actor, meta)
