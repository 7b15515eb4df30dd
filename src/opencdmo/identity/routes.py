"""Sign-in, sign-out, my account and API tokens: pages and JSON API."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect, Template

from opencdmo.access.service import can
from opencdmo.errors import AppError, NotAuthenticated, ValidationFailed
from opencdmo.fields import humanise
from opencdmo.identity import devices, service
from opencdmo.identity.devices import DEVICE_COOKIE
from opencdmo.identity.queries import TokenRow
from opencdmo.identity.schemas import (
    Me,
    PasswordChange,
    TenantRef,
    TokenCreate,
    TokenCreated,
    TokenOut,
)
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy.service import user_tenants
from opencdmo.tenancy.token_policy import token_policy
from opencdmo.web.cookies import anonymous_cookie
from opencdmo.web.guards import requires, signed_in
from opencdmo.web.pages import form_data, page
from opencdmo.web.principal import SESSION_COOKIE, principal_of
from opencdmo.web.redirects import page_after_login


def _session_cookie(settings: Settings, value: str, *, max_age: int | None) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=value,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
        max_age=max_age,
    )


def _device_cookie(settings: Settings, value: str) -> Cookie:
    return Cookie(
        key=DEVICE_COOKIE,
        value=value,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/login",
        max_age=devices.TRUST_DAYS * 86400,
    )


@get("/login", name="login", include_in_schema=False)
async def login_page(
    request: Request[Any, Any, Any],
    next_: Annotated[str | None, QueryParameter(name="next")] = None,
    tenant: Annotated[str | None, QueryParameter(name="tenant", max_length=100)] = None,
) -> Template:
    """The sign-in page; ``?tenant=<slug>`` offers that organisation's identity provider."""
    return await page(
        request,
        "identity/login.html",
        next=page_after_login(request.app, next_) or "",
        email="",
        error=None,
        sso=await _offered(tenant),
    )


async def _offered(slug: str | None) -> dict[str, Any] | None:
    from opencdmo.identity.sso.service import tenant_sso

    found = await tenant_sso(slug) if slug else None
    if found is None:
        return None
    label = found.config.label or found.name
    return {"slug": found.slug, "label": label, "password_sign_in": found.config.password_sign_in}


@post("/login", include_in_schema=False, status_code=303)
async def login_submit(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings]
) -> Response[Any]:
    data = await form_data(request)
    email, password = str(data.get("email", "")), str(data.get("password", ""))
    target = page_after_login(request.app, str(data.get("next", "")))
    principal = principal_of(request.scope)
    secret = settings.resolved_secret_key().encode()
    device = devices.trusted(secret, email.strip().lower(), request.cookies.get(DEVICE_COOKIE))
    try:
        token, user = await service.login(
            settings,
            email,
            password,
            principal.meta,
            request.headers.get("user-agent", ""),
            device=device,
        )
    except AppError as exc:
        if exc.status_code not in (401, 422, 429):
            raise
        return await page(
            request,
            "identity/login.html",
            status_code=exc.status_code,
            headers=exc.headers,
            next=target or "",
            email=email,
            error=exc.message,
            sso=None,
        )
    # No page asked for: "/" leads to the one tenant, or to the list to choose from.
    response = signed_in_response(settings, token, target or "/")
    response.set_cookie(_device_cookie(settings, devices.issue(secret, user.email, device)))
    return response


def signed_in_response(settings: Settings, token: str, target: str) -> Response[Any]:
    """A redirect that carries the new session's cookie."""
    response: Response[Any] = Redirect(target, status_code=303)
    response.set_cookie(session_cookie(settings, token))
    response.set_cookie(anonymous_cookie(settings))  # the pre-login CSRF binding is rotated
    return response


def session_cookie(settings: Settings, token: str) -> Cookie:
    """The cookie of a session just started."""
    return _session_cookie(settings, token, max_age=settings.session_lifetime_hours * 3600)


@post("/logout", include_in_schema=False, status_code=303)
async def logout(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings]
) -> Response[Any]:
    principal = principal_of(request.scope)
    if principal.session_token:
        await service.logout(principal.session_token, principal.session, principal.meta)
    response: Response[Any] = Redirect("/login", status_code=303)
    response.set_cookie(_session_cookie(settings, "", max_age=0))
    response.set_cookie(anonymous_cookie(settings))
    return response


async def _account(request: Request[Any, Any, Any], settings: Settings, **context: Any) -> Template:
    """The account page (or one of its blocks), with the person's notification choice."""
    principal = principal_of(request.scope)
    if principal.session is None:
        raise NotAuthenticated("A browser session is required for the account page.")
    values: dict[str, Any] = {"error": None, "done": False, "notify_saved": False, **context}
    return await page(
        request,
        "identity/account.html",
        notify_by_email=await service.notify_by_email(principal.session.user_id),
        mail_configured=bool(settings.smtp_url),
        **values,
    )


@get("/account", guards=[signed_in], include_in_schema=False)
async def account_page(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings]
) -> Template:
    return await _account(request, settings)


NOTIFY_ON = {"on", "true", "1"}
NOTIFY_OFF = {"off", "false", "0", ""}


@post("/account/notifications", guards=[signed_in], include_in_schema=False, status_code=200)
async def account_notifications(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings]
) -> Template:
    """Switch the mails of work awaiting my action on or off (an unticked box sends nothing)."""
    data = await form_data(request)
    principal = principal_of(request.scope)
    if principal.session is None:
        raise NotAuthenticated("A browser session is required to change your notifications.")
    raw = str(data.get("notify_by_email", "")).strip().lower()
    if raw not in NOTIFY_ON | NOTIFY_OFF:
        raise ValidationFailed(
            "notify_by_email must be on or off.", details={"field": "notify_by_email"}
        )
    await service.set_notify_by_email(principal.session.user_id, raw in NOTIFY_ON, principal.meta)
    return await _account(request, settings, block="notifications", notify_saved=True)


@post("/account/password", guards=[signed_in], include_in_schema=False, status_code=200)
async def account_password(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings]
) -> Template:
    data = await form_data(request)
    principal = principal_of(request.scope)
    assert principal.session is not None
    if data.get("new_password") != data.get("confirm_password"):
        return await _account(
            request,
            settings,
            block="password",
            status_code=422,
            error="The new password and its confirmation differ.",
            done=False,
        )
    try:
        await service.change_password(
            settings,
            principal.session.user_id,
            principal.session.session_id,
            str(data.get("current_password", "")),
            str(data.get("new_password", "")),
            principal.meta,
        )
    except AppError as exc:
        if exc.status_code not in (422, 429):
            raise
        return await _account(
            request,
            settings,
            block="password",
            status_code=exc.status_code,
            error=exc.message,
            done=False,
        )
    return await _account(request, settings, block="password", done=True)


@get("/api/v1/me", guards=[signed_in], tags=["identity"])
async def api_me(request: Request[Any, Any, Any]) -> Me:
    """The signed-in user and the tenants they belong to."""
    principal = principal_of(request.scope)
    if principal.session is None:
        raise NotAuthenticated("A browser session is required; API tokens act within one tenant.")
    user = await service.get_user(principal.session.user_id)
    tenants = [TenantRef(t.slug, t.name, t.kind) for t in await user_tenants(user.member_of)]
    return Me(user.id, user.email, user.full_name, tenants)


@post("/api/v1/account/password", guards=[signed_in], tags=["identity"], status_code=204)
async def api_change_password(
    request: Request[Any, Any, Any],
    data: JSONBody[PasswordChange],
    settings: NamedDependency[Settings],
) -> None:
    """Change my password; my other sessions end."""
    principal = principal_of(request.scope)
    if principal.session is None:
        raise NotAuthenticated("A browser session is required to change a password.")
    await service.change_password(
        settings,
        principal.session.user_id,
        principal.session.session_id,
        data.current_password,
        data.new_password,
        principal.meta,
    )


# --- API tokens (tenant routes) --------------------------------------------------------------


async def _visible_to(ctx: TenantContext) -> UUID | None:
    """Token admins see every token of the tenant; others only their own."""
    return None if await can(ctx, "tokens", "manage") else ctx.user_id


def _token_out(row: TokenRow) -> TokenOut:
    return TokenOut(
        row.id,
        row.name,
        row.prefix,
        row.user_id,
        row.created_at,
        row.expires_at,
        row.last_used_at,
        row.revoked_at,
        row.full_name,
    )


@get(
    "/tokens",
    opt=requires("tokens", "use"),
    include_in_schema=False,
)
async def tokens_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    return await _tokens_block(request, ctx)


CREATED = "API token created: copy it now, it is not shown again."


async def _tokens_block(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    *,
    created: str | None = None,
    error: str | None = None,
    form: dict[str, Any] | None = None,
    notice: str | None = None,
) -> Template:
    return await page(
        request,
        "identity/tokens.html",
        block="tokens",
        status_code=422 if error else 200,
        flash=notice or (CREATED if created else None),
        tokens=await service.list_tokens(ctx, user_id=await _visible_to(ctx)),
        policy=await token_policy(ctx),
        created=created,
        error=error,
        form=form or {},
    )


@post(
    "/tokens",
    opt=requires("tokens", "use"),
    include_in_schema=False,
    status_code=200,
)
async def tokens_create(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    data = await form_data(request)
    form = {"name": str(data.get("name", ""))[:200], "days": str(data.get("days", "")).strip()}
    assert ctx.user_id is not None
    if not form["days"]:
        form.pop("days")  # the tenant's default
    try:
        asked = msgspec.convert(form, type=TokenCreate, strict=False)  # the API's struct
    except msgspec.ValidationError as exc:
        return await _tokens_block(request, ctx, error=humanise(str(exc)), form=form)
    try:
        token, _ = await service.create_token(ctx, ctx.user_id, asked.name, asked.days)
    except ValidationFailed as exc:
        return await _tokens_block(request, ctx, error=exc.message, form=form)
    return await _tokens_block(request, ctx, created=token)


@post(
    "/tokens/{token_id:uuid}/revoke",
    opt=requires("tokens", "use"),
    include_in_schema=False,
    status_code=200,
)
async def tokens_revoke(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], token_id: FromPath[UUID]
) -> Template:
    reason = str((await form_data(request)).get("reason") or "")
    await service.revoke_token(ctx, token_id, only_user=await _visible_to(ctx), reason=reason)
    return await _tokens_block(request, ctx, notice="API token revoked.")


@get(
    "/tokens",
    opt=requires("tokens", "use"),
    tags=["identity"],
)
async def api_tokens(ctx: NamedDependency[TenantContext]) -> list[TokenOut]:
    """API tokens in this tenant: all of them for token admins, otherwise my own."""
    return [
        _token_out(row) for row in await service.list_tokens(ctx, user_id=await _visible_to(ctx))
    ]


@post(
    "/tokens",
    opt=requires("tokens", "use"),
    tags=["identity"],
    status_code=201,
)
async def api_token_create(
    ctx: NamedDependency[TenantContext], data: JSONBody[TokenCreate]
) -> TokenCreated:
    """Create a token for myself in this tenant, valid for ``days`` (the tenant's default when
    left out, at most its maximum). The secret is shown in this response only."""
    assert ctx.user_id is not None
    token, row = await service.create_token(ctx, ctx.user_id, data.name, data.days)
    return TokenCreated(token, _token_out(row))


RevokeReason = Annotated[
    str | None, QueryParameter(name="reason", required=False, max_length=10_000)
]


@delete(
    "/tokens/{token_id:uuid}",
    opt=requires("tokens", "use"),
    tags=["identity"],
    status_code=204,
)
async def api_token_revoke(
    ctx: NamedDependency[TenantContext], token_id: FromPath[UUID], reason: RevokeReason = None
) -> None:
    """Revoke a token (mine, or any in this tenant for token admins); ``reason``, when given,
    is recorded with the audit event."""
    await service.revoke_token(ctx, token_id, only_user=await _visible_to(ctx), reason=reason)


# Pages of a tenant, under /t/{slug} (the app mounts them in the context's router).
pages = [
    tokens_page,
    tokens_create,
    tokens_revoke,
]

# The JSON API of a tenant, under /api/v1/t/{slug} (the app mounts it likewise).
api = [
    api_tokens,
    api_token_create,
    api_token_revoke,
]

# Routes outside a tenant.
route_handlers = [
    login_page,
    login_submit,
    logout,
    account_page,
    account_password,
    account_notifications,
    api_me,
    api_change_password,
]
