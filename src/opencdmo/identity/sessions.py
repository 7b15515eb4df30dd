"""Server-side sessions in PostgreSQL: only a hash of the cookie value is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from uuid import UUID

from opencdmo.db.tx import global_transaction
from opencdmo.scope import SessionUser
from opencdmo.settings import Settings

TOUCH_AFTER = timedelta(seconds=60)

_LOAD = """
SELECT s.id, s.user_id, s.created_at, s.last_seen_at, s.expires_at, clock_timestamp() AS now,
       s.tenants_entered, u.email, u.full_name, u.is_active, u.member_of
FROM sessions s JOIN users u ON u.id = s.user_id
WHERE s.token_hash = $1 AND s.ended_at IS NULL
"""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(settings: Settings, user_id: UUID, address: str, user_agent: str) -> str:
    """Start a session (always a new id at login); returns the cookie value."""
    token = secrets.token_urlsafe(32)
    async with global_transaction() as connection:
        await connection.execute(
            "INSERT INTO sessions (token_hash, user_id, expires_at, address, user_agent) "
            "VALUES ($1, $2, now() + make_interval(hours => $3), $4, $5)",
            token_hash(token),
            user_id,
            settings.session_lifetime_hours,
            address,
            user_agent[:400],
        )
    return token


async def load(settings: Settings, token: str) -> SessionUser | None:
    """The session's user, or None when it is unknown, ended, idle too long or past its life."""
    idle = timedelta(minutes=settings.session_idle_minutes)
    async with global_transaction() as connection:
        row = await connection.fetchrow(_LOAD, token_hash(token))
        if row is None:
            return None
        reason = None
        if not row["is_active"]:
            reason = "user disabled"
        elif row["now"] >= row["expires_at"]:
            reason = "lifetime reached"
        elif row["now"] - row["last_seen_at"] > idle:
            reason = "idle timeout"
        if reason:
            await _end(connection, row["id"], reason)
            return None
        if row["now"] - row["last_seen_at"] > TOUCH_AFTER:
            await connection.execute(
                "UPDATE sessions SET last_seen_at = clock_timestamp() WHERE id = $1", row["id"]
            )
    return SessionUser(
        row["id"],
        row["user_id"],
        row["email"],
        row["full_name"],
        tuple(row["member_of"] or ()),
        tuple(row["tenants_entered"]),
    )


async def _end(connection: object, session_id: UUID, reason: str) -> None:
    await connection.execute(  # type: ignore[attr-defined]
        "UPDATE sessions SET ended_at = clock_timestamp(), end_reason = $2 "
        "WHERE id = $1 AND ended_at IS NULL",
        session_id,
        reason,
    )


async def end(token: str, reason: str) -> None:
    async with global_transaction() as connection:
        await connection.execute(
            "UPDATE sessions SET ended_at = clock_timestamp(), end_reason = $2 "
            "WHERE token_hash = $1 AND ended_at IS NULL",
            token_hash(token),
            reason,
        )


async def end_all_for_user(user_id: UUID, reason: str, *, keep: UUID | None = None) -> int:
    async with global_transaction() as connection:
        result = await connection.execute(
            "UPDATE sessions SET ended_at = clock_timestamp(), end_reason = $2 "
            "WHERE user_id = $1 AND ended_at IS NULL AND id IS DISTINCT FROM $3",
            user_id,
            reason,
            keep,
        )
    return int(result.split()[-1])
