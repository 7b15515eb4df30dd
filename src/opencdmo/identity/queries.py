"""Identity data access: every read and write of users, sessions, login failures and API
tokens, as typed rows.

Each function runs in the transaction open in its context (the caller opens it: a global one
for users, sessions and failures, the tenant's for its tokens); none opens or commits one of
its own, except the token lookup, which runs before any transaction (see ``token_member``).
Times the database compares with its own clock are written from that clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from piccolo.custom_types import Combinable
from piccolo.query.functions.aggregate import Count, Max
from piccolo.querystring import QueryString

from opencdmo.db import sql
from opencdmo.db.engine import get_engine
from opencdmo.db.sql import CLOCK, DEFAULT
from opencdmo.identity.tables import ApiToken, LoginFailure, Session, User

# --- users ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserInfo:
    id: UUID
    email: str
    full_name: str
    is_active: bool
    member_of: tuple[UUID, ...]


_USER = (User.id, User.email, User.full_name, User.is_active, User.member_of)


def _user(raw: dict[str, Any]) -> UserInfo:
    return UserInfo(
        raw["id"], raw["email"], raw["full_name"], raw["is_active"], tuple(raw["member_of"] or ())
    )


async def user_by_email(email: str) -> UserInfo | None:
    raw = await User.select(*_USER).where(User.email == email).first()
    return None if raw is None else _user(raw)


async def user_by_id(user_id: UUID) -> UserInfo | None:
    raw = await User.select(*_USER).where(User.id == user_id).first()
    return None if raw is None else _user(raw)


async def email_taken(email: str) -> bool:
    return bool(await User.exists().where(User.email == email))


async def insert_user(
    email: str, full_name: str, password_hash: str, user_id: UUID | None = None
) -> UserInfo | None:
    """The new account (its id given, or the database's); None when the address has one."""
    rows = (
        await User.insert(
            User(
                id=DEFAULT if user_id is None else user_id,
                email=email,
                full_name=full_name,
                password_hash=password_hash,
                is_active=DEFAULT,
                member_of=DEFAULT,
                created_at=DEFAULT,
                password_changed_at=DEFAULT,
            )
        )
        .on_conflict(target=User.email, action="DO NOTHING")
        .returning(*_USER)
    )
    return _user(rows[0]) if rows else None


async def password_hash(user_id: UUID) -> str | None:
    raw = await User.select(User.password_hash).where(User.id == user_id).first()
    return None if raw is None else str(raw["password_hash"])


async def set_password_hash(user_id: UUID, password_hash: str) -> None:
    await User.update({User.password_hash: password_hash, User.password_changed_at: CLOCK}).where(
        User.id == user_id
    )


async def set_active(user_id: UUID, active: bool) -> None:
    await User.update({User.is_active: active}).where(User.id == user_id)


# --- sessions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRow:
    """An open session with its user, and the database's clock when it was read."""

    id: UUID
    user_id: UUID
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    now: datetime
    tenants_entered: tuple[UUID, ...]
    email: str
    full_name: str
    is_active: bool
    member_of: tuple[UUID, ...]


# Raw SQL: read on every request signed in by cookie. Piccolo's select of the same join cost
# 435-575 us a lookup here against 137-159 us for this statement (one transaction, pooled,
# 2,000 lookups; the transaction alone 92 us): its join columns are rebuilt on every call.
_OPEN_SESSION = """
SELECT s.id, s.user_id, s.created_at, s.last_seen_at, s.expires_at, clock_timestamp() AS now,
       s.tenants_entered, u.email, u.full_name, u.is_active, u.member_of
FROM sessions s JOIN users u ON u.id = s.user_id
WHERE s.token_hash = $1 AND s.ended_at IS NULL
"""


async def open_session(token_hash: str) -> SessionRow | None:
    raw = await sql.connection().fetchrow(_OPEN_SESSION, token_hash)
    if raw is None:
        return None
    return SessionRow(
        raw["id"],
        raw["user_id"],
        raw["created_at"],
        raw["last_seen_at"],
        raw["expires_at"],
        raw["now"],
        tuple(raw["tenants_entered"]),
        raw["email"],
        raw["full_name"],
        raw["is_active"],
        tuple(raw["member_of"] or ()),
    )


async def insert_session(
    token_hash: str, user_id: UUID, hours: int, address: str, user_agent: str
) -> None:
    await Session.insert(
        Session(
            id=DEFAULT,
            token_hash=token_hash,
            user_id=user_id,
            created_at=DEFAULT,
            last_seen_at=DEFAULT,
            expires_at=QueryString("now() + make_interval(hours => {})", hours),
            address=address,
            user_agent=user_agent,
            tenants_entered=DEFAULT,
        )
    )


async def touch_session(session_id: UUID) -> None:
    await Session.update({Session.last_seen_at: CLOCK}).where(Session.id == session_id)


async def _end_sessions(where: Combinable, reason: str) -> int:
    """End the open sessions that match; returns how many."""
    rows = (
        await Session.update({Session.ended_at: CLOCK, Session.end_reason: reason})
        .where(where & Session.ended_at.is_null())
        .returning(Session.id)
    )
    return len(rows)


async def end_session(session_id: UUID, reason: str) -> None:
    await _end_sessions(Session.id == session_id, reason)


async def end_session_by_token(token_hash: str, reason: str) -> None:
    await _end_sessions(Session.token_hash == token_hash, reason)


async def end_user_sessions(user_id: UUID, reason: str, *, keep: UUID | None = None) -> int:
    """End the user's open sessions, but ``keep``; returns how many."""
    where: Combinable = Session.user_id == user_id
    if keep is not None:
        where = where & (Session.id != keep)
    return await _end_sessions(where, reason)


async def enter_tenant(session_id: UUID, tenant_id: UUID) -> bool:
    """Note that the session entered the tenant; False when it had already."""
    rows = (
        await Session.update({Session.tenants_entered: Session.tenants_entered.append(tenant_id)})
        .where((Session.id == session_id) & Session.tenants_entered.not_any(tenant_id))
        .returning(Session.id)
    )
    return bool(rows)


# --- login failures -------------------------------------------------------------------------


@dataclass(frozen=True)
class Failures:
    """Which failures count: of one kind, matching each field given; ``untrusted`` keeps only
    those from no trusted browser or credential."""

    kind: str
    email: str | None = None
    address: str | None = None
    source: str | None = None
    untrusted: bool = False

    def within(self, seconds: float) -> Combinable:
        where: Combinable = (LoginFailure.failed_at > sql.since(seconds)) & (
            LoginFailure.kind == self.kind
        )
        for column, value in (
            (LoginFailure.email, self.email),
            (LoginFailure.address, self.address),
            (LoginFailure.source, self.source),
        ):
            if value is not None:
                where = where & (column == value)
        if self.untrusted:
            where = where & LoginFailure.source.is_null()
        return where


@dataclass(frozen=True)
class FailureCount:
    count: int  # failures, or accounts failed
    since: float  # seconds since the latest of them


async def seconds_left(failures: Failures, window: float, limit: int) -> list[float]:
    """For each of the newest ``limit`` failures in the window, newest first: the seconds
    until it leaves the window."""
    left = QueryString(
        "extract(epoch FROM ({} + make_interval(secs => {}) - clock_timestamp()))",
        LoginFailure.failed_at,
        float(window),
    ).as_alias("left")
    rows = (
        await LoginFailure.select(left)
        .where(failures.within(window))
        .order_by(LoginFailure.failed_at, ascending=False)
        .limit(int(limit))
    )
    return [float(r["left"]) for r in rows]


async def count_failures(failures: Failures, window: float, *, accounts: bool) -> FailureCount:
    """How many failures in the window (or, with ``accounts``, how many accounts failed)."""
    counted = Count(distinct=[LoginFailure.email]) if accounts else Count()
    since = QueryString(
        "extract(epoch FROM (clock_timestamp() - {}))", Max(LoginFailure.failed_at)
    ).as_alias("since")
    raw = await LoginFailure.select(counted.as_alias("n"), since).where(failures.within(window))
    n, seconds = raw[0]["n"], raw[0]["since"]
    return FailureCount(int(n), float(seconds) if seconds is not None else 0.0)


async def add_failure(kind: str, email: str, address: str, source: str | None) -> None:
    await LoginFailure.insert(
        LoginFailure(
            id=DEFAULT, kind=kind, email=email, address=address, source=source, failed_at=DEFAULT
        )
    )


async def clear_failures(kind: str, email: str, address: str, source: str | None) -> None:
    """Forget the failures of ``email`` from ``address`` (untrusted) and from ``source``."""
    here: Combinable = LoginFailure.source.is_null() & (LoginFailure.address == address)
    if source is not None:
        here = here | (LoginFailure.source == source)
    await LoginFailure.delete().where(
        (LoginFailure.kind == kind) & (LoginFailure.email == email) & here
    )


# --- API tokens -----------------------------------------------------------------------------


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
