"""Users, sign-in, passwords and API tokens: the rules of the identity context."""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from datetime import timedelta
from uuid import UUID

from opencdmo.audit import service as audit
from opencdmo.db.sql import clock
from opencdmo.db.tx import (
    global_transaction,
    tenant_id_transaction,
    tenant_transaction,
    unit_of_work,
)
from opencdmo.errors import (
    Conflict,
    NotAuthenticated,
    NotFound,
    TooManyAttempts,
    ValidationFailed,
)
from opencdmo.fields import is_email
from opencdmo.identity import passwords, queries, sessions, throttle
from opencdmo.identity.queries import TokenRow, UserInfo
from opencdmo.scope import SYSTEM, Actor, RequestMeta, SessionUser, TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy.service import internal_context
from opencdmo.tenancy.token_policy import token_policy

TOKEN_PREFIX = "ocd_"  # noqa: S105 - a prefix, not a secret
UNUSABLE_HASH = "!unset"


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not is_email(email):
        raise ValidationFailed(f"'{email}' is not an email address.", details={"field": "email"})
    return email


async def find_user(email: str) -> UserInfo | None:
    async with global_transaction():
        return await queries.user_by_email(normalise_email(email))


async def get_user(user_id: UUID) -> UserInfo:
    async with global_transaction():
        user = await queries.user_by_id(user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


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
        if await queries.email_taken(email):
            raise Conflict(f"A user with email {email} already exists.")
        user = await queries.insert_user(email, full_name, password_hash)
    if user is None:  # created by someone else meanwhile
        raise Conflict(f"A user with email {email} already exists.")
    await audit.record_security(
        "user.created",
        actor=actor,
        meta=meta or RequestMeta(),
        detail={"user_id": str(user.id), "email": email},
    )
    return user


async def create_user_without_password(
    email: str, full_name: str, *, actor: Actor, meta: RequestMeta
) -> UserInfo:
    """A user who cannot sign in until a password is set (provisioned from a manifest)."""
    email = normalise_email(email)
    async with global_transaction():
        user = await queries.insert_user(email, " ".join(full_name.split()), UNUSABLE_HASH)
    if user is None:
        raise Conflict(f"A user with email {email} already exists.")
    await audit.record_security(
        "user.created",
        actor=actor,
        meta=meta,
        detail={"user_id": str(user.id), "email": email},
    )
    return user


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


async def insert_user(user_id: UUID, email: str, full_name: str, password_hash: str) -> bool:
    """Create the account in the caller's transaction; False when the address has one."""
    user = await queries.insert_user(normalise_email(email), full_name, password_hash, user_id)
    return user is not None


async def record_created(user: Actor, email: str, meta: RequestMeta) -> None:
    """The platform's record of an account created by its owner (after commit)."""
    await audit.record_security(
        "user.created", actor=user, meta=meta, detail={"user_id": str(user.id), "email": email}
    )


async def _store_password(user: UserInfo, password: str) -> None:
    """Check the rules, hash, store; the caller ends sessions and audits."""
    passwords.check_password_rules(password, user.email)
    password_hash = await passwords.hash_password(password)
    async with global_transaction():
        await queries.set_password_hash(user.id, password_hash)


async def has_no_password(user_id: UUID) -> bool:
    async with global_transaction():
        return await queries.password_hash(user_id) == UNUSABLE_HASH


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
    if ok and user is not None:
        await _password_sign_in_allowed(user, meta)
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


async def _password_sign_in_allowed(user: UserInfo, meta: RequestMeta) -> None:
    """A person in a tenant that signs in only through its identity provider cannot use a
    password (refused here, not only hidden on the page)."""
    from opencdmo.identity.sso import service as sso

    tenant = await sso.password_sign_in_refused(user.member_of)
    if tenant is not None:
        await audit.record_security(
            "login.refused", actor=_actor(user), meta=meta, detail={"email": user.email}
        )
        raise NotAuthenticated(
            f"{tenant} signs in through its identity provider only: use its single sign-on."
        )


def _anonymous(email: str) -> Actor:
    return Actor(id=None, email=email, full_name=f"unauthenticated ({email})"[:200])


async def _check(user_id: UUID, password: str) -> bool:
    async with global_transaction():
        stored = await queries.password_hash(user_id)
    return stored is not None and await passwords.verify_password(stored, password)


async def reauthenticate(settings: Settings, ctx: TenantContext, password: str) -> str:
    """Re-authentication for a signature, throttled per session or token apart from sign-in;
    returns how: the account ``password``, or under the tenant's single sign-on a
    ``signing_password`` or a one-time code from a ``reauthentication`` at the provider."""
    from opencdmo.identity.sso import service as sso  # single sign-on builds on this module

    user = await get_user(_require_user(ctx))
    credential = _credential(ctx.meta)
    await throttle.check_re_entry(settings, user.email, credential)
    config = await sso.config_of(ctx.tenant_id)
    method = "password" if config is None else sso.SIGNING_METHODS[config.signing]
    if method == "reauthentication":
        ok = user.is_active and await sso.use_signing_grant(settings, ctx, password)
    elif method == "signing_password":
        ok = user.is_active and await _check_signing_password(user.id, password)
    else:
        ok = user.is_active and await _check(user.id, password)
    if not ok:
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
        raise NotAuthenticated(_REFUSED[method])
    return method


_REFUSED = {
    "password": "The password is incorrect; the signature was not applied.",
    "signing_password": "The signing password is incorrect; the signature was not applied.",
    "reauthentication": "The signing code is not valid (used, expired or not yours); "
    "re-authenticate with the identity provider and try again.",
}


async def _check_signing_password(user_id: UUID, password: str) -> bool:
    async with global_transaction():
        stored = await queries.signing_password_hash(user_id)
    return stored is not None and await passwords.verify_password(stored, password)


async def set_signing_password_with_code(
    settings: Settings, ctx: TenantContext, code: str, password: str
) -> None:
    """Set the signing password, proven by the one-time code of a fresh re-authentication at
    the tenant's provider (a session alone does not do)."""
    from opencdmo.identity.sso import service as sso

    user = await get_user(_require_user(ctx))
    credential = _credential(ctx.meta)
    await throttle.check_re_entry(settings, user.email, credential)
    passwords.check_password_rules(password, user.email)
    if not await sso.use_signing_grant(settings, ctx, code):
        await throttle.record_re_entry_failure(
            user.email, ctx.meta.address or "unknown", credential
        )
        raise NotAuthenticated(_REFUSED["reauthentication"])
    await set_signing_password(settings, ctx, password, ctx.meta)


async def set_signing_password(
    settings: Settings, ctx: TenantContext, password: str, meta: RequestMeta
) -> None:
    """The signing password a person signs with in a tenant whose single sign-on says so
    (the caller has proven who sets it: ``set_signing_password_with_code``)."""
    user = await get_user(_require_user(ctx))
    passwords.check_password_rules(password, user.email)
    password_hash = await passwords.hash_password(password)
    async with global_transaction():
        await queries.set_signing_password_hash(user.id, password_hash)
    await audit.record_security(
        "user.signing_password_set", actor=_actor(user), meta=meta, detail={"email": user.email}
    )


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
    async with tenant_transaction(ctx):
        if await queries.enter_tenant(session_id, ctx.tenant_id):
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


async def notify_by_email(user_id: UUID) -> bool:
    """Whether the person wants work awaiting their action mailed to them."""
    async with global_transaction():
        wanted = await queries.notify_by_email(user_id)
    if wanted is None:
        raise NotFound("No such user.")
    return wanted


async def set_notify_by_email(user_id: UUID, wanted: bool, meta: RequestMeta) -> bool:
    """The person's own choice to be mailed work awaiting them (their account page); a
    change is a security event of the platform's chain, like the account's other changes.
    False: it was so already."""
    user = await get_user(user_id)
    async with global_transaction():
        old = await queries.set_notify_by_email(user_id, wanted)
    if old is None:
        raise NotFound("No such user.")
    if old == wanted:
        return False
    await audit.record_security(
        "user.notifications_changed",
        actor=_actor(user),
        meta=meta,
        detail={"email": user.email, "notify_by_email": wanted},
    )
    return True


async def wanting_mail(user_ids: list[UUID]) -> set[UUID]:
    """Of these people, the active ones who want work awaiting them mailed (a global read,
    joining the open transaction)."""
    async with global_transaction():
        return await queries.wanting_mail(user_ids)


def _actor(user: UserInfo) -> Actor:
    return Actor(user.id, user.email, user.full_name)


async def set_user_active(user_id: UUID, active: bool, *, actor: Actor, meta: RequestMeta) -> None:
    """Disable (ending every session at once) or re-enable a user, platform-wide."""
    user = await get_user(user_id)
    async with global_transaction():
        await queries.set_active(user_id, active)
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


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    ctx: TenantContext, user_id: UUID, name: str, days: int | None = None
) -> tuple[str, TokenRow]:
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
    async with tenant_transaction(ctx):
        now = await clock()
        row = await queries.insert_token(
            ctx.tenant_id,
            user_id,
            name[:100],
            hash_token(token),
            prefix,
            now,
            now + timedelta(days=days),
        )
        await audit.record(
            ctx,
            "token.created",
            "api_token",
            row.id,
            new={
                "name": row.name,
                "prefix": prefix,
                "user_id": user_id,
                "expires_at": row.expires_at.isoformat(),
            },
        )
    return token, row


async def list_tokens(ctx: TenantContext, *, user_id: UUID | None) -> list[TokenRow]:
    async with tenant_transaction(ctx):
        return await queries.tokens(user_id)


async def revoke_token(
    ctx: TenantContext, token_id: UUID, *, only_user: UUID | None, reason: str | None = None
) -> None:
    """Revoke a token at once (scripts using it are refused from now on); the reason, when
    given, is recorded with the audit event."""
    async with tenant_transaction(ctx):
        row = await queries.token_state(token_id)
        if row is None or (only_user is not None and row.user_id != only_user):
            raise NotFound("No such API token.")
        if row.revoked_at is not None:
            raise Conflict("This API token is already revoked.")
        await queries.revoke_token(token_id)
        await audit.record(
            ctx,
            "token.revoked",
            "api_token",
            token_id,
            old={"revoked": False},
            new={"revoked": True, "name": row.name},
            reason=(reason or "").strip() or None,
        )


async def touch_token(tenant_id: UUID, token_id: UUID) -> None:
    """Note a token's use (the resolver does, at most once a minute per token)."""
    async with tenant_id_transaction(tenant_id):
        await queries.touch_token(token_id)


async def token_member(slug: str, token_hash: str) -> queries.TokenMember | None:
    """The scope in the tenant ``slug`` of the bearer token with this hash (``hash_token``),
    looked up before any transaction opens."""
    return await queries.token_member(slug, token_hash)
