"""Server-side sessions in PostgreSQL: only a hash of the cookie value is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from uuid import UUID

from opencdmo.db.tx import global_transaction
from opencdmo.identity import queries
from opencdmo.scope import SessionUser
from opencdmo.settings import Settings

TOUCH_AFTER = timedelta(seconds=60)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(settings: Settings, user_id: UUID, address: str, user_agent: str) -> str:
    """Start a session (always a new id at login); returns the cookie value."""
    token = secrets.token_urlsafe(32)
    async with global_transaction():
        await queries.insert_session(
            token_hash(token), user_id, settings.session_lifetime_hours, address, user_agent[:400]
        )
    return token


async def load(settings: Settings, token: str) -> SessionUser | None:
    """The session's user, or None when it is unknown, ended, idle too long or past its life."""
    idle = timedelta(minutes=settings.session_idle_minutes)
    async with global_transaction():
        row = await queries.open_session(token_hash(token))
        if row is None:
            return None
        reason = None
        if not row.is_active:
            reason = "user disabled"
        elif row.now >= row.expires_at:
            reason = "lifetime reached"
        elif row.now - row.last_seen_at > idle:
            reason = "idle timeout"
        if reason:
            await queries.end_session(row.id, reason)
            return None
        if row.now - row.last_seen_at > TOUCH_AFTER:
            await queries.touch_session(row.id)
    return SessionUser(
        row.id, row.user_id, row.email, row.full_name, row.member_of, row.tenants_entered
    )


async def end(token: str, reason: str) -> None:
    async with global_transaction():
        await queries.end_session_by_token(token_hash(token), reason)


async def end_all_for_user(user_id: UUID, reason: str, *, keep: UUID | None = None) -> int:
    async with global_transaction():
        return await queries.end_user_sessions(user_id, reason, keep=keep)
