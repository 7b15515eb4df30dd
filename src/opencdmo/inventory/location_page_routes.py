"""The storage pages and forms: the tree of locations with what each holds, a site's root
location, a location with what it stores (a warning where its condition is not the
material's), its child locations, moving containers out of it and retiring it; a container
with where it is and each move it made.

A refused form shows its page again with the message in the form and the values kept (a 404
stays a 404); a done one leads to the location's page with a message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Response, Template

from opencdmo.access.service import can
from opencdmo.errors import AppError, NotFound
from opencdmo.inventory import forms, locations, placing
from opencdmo.inventory.location_routes import CONTAINER, LOCATION, LOCATIONS
from opencdmo.inventory.location_schemas import LocationForm, MoveForm, ReasonForm
from opencdmo.inventory.lot_routes import form_post
from opencdmo.scope import TenantContext
from opencdmo.tenancy import service as tenancy
from opencdmo.web.flash import see_other
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_struct, page


async def _tree_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    *,
    status: int = 200,
    error: str | None = None,
    kept: dict[str, Any] | None = None,
) -> Template:
    tree = await locations.location_tree(ctx)
    rooted = {e.node.location.site_id for e in tree if e.node.location.kind == "site"}
    sites = [
        (s.code, f"{s.code} {s.name}") for s in await tenancy.list_sites(ctx) if s.id not in rooted
    ]
    return await page(
        request,
        "inventory/locations.html",
        status_code=status,
        tree=tree,
        sites=sites,
        may_manage=await can(ctx, "materials", "manage"),
        error=error,
        kept=kept or {},
    )


@get(LOCATIONS, opt=requires("materials", "read"), include_in_schema=False)
async def locations_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    """The storage tree: every location in use, with what it holds itself."""
    return await _tree_page(request, ctx)


@form_post(LOCATIONS, "manage")
async def site_location_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template | Response[Any]:
    """A site's location: the top of its storage tree."""
    kept = await forms.kept(request)
    try:
        data, _ = await form_struct(request, LocationForm)
        row = await locations.create_location(
            ctx, "site", data.code, data.name, data.storage_condition, None, data.site
        )
    except AppError as exc:
        return await _tree_page(request, ctx, status=exc.status_code, error=exc.message, kept=kept)
    return see_other(request, f"/t/{ctx.slug}/locations/{row.id}", flash=f"{row.name} added.")


async def _location_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    location_id: UUID,
    *,
    status: int = 200,
    error: str | None = None,
    form: str = "",
    kept: dict[str, Any] | None = None,
) -> Template:
    view = await locations.get_location(ctx, location_id)
    may_manage = await can(ctx, "materials", "manage")
    return await page(
        request,
        "inventory/location.html",
        status_code=status,
        view=view,
        kinds=[(k, placing.kind_name(k).capitalize()) for k in view.child_kinds],
        stores=await forms.store_options(ctx) if may_manage else [],
        may_manage=may_manage,
        error=error,
        form=form,
        kept=kept or {},
    )


@get(LOCATION, opt=requires("materials", "read"), include_in_schema=False)
async def location_page(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    location_id: FromPath[UUID],
) -> Template:
    return await _location_page(request, ctx, location_id)


async def _command(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    location_id: UUID,
    form: str,
    run: Callable[[], Awaitable[tuple[UUID, str]]],
) -> Template | Response[Any]:
    kept = await forms.kept(request)
    try:
        to, said = await run()
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _location_page(
            request,
            ctx,
            location_id,
            status=exc.status_code,
            error=exc.message,
            form=form,
            kept=kept,
        )
    return see_other(request, f"/t/{ctx.slug}/locations/{to}", flash=said)


@form_post(LOCATION + "/children", "manage")
async def child_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    location_id: FromPath[UUID],
) -> Template | Response[Any]:
    """A location in this one."""

    async def run() -> tuple[UUID, str]:
        data, _ = await form_struct(request, LocationForm)
        row = await locations.create_location(
            ctx, data.kind, data.code, data.name, data.storage_condition, location_id
        )
        return location_id, f"{row.name} added."

    return await _command(request, ctx, location_id, "child", run)


@form_post(LOCATION + "/retire", "manage")
async def retire_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    location_id: FromPath[UUID],
) -> Template | Response[Any]:
    async def run() -> tuple[UUID, str]:
        data, _ = await form_struct(request, ReasonForm)
        row = await locations.retire_location(ctx, location_id, data.reason)
        return location_id, f"{row.name} retired."

    return await _command(request, ctx, location_id, "retire", run)


@form_post(LOCATION + "/move", "manage")
async def move_out_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    location_id: FromPath[UUID],
) -> Template | Response[Any]:
    """Move some of the containers this location holds to another."""

    async def run() -> tuple[UUID, str]:
        data, _ = await form_struct(request, MoveForm)
        chosen = forms.ids(data.container_ids)
        view = await locations.get_location(ctx, location_id)
        if not set(chosen) <= {s.row.id for s in view.stored}:
            raise NotFound("No such container in this location.")
        to = forms.an_id(data.to_location, "to_location", "where to")
        moved = await locations.move(ctx, chosen, to, data.reason or None)
        warned = [m.container.warning for m in moved if m.container.warning]
        return location_id, f"{len(moved)} moved." + (f" {warned[0]}" if warned else "")

    return await _command(request, ctx, location_id, "move", run)


@get(CONTAINER, opt=requires("materials", "read"), include_in_schema=False)
async def container_page(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    container_id: FromPath[UUID],
) -> Template:
    """The container: its lot, where it is, and each move it made."""
    view = await locations.get_container(ctx, container_id)
    people = await tenancy.people_names(ctx, {m.move.moved_by for m in view.moves})
    return await page(request, "inventory/container.html", view=view, people=people)


pages = [
    locations_page,
    site_location_form,
    location_page,
    child_form,
    retire_form,
    move_out_form,
    container_page,
]
