"""Single sign-on: start a request, finish it (the provider's answer checked), provision or
update the person and their roles in the tenant, and the signing re-authentication.

A person is known by the provider's ``(issuer, sub)``. The first sign-in links it to the
account with the token's email only when that account is in no other tenant and has no other
link: another tenant's provider can never take over someone's account.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any
from uuid import UUID

from authlib.common.security import generate_token  # type: ignore[import-untyped]

from opencdmo.audit import service as audit
from opencdmo.db.tx import global_transaction
from opencdmo.errors import AppError, Forbidden, NotAuthenticated, NotFound
from opencdmo.identity import queries as identity_queries
from opencdmo.identity import sessions
from opencdmo.identity.queries import UserInfo
from opencdmo.identity.sso import provider
from opencdmo.identity.sso import queries as q
from opencdmo.identity.sso.config import SsoConfig
from opencdmo.scope import Actor, RequestMeta, TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy

UNUSABLE_HASH = "!unset"
SIGN_IN, SIGNING = "sign_in", "signing"


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class TenantSso:
    tenant_id: UUID
    slug: str
    name: str
    config: SsoConfig


async def tenant_sso(slug: str) -> TenantSso | None:
    """The tenant's single sign-on, or None when it has none (or no such tenant)."""
    async with global_transaction():
        found = await q.tenant_sso(slug)
    if found is None or found[2] is None:
        return None
    return TenantSso(found[0], slug, found[1], SsoConfig.from_json(found[2]))


async def config_of(tenant_id: UUID) -> SsoConfig | None:
    async with global_transaction():
        data = await q.tenant_sso_by_id(tenant_id)
    return None if data is None else SsoConfig.from_json(data)


@dataclass(frozen=True)
class SigningMethod:
    """How a person of the tenant proves themselves for a signature, for the dialogs that ask:
    ``password`` (their account's), ``signing_password`` (set on its page) or
    ``reauthentication`` (a fresh sign-in at the provider gives a one-time code). ``provider``:
    the provider's name as the sign-in page shows it."""

    method: str = "password"
    provider: str = ""

    @property
    def reauthenticates(self) -> bool:
        return self.method == "reauthentication"


SIGNING_METHODS = {"reauthenticate": "reauthentication", "password": "signing_password"}


async def signing_method(ctx: TenantContext) -> SigningMethod:
    """The tenant's signing method (its single sign-on's choice, or the account password)."""
    config = await config_of(ctx.tenant_id)
    if config is None:
        return SigningMethod()
    return SigningMethod(SIGNING_METHODS[config.signing], config.label or ctx.name)


async def set_config(tenant_id: UUID, config: SsoConfig | None) -> bool:
    """Store the tenant's configuration (manifests); True when it changed."""
    async with global_transaction():
        current = await q.tenant_sso_by_id(tenant_id)
        wanted = None if config is None else config.to_json()
        if current == wanted:
            return False
        await q.set_tenant_sso(tenant_id, wanted)
    provider.forget()
    return True


async def password_sign_in_refused(member_of: tuple[UUID, ...]) -> str | None:
    """The name of a tenant of the person that has switched password sign-in off, if any."""
    for tenant_id in member_of:
        config = await config_of(tenant_id)
        if config is not None and not config.password_sign_in:
            ctx = await tenancy.internal_context(tenant_id, _system(config), RequestMeta())
            return ctx.name if ctx else "your organisation"
    return None


async def start(
    settings: Settings,
    sso: TenantSso,
    redirect_uri: str,
    next_: str = "",
    *,
    signer: UUID | None = None,
) -> str:
    """Record a new request (state, nonce, PKCE verifier: server side, used once) and return
    the provider's authorization URL. ``signer``: a signature's re-authentication."""
    state, nonce, verifier = generate_token(43), generate_token(32), generate_token(64)
    purpose = SIGNING if signer is not None else SIGN_IN
    async with global_transaction():
        await q.insert_request(_hash(state), sso.tenant_id, purpose, nonce, verifier, next_, signer)
    return await provider.authorization_url(
        settings,
        sso.config,
        redirect_uri,
        state=state,
        nonce=nonce,
        code_verifier=verifier,
        fresh_login=signer is not None,
    )


@dataclass(frozen=True)
class Finished:
    """A finished request: a session for a sign-in, or a one-time signing grant."""

    tenant_slug: str
    next: str
    session_token: str | None = None
    signing_grant: str | None = None


async def finish(
    settings: Settings,
    state: str,
    code: str,
    redirect_uri: str,
    meta: RequestMeta,
    user_agent: str = "",
) -> Finished:
    """The provider sent the browser back: use the request once, exchange the code, check the
    ID token, then sign the person in (or grant the signature)."""
    async with global_transaction():
        request = await q.use_request(_hash(state), timedelta(minutes=settings.sso_request_minutes))
    if request is None:
        await audit.record_security(
            "sso.refused", actor=_anonymous(), meta=meta, detail={"reason": "unknown state"}
        )
        raise NotAuthenticated("This sign-in link was already used or has expired; start again.")
    config = await config_of(request.tenant_id)
    ctx = await tenancy.internal_context(request.tenant_id, _anonymous(), meta)
    if config is None or ctx is None:
        raise NotFound("Single sign-on is not configured for this organisation.")
    try:
        id_token = await provider.exchange_code(
            settings, config, redirect_uri, code, request.code_verifier
        )
        claims = await provider.verify_id_token(settings, config, id_token, request.nonce)
    except NotAuthenticated as exc:
        await _refused(ctx, config, meta, exc.message)
        raise
    if request.purpose == SIGNING:
        grant = await _signing_grant(ctx, config, request, claims, meta)
        return Finished(ctx.slug, request.next, signing_grant=grant)
    user = await sign_in(settings, ctx, config, claims, meta)
    token = await sessions.create(settings, user.id, meta.address or "unknown", user_agent)
    await audit.record_security(
        "login.succeeded",
        actor=Actor(user.id, user.email, user.full_name),
        meta=meta,
        detail={"email": user.email, "method": "sso", "issuer": config.issuer},
    )
    return Finished(ctx.slug, request.next, session_token=token)


async def _refused(ctx: TenantContext, config: SsoConfig, meta: RequestMeta, why: str) -> None:
    await audit.record_security(
        "sso.refused",
        actor=_anonymous(),
        meta=meta,
        tenant_id=ctx.tenant_id,
        detail={"issuer": config.issuer, "reason": why},
    )


def _anonymous() -> Actor:
    return Actor(id=None, email="sso", full_name="single sign-on (not signed in)")


def _system(config: SsoConfig) -> Actor:
    return Actor(id=None, email="sso", full_name=f"Single sign-on ({config.issuer})"[:200])


def _email(claims: dict[str, Any]) -> str:
    email = str(claims.get("email") or "").strip().lower()
    if not email or claims.get("email_verified") is False:
        raise NotAuthenticated("The identity provider gave no verified email address.")
    return email


def _groups(config: SsoConfig, claims: dict[str, Any]) -> list[str]:
    value = claims.get(config.groups_claim) or []
    return [str(v) for v in (value if isinstance(value, list) else [value])]


async def sign_in(
    settings: Settings,
    ctx: TenantContext,
    config: SsoConfig,
    claims: dict[str, Any],
    meta: RequestMeta,
) -> UserInfo:
    """The person the checked claims name, provisioned or updated in the tenant with the
    roles their groups map to; refused (their sessions ended) when none map or they are
    disabled, and refused when their email's domain is not allowed."""
    email = _email(claims)
    if not config.allows_email(email):
        await _refused(ctx, config, meta, f"email domain not allowed ({email})")
        raise Forbidden(
            f"{email} may not sign in to {ctx.name}: its email domain is not one the "
            "organisation allows."
        )
    user = await _person(ctx, config, claims, email, meta)
    roles = config.roles_for(_groups(config, claims))
    system = replace(ctx, actor=_system(config))
    membership = await tenancy.membership_of(system, user.id)
    if not user.is_active or not roles:
        await _shut_out(system, config, user, membership, meta, active=user.is_active)
    if membership is None:
        await tenancy.add_member(system, user.id, roles)
    else:
        member = await tenancy.get_member(system, membership)
        if not member.is_active:
            await _shut_out(system, config, user, membership, meta, active=False)
        await tenancy.set_roles(
            system, membership, roles, "Roles from the identity provider's groups at sign-in"
        )
    return user


async def _shut_out(
    ctx: TenantContext,
    config: SsoConfig,
    user: UserInfo,
    membership: UUID | None,
    meta: RequestMeta,
    *,
    active: bool,
) -> None:
    ended = await sessions.end_all_for_user(user.id, "refused by single sign-on")
    why = "user disabled" if not active else "no group maps to a role"
    if active and membership is not None:
        # The tenant's last admin keeps the role; the sign-in is refused all the same.
        with contextlib.suppress(AppError):
            await tenancy.set_roles(ctx, membership, [], "No provider group maps to a role")
    await _refused(ctx, config, meta, f"{why}; {ended} session(s) ended")
    if not active:
        raise Forbidden(f"{user.email} is disabled in OpenCDMO; ask your administrator.")
    raise Forbidden(
        f"{user.email} has no role in {ctx.name}: none of your groups at the identity "
        "provider gives access. Ask your administrator."
    )


async def _person(
    ctx: TenantContext, config: SsoConfig, claims: dict[str, Any], email: str, meta: RequestMeta
) -> UserInfo:
    subject = str(claims["sub"])
    async with global_transaction():
        user_id = await q.identity(config.issuer, subject)
        if user_id is not None:
            await q.touch_identity(config.issuer, subject)
            found = await identity_queries.user_by_id(user_id)
            assert found is not None
            return found
        found = await identity_queries.user_by_email(email)
        if found is not None and (
            await q.has_identity(found.id) or set(found.member_of) - {ctx.tenant_id}
        ):
            found = None
            taken = True
        else:
            taken = False
        if taken:
            pass
        elif found is None:
            name = " ".join(str(claims.get("name") or email).split())[:200]
            found = await identity_queries.insert_user(email, name, UNUSABLE_HASH)
            if found is None:
                taken = True
        if not taken and found is not None:
            await q.link(config.issuer, subject, found.id, ctx.tenant_id)
    if taken or found is None:
        await _refused(ctx, config, meta, f"email {email} belongs to another account")
        raise Forbidden(
            f"{email} already has an OpenCDMO account that this identity provider cannot "
            "take over; ask your administrator."
        )
    await audit.record_security(
        "sso.linked",
        actor=_system(config),
        meta=meta,
        tenant_id=ctx.tenant_id,
        detail={"user_id": str(found.id), "email": email, "issuer": config.issuer},
    )
    return found


# --- signatures -------------------------------------------------------------------------


async def _signing_grant(
    ctx: TenantContext,
    config: SsoConfig,
    request: q.RequestRow,
    claims: dict[str, Any],
    meta: RequestMeta,
) -> str:
    """A fresh re-authentication of the signer who asked: ``auth_time`` after the request
    began, and the provider's subject the signer's own. Returns a one-time signing code."""
    auth_time = claims.get("auth_time")
    began = int(request.started_at.timestamp())
    if not isinstance(auth_time, int) or auth_time < began:
        await _refused(ctx, config, meta, "re-authentication not fresh (auth_time)")
        raise NotAuthenticated(
            "The identity provider did not re-authenticate you for this signature; try again."
        )
    async with global_transaction():
        user_id = await q.identity(config.issuer, str(claims["sub"]))
    if user_id is None or user_id != request.user_id:
        await _refused(ctx, config, meta, "re-authenticated as another person")
        raise NotAuthenticated("You re-authenticated as someone else; the signature needs you.")
    grant = secrets.token_urlsafe(24)
    async with global_transaction():
        await q.set_grant(request.id, _hash(grant))
    return grant


async def use_signing_grant(settings: Settings, ctx: TenantContext, grant: str) -> bool:
    """Spend a one-time signing code the signer got by re-authenticating (True: valid)."""
    if ctx.user_id is None:
        return False
    valid = timedelta(minutes=settings.sso_signing_grant_minutes)
    async with global_transaction():
        return await q.use_grant(_hash(grant.strip()), ctx.tenant_id, ctx.user_id, valid)
