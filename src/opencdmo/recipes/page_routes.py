"""Master recipe pages: the list, a recipe with its procedure, revisions and signature
manifestations, and the lifecycle forms (the drag-and-drop designer builds on these)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from opencdmo.errors import AppError
from opencdmo.recipes import service
from opencdmo.settings import Settings
from opencdmo.signatures.service import signatures_for
from opencdmo.tenancy.context import TenantContext
from opencdmo.web.guards import TENANT_DEPS, TENANT_GUARDS, requires
from opencdmo.web.pages import form_data, page


@get(
    "/t/{slug:str}/recipes",
    opt=requires("recipes", "read"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
)
async def recipes_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    return await page(request, "recipes/list.html", recipes=await service.list_recipes(ctx))


@post(
    "/t/{slug:str}/recipes",
    opt=requires("recipes", "edit"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
    status_code=303,
)
async def create_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Redirect:
    data = await form_data(request)
    recipe_id = await service.create(ctx, str(data.get("name", "")), str(data.get("product", "")))
    return Redirect(f"/t/{ctx.slug}/recipes/{recipe_id}", status_code=303)


async def _recipe_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    recipe_id: UUID,
    *,
    status: int = 200,
    error: str | None = None,
) -> Template:
    recipe = await service.get(ctx, recipe_id)
    record = service.RecipeRecord(
        str(recipe_id), str(recipe["current_revision"]), recipe["author_id"], recipe["content"]
    )
    signatures = await signatures_for(ctx, record)
    history = await service.history(ctx, recipe_id)
    return await page(
        request,
        "recipes/detail.html",
        status_code=status,
        recipe=recipe,
        signatures=signatures,
        history=history,
        error=error,
        current=str(recipe["current_revision"]),
    )


@get(
    "/t/{slug:str}/recipes/{recipe_id:uuid}",
    opt=requires("recipes", "read"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
)
async def recipe_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], recipe_id: FromPath[UUID]
) -> Template:
    return await _recipe_page(request, ctx, recipe_id)


async def _lifecycle(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    recipe_id: UUID,
    settings: Settings,
    action: str,
) -> Template | Redirect:
    data = await form_data(request)
    password, reason = str(data.get("password", "")), str(data.get("reason", ""))
    try:
        if action == "submit":
            await service.submit(settings, ctx, recipe_id, password, reason)
        elif action == "approve":
            await service.approve(settings, ctx, recipe_id, password, reason)
        elif action == "effective":
            await service.make_effective(ctx, recipe_id)
        else:
            await service.retire(ctx, recipe_id, reason)
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _recipe_page(
            request, ctx, recipe_id, status=exc.status_code, error=exc.message
        )
    return Redirect(f"/t/{ctx.slug}/recipes/{recipe_id}", status_code=303)


@post(
    "/t/{slug:str}/recipes/{recipe_id:uuid}/submit",
    opt=requires("recipes", "submit"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
    status_code=303,
)
async def submit_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    recipe_id: FromPath[UUID],
    settings: NamedDependency[Settings],
) -> Any:
    return await _lifecycle(request, ctx, recipe_id, settings, "submit")


@post(
    "/t/{slug:str}/recipes/{recipe_id:uuid}/approve",
    opt=requires("recipes", "approve"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
    status_code=303,
)
async def approve_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    recipe_id: FromPath[UUID],
    settings: NamedDependency[Settings],
) -> Any:
    return await _lifecycle(request, ctx, recipe_id, settings, "approve")


@post(
    "/t/{slug:str}/recipes/{recipe_id:uuid}/effective",
    opt=requires("recipes", "approve"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
    status_code=303,
)
async def effective_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    recipe_id: FromPath[UUID],
    settings: NamedDependency[Settings],
) -> Any:
    return await _lifecycle(request, ctx, recipe_id, settings, "effective")


@post(
    "/t/{slug:str}/recipes/{recipe_id:uuid}/retire",
    opt=requires("recipes", "approve"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
    status_code=303,
)
async def retire_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    recipe_id: FromPath[UUID],
    settings: NamedDependency[Settings],
) -> Any:
    return await _lifecycle(request, ctx, recipe_id, settings, "retire")


@post(
    "/t/{slug:str}/hub/items/{item_id:uuid}/master-recipe",
    opt=requires("recipes", "edit"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
    status_code=303,
)
async def from_hub_form(ctx: NamedDependency[TenantContext], item_id: FromPath[UUID]) -> Redirect:
    recipe_id = await service.create_from_hub(ctx, item_id)
    return Redirect(f"/t/{ctx.slug}/recipes/{recipe_id}", status_code=303)


@get(
    "/t/{slug:str}/recipes/{recipe_id:uuid}/print",
    opt=requires("recipes", "read"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
)
async def print_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], recipe_id: FromPath[UUID]
) -> Template:
    """The printable master batch record of the current revision."""
    from opencdmo.canonical import content_hash
    from opencdmo.recipes import mbr

    recipe = await service.get(ctx, recipe_id)
    library = await service.unit_operations(ctx)
    record = service.RecipeRecord(
        str(recipe_id), str(recipe["current_revision"]), recipe["author_id"], recipe["content"]
    )
    return await page(
        request,
        "recipes/print.html",
        recipe=recipe,
        library=library,
        signatures=await signatures_for(ctx, record),
        current=str(recipe["current_revision"]),
        bom=mbr.bill_of_materials(recipe["content"], library),
        equipment=mbr.equipment_classes(recipe["content"], library),
        flow=mbr.flow(recipe["content"], library),
        box=(mbr.BOX_W, mbr.BOX_H),
        content_hash=content_hash(recipe["content"]),
    )


route_handlers = [
    print_page,
    from_hub_form,
    recipes_page,
    create_form,
    recipe_page,
    submit_form,
    approve_form,
    effective_form,
    retire_form,
]
