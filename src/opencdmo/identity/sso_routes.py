"""Single sign-on pages: start a tenant's sign-in at its provider, the provider's return,
and a signer's re-authentication at the provider (which gives a one-time signing code)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from opencdmo.errors import AppError, NotFound, ValidationFailed
from opencdmo.identity import service as identity
from opencdmo.identity.routes import signed_in_response
from opencdmo.identity.sso import service as sso
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data, page
from opencdmo.web.principal import principal_of
from opencdmo.web.redirects import page_after_login

CALLBACK = "/sso/callback"
Query = Annotated[str | None, QueryParameter(required=False, max_length=4000)]


def redirect_uri(settings: Settings, request: Request[Any, Any, Any]) -> str:
    """Where the provider sends the browser back: the one callback of the installation."""
    base = settings.public_url or f"{request.url.scheme}://{request.url.netloc}"
    return base.rstrip("/") + CALLBACK


async def _tenant_sso(slug: str) -> sso.TenantSso:
    found = await sso.tenant_sso(slug)
    if found is None:
        raise NotFound("This organisation has no single sign-on.")
    return found


@get("/sso/{slug:str}/start", include_in_schema=False)
async def sso_start(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    slug: FromPath[str],
    next_: Annotated[str | None, QueryParameter(name="next", required=False)] = None,
) -> Response[Any]:
    found = await _tenant_sso(slug)
    target = page_after_login(request.app, next_) or ""
    url = await sso.start(settings, found, redirect_uri(settings, request), target)
    return Redirect(url, status_code=303)


@get(CALLBACK, include_in_schema=False)
async def sso_callback(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    state_: Annotated[str | None, QueryParameter(name="state", required=False)] = None,
    code: Query = None,
    error: Query = None,
    error_description: Query = None,
) -> Response[Any]:
    if error:
        raise ValidationFailed(f"The identity provider refused: {error_description or error}.")
    state = state_
    if not state or not code:
        raise ValidationFailed("The identity provider's answer lacks its state or code.")
    principal = principal_of(request.scope)
    try:
        done = await sso.finish(
            settings,
            state,
            code,
            redirect_uri(settings, request),
            principal.meta,
            request.headers.get("user-agent", ""),
        )
    except AppError as exc:
        if exc.status_code not in (401, 403):
            raise
        return await page(
            request, "identity/sso_refused.html", status_code=exc.status_code, error=exc.message
        )
    if done.signing_grant is not None:
        return await page(
            request, "identity/sso_signing_code.html", code=done.signing_grant, back=done.next
        )
    assert done.session_token is not None
    return signed_in_response(settings, done.session_token, done.next or f"/t/{done.tenant_slug}/")


@get(
    "/sso/reauthenticate", opt=requires("signatures", "sign", writes=True), include_in_schema=False
)
async def sso_reauthenticate(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
    back: Annotated[str | None, QueryParameter(required=False, max_length=2000)] = None,
) -> Response[Any]:
    """A signer's fresh sign-in at the provider (``prompt=login``, ``max_age=0``); ``back``:
    the page to return to. A link, not a form: the browser's ``form-action 'self'`` would
    stop a form's redirect to the provider. Starting one changes nothing but a pending
    request only the signer can finish (at the provider, as themselves)."""
    found = await _tenant_sso(ctx.slug)
    assert ctx.user_id is not None
    target = page_after_login(request.app, back) or ""
    url = await sso.start(
        settings, found, redirect_uri(settings, request), target, signer=ctx.user_id
    )
    return Redirect(url, status_code=303)


@get("/sso/signing-password", opt=requires("signatures", "sign"), include_in_schema=False)
async def signing_password_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    """Set the signing password (tenants whose single sign-on signs with one)."""
    await _tenant_sso(ctx.slug)
    return await page(request, "identity/signing_password.html", error=None, done=False)


@post(
    "/sso/signing-password",
    opt=requires("signatures", "sign"),
    include_in_schema=False,
    status_code=200,
)
async def signing_password_set(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
) -> Template:
    """The new signing password, proven by a fresh re-authentication at the provider (its
    one-time code): a session alone cannot set what signatures rely on."""
    await _tenant_sso(ctx.slug)
    data = await form_data(request)
    password = str(data.get("new_password", ""))
    try:
        if password != str(data.get("confirm_password", "")):
            raise ValidationFailed("The new signing password and its confirmation differ.")
        await identity.set_signing_password_with_code(
            settings, ctx, str(data.get("code", "")), password
        )
    except AppError as exc:
        if exc.status_code not in (401, 422, 429):
            raise
        return await page(
            request,
            "identity/signing_password.html",
            status_code=exc.status_code,
            error=exc.message,
            done=False,
        )
    return await page(request, "identity/signing_password.html", error=None, done=True)


pages = [sso_reauthenticate, signing_password_page, signing_password_set]
route_handlers = [sso_start, sso_callback]
