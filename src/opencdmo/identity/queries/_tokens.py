"""API tokens of a tenant (never their secrets) and the lookup of a bearer token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from piccolo.querystring import QueryString

from opencdmo.db.engine import get_engine
from opencdmo.db.sql import CLOCK, DEFAULT
from opencdmo.identity.tables import ApiToken


@dataclass(frozen=True)
class TokenRow:
    """An API token as listed (never its secret): with its owner's name when listed."""

    id: UUID
    user_id: UUID
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    expired: bool = False
    full_name: str | None = None
    email: str | None = None


_TOKEN = (
    ApiToken.id,
    ApiToken.user_id,
    ApiToken.name,
    ApiToken.prefix,
    ApiToken.created_at,
    ApiToken.expires_at,
)


async def insert_token(
    tenant_id: UUID,
    user_id: UUID,
    name: str,
    token_hash: str,
    prefix: str,
    created_at: datetime,
    expires_at: datetime,
) -> TokenRow:
    rows = await ApiToken.insert(
        ApiToken(
            tenant_id=tenant_id,
            id=DEFAULT,
            user_id=user_id,
            name=name,
            token_hash=token_hash,
            prefix=prefix,
            created_at=created_at,
            expires_at=expires_at,
        )
    ).returning(*_TOKEN)
    return TokenRow(**rows[0])


async def tokens(user_id: UUID | None) -> list[TokenRow]:
    """The tenant's tokens (or only ``user_id``'s), newest first, with their owners."""
    query = ApiToken.select(
        *_TOKEN,
        ApiToken.last_used_at,
        ApiToken.revoked_at,
        QueryString("{} <= clock_timestamp()", ApiToken.expires_at).as_alias("expired"),
        ApiToken.user_id.full_name.as_alias("full_name"),
        ApiToken.user_id.email.as_alias("email"),
    ).order_by(ApiToken.created_at, ascending=False)
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return [TokenRow(**raw) for raw in await query]


@dataclass(frozen=True)
class TokenState:
    id: UUID
    user_id: UUID
    name: str
    revoked_at: datetime | None


async def token_state(token_id: UUID) -> TokenState | None:
    """The token, row-locked until the transaction ends."""
    raw = await (
        ApiToken.select(ApiToken.id, ApiToken.user_id, ApiToken.name, ApiToken.revoked_at)
        .where(ApiToken.id == token_id)
        .lock_rows("UPDATE")
        .first()
    )
    return None if raw is None else TokenState(**raw)


async def revoke_token(token_id: UUID) -> None:
    await ApiToken.update({ApiToken.revoked_at: CLOCK}).where(ApiToken.id == token_id)


async def touch_token(token_id: UUID) -> None:
    await ApiToken.update({ApiToken.last_used_at: CLOCK}).where(ApiToken.id == token_id)


@dataclass(frozen=True)
class TokenMember:
    """A bearer token's scope: its tenant, member, roles and user (never its secret)."""

    tenant_id: UUID
    tenant_slug: str
    tenant_name: str
    tenant_kind: str
    policy_version: int
    membership_id: UUID
    roles: tuple[str, ...]
    time_zone: str
    user_id: UUID
    email: str
    full_name: str
    token_id: UUID
    token_last_used_at: datetime | None
    token_expires_at: datetime


async def token_member(slug: str, token_hash: str) -> TokenMember | None:
    """The live token's scope in the tenant ``slug`` (None: unknown there, revoked, or its
    user or membership inactive). Runs on a pooled connection before any transaction opens:
    the lookup sets the tenant for the implicit transaction it runs in."""
    pool = get_engine().pool
    assert pool is not None, "the pool is not started"
    async with pool.acquire() as connection:
        # Raw SQL: a set-returning function (it reads under the token's tenant's row-level
        # security in one round trip), which Piccolo cannot select from.
        raw = await connection.fetchrow("SELECT * FROM app_token_member($1, $2)", slug, token_hash)
    if raw is None:
        return None
    return TokenMember(**{**dict(raw), "roles": tuple(raw["roles"])})
