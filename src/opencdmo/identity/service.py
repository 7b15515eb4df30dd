"""Users, sign-in, passwords and API tokens: the rules of the identity context."""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from opencdmo.audit import service as audit
from opencdmo.db.tx import global_transaction, tenant_transaction, unit_of_work
from opencdmo.errors import (
    Conflict,
    NotAuthenticated,
    NotFound,
    TooManyAttempts,
    ValidationFailed,
)
from opencdmo.fields import is_email
from opencdmo.identity import passwords, sessions, throttle
from opencdmo.identity.tables import ApiToken, User
from opencdmo.scope import SYSTEM, Actor, RequestMeta, SessionUser, TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy.service import internal_context
from opencdmo.tenancy.token_policy import token_policy

TOKEN_PREFIX = "ocd_"  # noqa: S105 - a prefix, not a secret
UNUSABLE_HASH = "!unset"


@dataclass(frozen=True)
class UserInfo:
    id: UUID
    email: str
    full_name: str
    is_active: bool
    member_of: tuple[UUID, ...]


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not is_email(email):
        raise ValidationFailed(f"'{email}' is not an email address.", details={"field": "email"})
    return email


def _info(row: dict[str, Any]) -> UserInfo:
    return UserInfo(
        row["id"], row["email"], row["full_name"], row["is_active"], tuple(row["member_of"] or ())
    )


async def find_user(email: str) -> UserInfo | None:
    async with global_transaction():
        row = await User.select().where(User.email == normalise_email(email)).first()
    return _info(row) if row else None


async def get_user(user_id: UUID) -> UserInfo:
    async with global_transaction():
        row = await User.select().where(User.id == user_id).first()
    if row is None:
        raise NotFound("No such user.")
    return _info(row)


async def create_user(
    email: str,
    full_name: str,
    password: str,
    *,
    actor: Actor = SYSTEM,
    meta: RequestMeta | None = None,
) -> UserInfo:
    """An account made by the platform operator (CLI) or by tests; tenants invite instead."""
    email = normalise_email(email)
    full_name = printed_name(full_name)
    password_hash = await prepare_password(password, email)
    async with global_transaction():
        if await User.exists().where(User.email == email):
            raise Conflict(f"A user with email {email} already exists.")
        rows = await User.insert(
            User(email=email, full_name=full_name, password_hash=password_hash)
        ).returning(*User.all_columns())
    await audit.record_security(
        "user.created",
        actor=actor,
        meta=meta or RequestMeta(),
        detail={"user_id": str(rows[0]["id"]), "email": email},
    )
    return _info(rows[0])


async def create_user_without_password(
    email: str, full_name: str, *, actor: Actor, meta: RequestMeta
) -> UserInfo:
    """A user who cannot sign in until a password is set (provisioned from a manifest)."""
    email = normalise_email(email)
    async with global_transaction():
        rows = await User.insert(
            User(email=email, full_name=" ".join(full_name.split()), password_hash=UNUSABLE_HASH)
        ).returning(*User.all_columns())
    await audit.record_security(
        "user.created",
        actor=actor,
        meta=meta,
        detail={"user_id": str(rows[0]["id"]), "email": email},
    )
    return _info(rows[0])


def printed_name(full_name: str) -> str:
    """The printed name shown on signatures: control and invisible characters dropped, spaces
    collapsed, required, at most 200."""
    visible = "".join(c for c in full_name if unicodedata.category(c) not in ("Cc", "Cf"))
    name = " ".join(visible.split())
    if not name:
        raise ValidationFailed("A printed full name is required.", details={"field": "full_name"})
    if len(name) > 200:
        raise ValidationFailed(
            "The printed name may have at most 200 characters.", details={"field": "full_name"}
        )
    return name


async def prepare_password(password: str, email: str) -> str:
    """Check the password rules and hash it (slow: call it before a transaction opens)."""
    passwords.check_password_rules(password, email)
    return await passwords.hash_password(password)


async def insert_user(
    connection: Any, user_id: UUID, email: str, full_name: str, password_hash: str
) -> bool:
    """Create the account in the caller's transaction; False when the address has one."""
    created = await connection.fetchval(
        "INSERT INTO users (id, email, full_name, password_hash) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (email) DO NOTHING RETURNING id",
        user_id,
        normalise_email(email),
        full_name,
        password_hash,
    )
    return created is not None


async def record_created(user: Actor, email: str, meta: RequestMeta) -> None:
    """The platform's record of an account created by its owner (after commit)."""
    await audit.record_security(
        "user.created", actor=user, meta=meta, detail={"user_id": str(user.id), "email": email}
    )


async def _store_password(user: UserInfo, password: str) -> None:
    """Check the rules, hash, store; the caller ends sessions and audits."""
    passwords.check_password_rules(password, user.email)
    password_hash = await passwords.hash_password(password)
    async with global_transaction() as connection:
        await connection.execute(
            "UPDATE users SET password_hash = $2, password_changed_at = clock_timestamp() "
            "WHERE id = $1",
            user.id,
            password_hash,
        )


async def has_no_password(user_id: UUID) -> bool:
    async with global_transaction():
        row = await User.select(User.password_hash).where(User.id == user_id).first()
    return row is not None and row["password_hash"] == UNUSABLE_HASH


async def set_password(email: str, password: str, *, actor: Actor, meta: RequestMeta) -> None:
    """Administrative password set (CLI), with the password rules; ends the user's sessions."""
    user = await find_user(email)
    if user is None:
        raise NotFound(f"No user has the email {email}.")
    await _store_password(user, password)
    await sessions.end_all_for_user(user.id, "password set by administrator")
    await audit.record_security(
        "user.password_set",
        actor=actor,
        meta=meta,
        detail={"user_id": str(user.id), "email": user.email},
    )


async def login(
    settings: Settings,
    email: str,
    password: str,
    meta: RequestMeta,
    user_agent: str = "",
    device: str | None = None,
) -> tuple[str, UserInfo]:
    """Check the password (throttled); start a new session and return its cookie value.
    ``device`` is the id of a browser trusted for this email (``identity.devices``)."""
    email = email.strip().lower()
    attempt = throttle.SignIn(email, meta.address or "unknown", device)
    try:
        await throttle.check_sign_in(settings, attempt)
    except TooManyAttempts:
        await audit.record_security(
            "login.throttled", actor=_anonymous(email), meta=meta, detail={"email": email}
        )
        raise
    user = await find_user(email) if "@" in email else None
    if user is None:
        await passwords.verify_nonexistent(password)
        ok = False
    else:
        ok = user.is_active and await _check(user.id, password)
    if not ok or user is None:
        await throttle.record_sign_in_failure(attempt)
        await audit.record_security(
            "login.failed", actor=_anonymous(email), meta=meta, detail={"email": email}
        )
        raise NotAuthenticated("Email or password is incorrect.")
    await throttle.clear_sign_in(attempt)
    token = await sessions.create(settings, user.id, attempt.address, user_agent)
    # The sign-in belongs to the platform; a tenant records it when the session enters it.
    await audit.record_security(
        "login.succeeded", actor=_actor(user), meta=meta, detail={"email": user.email}
    )
    return token, user


def _anonymous(email: str) -> Actor:
    return Actor(id=None, email=email, full_name=f"unauthenticated ({email})"[:200])


async def _check(user_id: UUID, password: str) -> bool:
    async with global_transaction():
        row = await User.select(User.password_hash).where(User.id == user_id).first()
    return row is not None and await passwords.verify_password(row["password_hash"], password)


async def reauthenticate(settings: Settings, ctx: TenantContext, password: str) -> None:
    """Password re-entry (signatures): throttled per session or token, apart from sign-in."""
    user = await get_user(_require_user(ctx))
    credential = _credential(ctx.meta)
    await throttle.check_re_entry(settings, user.email, credential)
    if not user.is_active or not await _check(user.id, password):
        await throttle.record_re_entry_failure(
            user.email, ctx.meta.address or "unknown", credential
        )
        await audit.record_security(
            "signature.password_failed",
            actor=ctx.actor,
            meta=ctx.meta,
            tenant_id=ctx.tenant_id,
            detail={"email": user.email},
        )
        raise NotAuthenticated("The password is incorrect; the signature was not applied.")


def _credential(meta: RequestMeta) -> str:
    """What a re-entry is counted against: the session or token, else the address."""
    return meta.credential or f"address:{meta.address or 'unknown'}"


def _require_user(ctx: TenantContext) -> UUID:
    if ctx.user_id is None:
        raise NotAuthenticated("A signed-in user is required.")
    return ctx.user_id


async def enter_tenant(ctx: TenantContext, session_id: UUID) -> None:
    """A session's first request into a tenant is its sign-in there: recorded once, in that
    tenant's trail only (the tenants a person belongs to never see each other's sign-ins)."""
    async with tenant_transaction(ctx) as connection:
        first = await connection.fetchval(
            "UPDATE sessions SET tenants_entered = array_append(tenants_entered, $2) "
            "WHERE id = $1 AND NOT ($2 = ANY (tenants_entered)) RETURNING id",
            session_id,
            ctx.tenant_id,
        )
        if first is not None:
            await audit.record(
                ctx, "user.login", "user", ctx.user_id, new={"email": ctx.actor.email}
            )


async def logout(token: str, session: SessionUser | None, meta: RequestMeta) -> None:
    """End the session; the sign-out is recorded where its sign-ins were."""
    await sessions.end(token, "logout")
    if session is None:
        return
    actor = Actor(session.user_id, session.email, session.full_name)
    await audit.record_security("logout", actor=actor, meta=meta, detail={"email": session.email})
    for tenant_id in session.tenants_entered:
        ctx = await internal_context(tenant_id, actor, meta)
        if ctx is not None:
            async with unit_of_work(ctx):
                await audit.record(ctx, "user.logout", "user", session.user_id)


async def change_password(
    settings: Settings,
    user_id: UUID,
    session_id: UUID | None,
    current: str,
    new: str,
    meta: RequestMeta,
) -> None:
    user = await get_user(user_id)
    credential = _credential(meta)
    await throttle.check_re_entry(settings, user.email, credential)
    if not await _check(user_id, current):
        await throttle.record_re_entry_failure(user.email, meta.address or "unknown", credential)
        await audit.record_security(
            "password.change_failed", actor=_actor(user), meta=meta, detail={"email": user.email}
        )
        raise ValidationFailed(
            "The current password is incorrect.", details={"field": "current_password"}
        )
    if new == current:
        raise ValidationFailed(
            "The new password must differ from the current one.", details={"field": "new_password"}
        )
    await _store_password(user, new)
    await sessions.end_all_for_user(user_id, "password changed", keep=session_id)
    await audit.record_security(
        "user.password_changed", actor=_actor(user), meta=meta, detail={"email": user.email}
    )


def _actor(user: UserInfo) -> Actor:
    return Actor(user.id, user.email, user.full_name)


async def set_user_active(user_id: UUID, active: bool, *, actor: Actor, meta: RequestMeta) -> None:
    """Disable (ending every session at once) or re-enable a user, platform-wide."""
    user = await get_user(user_id)
    async with global_transaction() as connection:
        await connection.execute("UPDATE users SET is_active = $2 WHERE id = $1", user_id, active)
    if not active:
        await sessions.end_all_for_user(user_id, "user disabled")
    action = "user.enabled" if active else "user.disabled"
    await audit.record_security(
        action, actor=actor, meta=meta, detail={"user_id": str(user_id), "email": user.email}
    )
    for tenant_id in user.member_of:
        ctx = await internal_context(tenant_id, actor, meta)
        if ctx is None:
            continue
        async with unit_of_work(ctx):
            await audit.record(
                ctx,
                action,
                "user",
                user_id,
                old={"is_active": user.is_active},
                new={"is_active": active},
            )


# --- API tokens ---------------------------------------------------------------------------


TOKEN_COLUMNS = (
    ApiToken.id,
    ApiToken.name,
    ApiToken.prefix,
    ApiToken.created_at,
    ApiToken.expires_at,
    ApiToken.user_id,
)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    ctx: TenantContext, user_id: UUID, name: str, days: int | None = None
) -> tuple[str, dict[str, Any]]:
    """A new token for ``user_id`` in this tenant, valid for ``days`` (the tenant's default
    when not given, at most its maximum); the secret is returned once, stored hashed."""
    name = " ".join(name.split()) or "API token"
    policy = await token_policy(ctx)
    days = policy.default_days if days is None else days
    if not 1 <= days <= policy.max_days:
        raise ValidationFailed(
            f"An API token in {ctx.name} is valid for 1 to {policy.max_days} days "
            f"(default {policy.default_days}).",
            details={"field": "days"},
        )
    secret = secrets.token_urlsafe(32)
    prefix = secrets.token_hex(4)
    token = f"{TOKEN_PREFIX}{prefix}_{secret}"
    async with tenant_transaction(ctx) as connection:
        now = await connection.fetchval("SELECT clock_timestamp()")
        rows = await ApiToken.insert(
            ApiToken(
                tenant_id=ctx.tenant_id,
                user_id=user_id,
                name=name[:100],
                token_hash=hash_token(token),
                prefix=prefix,
                created_at=now,
                expires_at=now + timedelta(days=days),
            )
        ).returning(*TOKEN_COLUMNS)
        row = rows[0]
        await audit.record(
            ctx,
            "token.created",
            "api_token",
            row["id"],
            new={
                "name": row["name"],
                "prefix": prefix,
                "user_id": user_id,
                "expires_at": row["expires_at"].isoformat(),
            },
        )
    return token, dict(row)


async def list_tokens(ctx: TenantContext, *, user_id: UUID | None) -> list[dict[str, Any]]:
    async with tenant_transaction(ctx) as connection:
        rows = await connection.fetch(
            "SELECT t.id, t.name, t.prefix, t.created_at, t.expires_at, t.last_used_at, "
            "t.revoked_at, t.expires_at <= clock_timestamp() AS expired, "
            "t.user_id, u.full_name, u.email FROM api_tokens t JOIN users u ON u.id = t.user_id "
            "WHERE ($1::uuid IS NULL OR t.user_id = $1) ORDER BY t.created_at DESC",
            user_id,
        )
    return [dict(row) for row in rows]


async def revoke_token(
    ctx: TenantContext, token_id: UUID, *, only_user: UUID | None, reason: str | None = None
) -> None:
    """Revoke a token at once (scripts using it are refused from now on); the reason, when
    given, is recorded with the audit event."""
    async with tenant_transaction(ctx) as connection:
        row = await connection.fetchrow(
            "SELECT id, user_id, name, revoked_at FROM api_tokens WHERE id = $1 FOR UPDATE",
            token_id,
        )
        if row is None or (only_user is not None and row["user_id"] != only_user):
            raise NotFound("No such API token.")
        if row["revoked_at"] is not None:
            raise Conflict("This API token is already revoked.")
        await connection.execute(
            "UPDATE api_tokens SET revoked_at = clock_timestamp() WHERE id = $1", token_id
        )
        await audit.record(
            ctx,
            "token.revoked",
            "api_token",
            token_id,
            old={"revoked": False},
            new={"revoked": True, "name": row["name"]},
            reason=(reason or "").strip() or None,
        )
