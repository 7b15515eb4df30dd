"""Invitations: the tenant admin's forms and API, and the public page that accepts one."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect, Template

from opencdmo.errors import AppError, NotAuthenticated, ValidationFailed
from opencdmo.identity import service as identity
from opencdmo.identity.routes import session_cookie
from opencdmo.scope import Actor, TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import invitations
from opencdmo.tenancy.queries.invitations import InvitationRow
from opencdmo.tenancy.routes import Problem, members_page_for, problem_of, roles_from
from opencdmo.tenancy.schemas import InvitationCreate, InvitationCreated, InvitationOut
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data, form_struct, page
from opencdmo.web.principal import principal_of


def accept_url(settings: Settings, request: Request[Any, Any, Any], token: str) -> str:
    base = settings.public_url or f"{request.url.scheme}://{request.url.netloc}"
    return base.rstrip("/") + invitations.accept_path(token)


def _out(invitation: InvitationRow) -> InvitationOut:
    return InvitationOut(
        invitation.id,
        invitation.email,
        list(invitation.roles),
        invitation.invited_by_name,
        invitation.created_at,
        invitation.expires_at,
        "expired" if invitation.expired else invitation.status,
        invitation.mail_state,
        invitation.mailed_at,
        invitation.mail_error,
    )


# --- the tenant admin's side ------------------------------------------------------------------


@post(
    "/invitations",
    opt=requires("members", "manage"),
    include_in_schema=False,
    status_code=200,
)
async def invite_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
) -> Template:
    data = await form_data(request)
    email, roles = str(data.get("email", "")), roles_from(data)
    try:
        asked, _ = await form_struct(request, InvitationCreate)  # the API's struct and limits
        invitation, token = await invitations.invite(
            ctx, asked.email, asked.roles, hours=settings.invitation_hours, mail_with=settings
        )
    except AppError as exc:
        if exc.status_code not in (409, 422):
            raise
        typed = {"email": email, "roles": roles}
        return await members_page_for(
            request, ctx, status=exc.status_code, invite=problem_of(exc, typed)
        )
    return await members_page_for(
        request,
        ctx,
        notice=f"Invitation for {invitation.email} created"
        + (": it is being e-mailed." if invitation.mail_state else "."),
        link=accept_url(settings, request, token),
        link_mailed=invitation.mail_state is not None,
    )


@post(
    "/invitations/{invitation_id:uuid}/revoke",
    opt=requires("members", "manage"),
    include_in_schema=False,
    status_code=200,
)
async def revoke_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    invitation_id: FromPath[UUID],
) -> Template:
    invitation = await invitations.get(ctx, invitation_id)
    try:
        await invitations.revoke(ctx, invitation_id)
    except AppError as exc:
        if exc.status_code != 409:
            raise
        return await members_page_for(request, ctx, status=409, problem=Problem(exc.message))
    return await members_page_for(
        request, ctx, notice=f"Invitation for {invitation.email} revoked."
    )


@get(
    "/invitations",
    opt=requires("members", "manage"),
    tags=["tenancy"],
)
async def api_invitations(ctx: NamedDependency[TenantContext]) -> list[InvitationOut]:
    """Pending invitations (expired ones included, marked so)."""
    return [_out(i) for i in await invitations.pending(ctx)]


@post(
    "/invitations",
    opt=requires("members", "manage"),
    tags=["tenancy"],
    status_code=201,
)
async def api_invite(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    data: JSONBody[InvitationCreate],
) -> InvitationCreated:
    """Invite a person by email with the roles offered. The same answer whether or not the
    address has an account; the link (single use, expiring) is in this response only.
    409 when the address is a member, or has a pending invitation."""
    invitation, token = await invitations.invite(
        ctx, data.email, data.roles, hours=settings.invitation_hours, mail_with=settings
    )
    return InvitationCreated(_out(invitation), accept_url(settings, request, token), token)


@delete(
    "/invitations/{invitation_id:uuid}",
    opt=requires("members", "manage"),
    tags=["tenancy"],
    status_code=204,
)
async def api_revoke(ctx: NamedDependency[TenantContext], invitation_id: FromPath[UUID]) -> None:
    """Revoke a pending invitation: its link stops working (409 when no longer pending)."""
    await invitations.revoke(ctx, invitation_id)


# --- the invited person's side (public: the token is the credential) ----------------------------


async def _accept_page(
    request: Request[Any, Any, Any],
    token: str,
    *,
    status: int = 200,
    error: AppError | None = None,
    values: dict[str, Any] | None = None,
    notice: str | None = None,
) -> Template:
    try:
        offer = await invitations.offer(token, principal_of(request.scope).meta)
    except AppError as exc:
        if exc.status_code not in (404, 409, 410):
            raise
        return await page(
            request,
            "tenancy/invitation.html",
            status_code=exc.status_code,
            offer=None,
            token="",
            refused=exc.message,
            problem=None,
            notice=notice,
        )
    return await page(
        request,
        "tenancy/invitation.html",
        status_code=status,
        offer=offer,
        token=token,
        refused=None,
        problem=problem_of(error, values or {}) if error else None,
        notice=notice,
    )


@get("/invitations/accept", include_in_schema=False)
async def accept_page(
    request: Request[Any, Any, Any],
    token: Annotated[str, QueryParameter(name="token")] = "",
) -> Template:
    """The invitation, and the ways to accept it (the same page for every address)."""
    return await _accept_page(request, token)


@post("/invitations/accept", include_in_schema=False, status_code=200)
async def accept_submit(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings]
) -> Response[Any]:
    data = await form_data(request)
    token, mode = str(data.get("token", "")), str(data.get("mode", ""))
    try:
        return await _accept(request, settings, token, mode, data)
    except AppError as exc:
        if exc.status_code not in (401, 404, 409, 410, 422, 429):
            raise
        values = {"full_name": str(data.get("full_name", "")), "mode": mode}
        return await _accept_page(request, token, status=exc.status_code, error=exc, values=values)


async def _accept(
    request: Request[Any, Any, Any],
    settings: Settings,
    token: str,
    mode: str,
    data: dict[str, Any],
) -> Response[Any]:
    principal = principal_of(request.scope)
    meta, agent = principal.meta, request.headers.get("user-agent", "")
    if mode == "accept":  # signed in already, as the invited address
        session = principal.session
        if session is None:
            raise NotAuthenticated("Sign in to accept the invitation.")
        actor = Actor(session.user_id, session.email, session.full_name)
        return await _joined(request, settings, await invitations.accept(token, actor, meta))
    if mode == "sign-in":
        email = (await invitations.offer(token, meta)).invitation.email
        cookie, user = await identity.login(
            settings, email, str(data.get("password", "")), meta, agent
        )
        actor = Actor(user.id, user.email, user.full_name)
        accepted = await invitations.accept(token, actor, meta)
        return await _joined(request, settings, accepted, cookie)
    if mode == "new":
        password = str(data.get("new_password", ""))
        if password != str(data.get("confirm_password", "")):
            raise ValidationFailed(
                "The password and its confirmation differ.", details={"field": "new_password"}
            )
        accepted = await invitations.accept_as_new(
            token, str(data.get("full_name", "")), password, meta
        )
        cookie, _ = await identity.login(settings, accepted.email, password, meta, agent)
        return await _joined(request, settings, accepted, cookie)
    raise ValidationFailed("Choose how to accept: sign in, or create your account.")


async def _joined(
    request: Request[Any, Any, Any],
    settings: Settings,
    accepted: invitations.Accepted,
    cookie: str | None = None,
) -> Response[Any]:
    """To the tenant; someone who was a member already is told that nothing changed."""
    response: Response[Any]
    if not accepted.already_member:
        response = Redirect(f"/t/{accepted.slug}/", status_code=303)
    else:
        response = await page(
            request,
            "tenancy/invitation.html",
            offer=None,
            token="",
            refused=None,
            problem=None,
            notice=f"You are already a member of {accepted.tenant_name}: nothing changed.",
            slug=accepted.slug,
        )
    if cookie is not None:
        response.set_cookie(session_cookie(settings, cookie))
    return response


# Pages of a tenant, under /t/{slug} (the app mounts them in the context's router).
pages = [
    invite_form,
    revoke_form,
]

# The JSON API of a tenant, under /api/v1/t/{slug} (the app mounts it likewise).
api = [
    api_invitations,
    api_invite,
    api_revoke,
]

# Routes outside a tenant.
route_handlers = [
    accept_page,
    accept_submit,
]
