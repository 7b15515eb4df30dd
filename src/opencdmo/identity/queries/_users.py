"""Users: accounts, their password hashes and whether they are active."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opencdmo.db.sql import CLOCK, DEFAULT
from opencdmo.identity.tables import User


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


async def signing_password_hash(user_id: UUID) -> str | None:
    raw = await User.select(User.signing_password_hash).where(User.id == user_id).first()
    return None if raw is None else raw["signing_password_hash"]


async def set_signing_password_hash(user_id: UUID, password_hash: str) -> None:
    await User.update({User.signing_password_hash: password_hash}).where(User.id == user_id)


async def notify_by_email(user_id: UUID) -> bool | None:
    """The person's choice to be mailed work awaiting them (None: no such user)."""
    raw = await User.select(User.notify_by_email).where(User.id == user_id).first()
    return None if raw is None else bool(raw["notify_by_email"])


async def set_notify_by_email(user_id: UUID, wanted: bool) -> bool | None:
    """Store the choice; the one it replaces (None: no such user). Row-locked, so two
    changes at once are told apart."""
    raw = (
        await User.select(User.notify_by_email)
        .where(User.id == user_id)
        .lock_rows("NO KEY UPDATE")
        .first()
    )
    if raw is None:
        return None
    await User.update({User.notify_by_email: wanted}).where(User.id == user_id)
    return bool(raw["notify_by_email"])


async def wanting_mail(user_ids: list[UUID]) -> set[UUID]:
    """Of these people, the active ones who want work awaiting them mailed."""
    if not user_ids:
        return set()
    rows = await User.select(User.id).where(
        User.id.is_in(user_ids), User.is_active.eq(True), User.notify_by_email.eq(True)
    )
    return {row["id"] for row in rows}
