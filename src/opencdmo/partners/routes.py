"""Partners under the tenant's settings: the relationships with their status, the form to
propose one, and accept, decline, revoke and the CDMO's sharing setting; the same through
the JSON API (``partners:manage`` to change, ``partners:read`` to see)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import MediaType, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.response import Response, Template

from opencdmo.access.service import can
from opencdmo.errors import AppError
from opencdmo.partners import service
from opencdmo.partners.schemas import (
    ProposeIn,
    ReasonIn,
    RelationshipOut,
    RevokeIn,
    SharingIn,
)
from opencdmo.partners.service import Relationship
from opencdmo.scope import TenantContext
from opencdmo.web.flash import see_other
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data, page

PARTNERS = "/settings/partners"
ONE = PARTNERS + "/{link_id:uuid}"
API = "/partners"
API_ONE = API + "/{link_id:uuid}"


def relationship_out(found: Relationship) -> RelationshipOut:
    row = found.row
    return RelationshipOut(
        row.id,
        found.partner_slug,
        found.partner_name,
        row.side,
        row.status,
        row.proposed_here,
        row.proposed_by_name,
        row.proposed_at,
        row.message,
        row.share_batch_records,
        row.decided_by_name,
        row.decided_at,
        row.closed_by_name,
        row.closed_at,
        row.reason,
    )


# --- JSON API -------------------------------------------------------------------------------


@get(API, opt=requires("partners", "read"), tags=["partners"])
async def api_partners(ctx: NamedDependency[TenantContext]) -> list[RelationshipOut]:
    """The tenant's relationships with sponsors or CDMOs of this installation, newest first."""
    return [relationship_out(r) for r in await service.relationships(ctx)]


@get(API_ONE, opt=requires("partners", "read"), tags=["partners"])
async def api_partner(
    ctx: NamedDependency[TenantContext], link_id: FromPath[UUID]
) -> RelationshipOut:
    """One relationship."""
    return relationship_out(await service.relationship(ctx, link_id))


@post(API, opt=requires("partners", "manage"), tags=["partners"], status_code=201)
async def api_propose(
    ctx: NamedDependency[TenantContext], data: JSONBody[ProposeIn]
) -> RelationshipOut:
    """Propose a relationship to a tenant of the other kind (a sponsor to a CDMO, a CDMO to a
    sponsor), named by its slug; recorded in both audit trails. One open relationship per
    pair: a second is a 409."""
    return relationship_out(await service.propose(ctx, data.partner, data.message))


@post(API_ONE + "/accept", opt=requires("partners", "manage"), tags=["partners"], status_code=200)
async def api_accept(
    ctx: NamedDependency[TenantContext], link_id: FromPath[UUID]
) -> RelationshipOut:
    """Accept a relationship the partner proposed (409 when it is no longer proposed)."""
    return relationship_out(await service.accept(ctx, link_id))


@post(API_ONE + "/decline", opt=requires("partners", "manage"), tags=["partners"], status_code=200)
async def api_decline(
    ctx: NamedDependency[TenantContext], link_id: FromPath[UUID], data: JSONBody[ReasonIn]
) -> RelationshipOut:
    """Decline a relationship the partner proposed, with the reason."""
    return relationship_out(await service.decline(ctx, link_id, data.reason))


@post(API_ONE + "/revoke", opt=requires("partners", "manage"), tags=["partners"], status_code=200)
async def api_revoke(
    ctx: NamedDependency[TenantContext], link_id: FromPath[UUID], data: JSONBody[RevokeIn]
) -> RelationshipOut:
    """End a relationship or withdraw a proposal, with the reason (either side). With
    ``status`` (what the caller saw), a relationship that changed since is a 409."""
    return relationship_out(await service.revoke(ctx, link_id, data.reason, data.status))


@post(API_ONE + "/sharing", opt=requires("partners", "manage"), tags=["partners"], status_code=200)
async def api_sharing(
    ctx: NamedDependency[TenantContext], link_id: FromPath[UUID], data: JSONBody[SharingIn]
) -> RelationshipOut:
    """The CDMO shares its released batch records with the sponsor, or stops (with a reason)."""
    found = await service.set_sharing(ctx, link_id, data.share_batch_records, data.reason)
    return relationship_out(found)


api = [api_partners, api_partner, api_propose, api_accept, api_decline, api_revoke, api_sharing]


# --- pages ----------------------------------------------------------------------------------


async def _page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    *,
    status: int = 200,
    error: str | None = None,
    form: str | None = None,
    kept: dict[str, Any] | None = None,
) -> Template:
    return await page(
        request,
        "partners/list.html",
        status_code=status,
        relationships=await service.relationships(ctx),
        manage=await can(ctx, "partners", "manage"),
        other_kind={"sponsor": "CDMO", "cdmo": "sponsor"}.get(ctx.kind),
        error=error,
        form=form,
        kept=kept or {},
    )


@get(PARTNERS, opt=requires("partners", "read"), include_in_schema=False)
async def partners_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    """The relationships, each with the actions its status allows, and the proposal form."""
    return await _page(request, ctx)


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name, "")
    return value if isinstance(value, str) else ""


async def _form(
    request: Request[Any, Any, Any], ctx: TenantContext, form: str, action: Any, done: str
) -> Template | Response[Any]:
    """Run a command from a form: back to the page with ``done`` shown, or the page again
    with the refusal next to the form (404 stays a 404)."""
    data = await form_data(request)
    try:
        found = await action(data)
    except AppError as exc:
        if exc.status_code == 404:
            raise
        kept = {k: _text(data, k) for k in ("partner", "message", "reason")}
        return await _page(
            request, ctx, status=exc.status_code, error=exc.message, form=form, kept=kept
        )
    return see_other(request, f"/t/{ctx.slug}{PARTNERS}", flash=done.format(found.partner_name))


@post(
    PARTNERS,
    opt=requires("partners", "manage"),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def propose_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template | Response[Any]:
    async def run(data: dict[str, Any]) -> Relationship:
        return await service.propose(ctx, _text(data, "partner"), _text(data, "message"))

    return await _form(request, ctx, "propose", run, "Relationship proposed to {}.")


@post(
    ONE + "/accept",
    opt=requires("partners", "manage"),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def accept_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], link_id: FromPath[UUID]
) -> Template | Response[Any]:
    async def run(data: dict[str, Any]) -> Relationship:
        return await service.accept(ctx, link_id)

    return await _form(request, ctx, str(link_id), run, "The relationship with {} is active.")


@post(
    ONE + "/decline",
    opt=requires("partners", "manage"),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def decline_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], link_id: FromPath[UUID]
) -> Template | Response[Any]:
    async def run(data: dict[str, Any]) -> Relationship:
        return await service.decline(ctx, link_id, _text(data, "reason"))

    return await _form(request, ctx, str(link_id), run, "The proposal of {} is declined.")


@post(
    ONE + "/revoke",
    opt=requires("partners", "manage"),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def revoke_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], link_id: FromPath[UUID]
) -> Template | Response[Any]:
    async def run(data: dict[str, Any]) -> Relationship:
        seen = _text(data, "status")
        return await service.revoke(
            ctx, link_id, _text(data, "reason"), seen if seen in ("proposed", "active") else None
        )

    return await _form(request, ctx, str(link_id), run, "The relationship with {} is revoked.")


@post(
    ONE + "/sharing",
    opt=requires("partners", "manage"),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def sharing_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], link_id: FromPath[UUID]
) -> Template | Response[Any]:
    async def run(data: dict[str, Any]) -> Relationship:
        share = _text(data, "share_batch_records") == "true"
        return await service.set_sharing(ctx, link_id, share, _text(data, "reason"))

    return await _form(request, ctx, str(link_id), run, "Sharing with {} changed.")


pages = [partners_page, propose_form, accept_form, decline_form, revoke_form, sharing_form]
