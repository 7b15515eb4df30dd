"""Invitations: reads and writes of ``invitations``, as typed rows. Expiry is judged by the
database's clock (``clock_timestamp()``), the clock the expiry was set by."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from piccolo.querystring import QueryString

from opencdmo.tenancy.tables import Invitation


@dataclass(frozen=True)
class InvitationRow:
    id: UUID
    email: str
    roles: tuple[str, ...]
    invited_by_name: str
    created_at: datetime
    expires_at: datetime
    status: str
    expired: bool  # expires_at has passed (the status may still say pending)
    mail_state: str | None = None  # queued, sent or failed; None: not e-mailed
    mailed_at: datetime | None = None
    mail_error: str | None = None


def _clock() -> QueryString:
    """The database's clock (Piccolo has no function for ``clock_timestamp()``)."""
    return QueryString("clock_timestamp()")


def _columns() -> tuple[Any, ...]:
    expired = Invitation.expires_at <= _clock()
    # A comparison as a selected value: Piccolo selects columns and functions only.
    return (
        Invitation.id,
        Invitation.email,
        Invitation.roles,
        Invitation.invited_by_name,
        Invitation.created_at,
        Invitation.expires_at,
        Invitation.status,
        QueryString("{}", expired.querystring).as_alias("expired"),
        Invitation.mail_state,
        Invitation.mailed_at,
        Invitation.mail_error,
    )


def _row(raw: dict[str, Any]) -> InvitationRow:
    return InvitationRow(
        raw["id"],
        raw["email"],
        tuple(raw["roles"]),
        raw["invited_by_name"],
        raw["created_at"],
        raw["expires_at"],
        raw["status"],
        bool(raw["expired"]),
        raw.get("mail_state"),
        raw.get("mailed_at"),
        raw.get("mail_error"),
    )


# ON CONFLICT on the partial unique index of pending invitations (its WHERE), which Piccolo's
# on_conflict cannot say: a second pending invitation of one address inserts nothing.
_INSERT = """
INSERT INTO invitations (tenant_id, email, roles, token_hash, invited_by, invited_by_name,
                         expires_at)
VALUES ({}, {}, {}, {}, {}, {}, clock_timestamp() + make_interval(hours => {}))
ON CONFLICT (tenant_id, email) WHERE status = 'pending' DO NOTHING
RETURNING id, email, roles, invited_by_name, created_at, expires_at, status,
          expires_at <= clock_timestamp() AS expired
"""


async def insert_invitation(
    tenant_id: UUID,
    email: str,
    roles: list[str],
    token_hash: str,
    invited_by: UUID | None,
    invited_by_name: str,
    hours: int,
) -> InvitationRow | None:
    """A pending invitation valid for ``hours``; None when the address has one pending."""
    rows = await Invitation.raw(
        _INSERT, tenant_id, email, roles, token_hash, invited_by, invited_by_name, hours
    )
    return _row(rows[0]) if rows else None


async def expire_pending(email: str) -> list[UUID]:
    """Mark the address's pending invitations whose time has passed expired; their ids."""
    rows = (
        await Invitation.update({Invitation.status: "expired", Invitation.closed_at: _clock()})
        .where(
            (Invitation.email == email)
            & (Invitation.status == "pending")
            & (Invitation.expires_at <= _clock())
        )
        .returning(Invitation.id)
    )
    return [r["id"] for r in rows]


async def pending() -> list[InvitationRow]:
    """Invitations not yet accepted or revoked (expired ones included), oldest first."""
    rows = (
        await Invitation.select(*_columns())
        .where(Invitation.status == "pending")
        .order_by(Invitation.created_at)
    )
    return [_row(r) for r in rows]


async def invitation(invitation_id: UUID, *, lock: bool = False) -> InvitationRow | None:
    """The invitation (row-locked until the transaction ends with ``lock``)."""
    query = Invitation.select(*_columns()).where(Invitation.id == invitation_id)
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    return None if raw is None else _row(raw)


async def invitation_by_token(token_hash: str, *, lock: bool = False) -> InvitationRow | None:
    """The invitation whose link carries the token with this hash."""
    query = Invitation.select(*_columns()).where(Invitation.token_hash == token_hash)
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    return None if raw is None else _row(raw)


async def close(invitation_id: UUID, status: str) -> None:
    """End a pending invitation: revoked or expired."""
    await Invitation.update({Invitation.status: status, Invitation.closed_at: _clock()}).where(
        Invitation.id == invitation_id
    )


async def accepted(invitation_id: UUID, user_id: UUID) -> None:
    await Invitation.update(
        {
            Invitation.status: "accepted",
            Invitation.closed_at: _clock(),
            Invitation.accepted_by: user_id,
        }
    ).where(Invitation.id == invitation_id)


async def set_mail(
    invitation_id: UUID, state: str, *, error: str | None = None, sent: bool = False
) -> None:
    """The invitation's mail state: queued, sent (now, by the database's clock) or failed
    (with why, in words)."""
    values: dict[Any, Any] = {Invitation.mail_state: state, Invitation.mail_error: error}
    if sent:
        values[Invitation.mailed_at] = _clock()
    await Invitation.update(values).where(Invitation.id == invitation_id)
