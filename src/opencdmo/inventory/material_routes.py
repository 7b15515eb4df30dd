"""The material master's pages and forms: the list of materials with what is on hand and a
create form, and a material's page with its reorder level, approved suppliers and lots.

A refused form shows its page again with the message in the form and the values kept (a 404
stays a 404); a done one leads to the material's page with a message.
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
from opencdmo.errors import AppError, ValidationFailed
from opencdmo.inventory import forms, from_library, service, stock
from opencdmo.inventory.location_schemas import MaterialForm, ReorderForm, SuppliersForm
from opencdmo.inventory.lot_routes import form_post
from opencdmo.inventory.routes import MATERIAL, MATERIALS
from opencdmo.scope import TenantContext
from opencdmo.web.flash import see_other
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_struct, page


async def _materials_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    *,
    status: int = 200,
    error: str | None = None,
    kept: dict[str, Any] | None = None,
) -> Template:
    found = await stock.stock_of(ctx, await service.list_materials(ctx))
    may_manage = await can(ctx, "materials", "manage")
    return await page(
        request,
        "inventory/materials.html",
        status_code=status,
        materials=found,
        types=[(t, t.replace("_", " ").capitalize()) for t in service.MATERIAL_TYPES],
        may_manage=may_manage,
        offered=await from_library.offered(ctx) if may_manage else [],
        error=error,
        kept=kept or {},
    )


@get(MATERIALS, opt=requires("materials", "read"), include_in_schema=False)
async def materials_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    """The material master: each material with what is on hand against its reorder level."""
    return await _materials_page(request, ctx)


@form_post(MATERIALS, "manage")
async def material_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template | Response[Any]:
    kept = await forms.kept(request)
    try:
        data, _ = await form_struct(request, MaterialForm)
        shelf = data.shelf_life_days.strip()
        if shelf and not shelf.isdigit():
            raise ValidationFailed(
                "Shelf life: give a number of days.", details={"field": "shelf_life_days"}
            )
        row = await service.create_material(
            ctx,
            data.code,
            data.name,
            data.material_type,
            data.default_unit,
            data.storage_condition,
            int(shelf) if shelf else None,
            forms.maybe_id(data.library_item_id, "library_item_id", "a library item"),
        )
    except AppError as exc:
        return await _materials_page(
            request, ctx, status=exc.status_code, error=exc.message, kept=kept
        )
    return see_other(
        request, f"/t/{ctx.slug}/materials/{row.id}", flash=f"Material {row.code} added."
    )


async def _material_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    material_id: UUID,
    *,
    status: int = 200,
    error: str | None = None,
    form: str = "",
    kept: dict[str, Any] | None = None,
) -> Template:
    view = await stock.material_view(ctx, material_id)
    return await page(
        request,
        "inventory/material.html",
        status_code=status,
        view=view,
        status_names=service.STATUS_NAMES,
        may_manage=await can(ctx, "materials", "manage"),
        error=error,
        form=form,
        kept=kept or {},
    )


@get(MATERIAL, opt=requires("materials", "read"), include_in_schema=False)
async def material_page(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    material_id: FromPath[UUID],
) -> Template:
    return await _material_page(request, ctx, material_id)


async def _command(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    material_id: UUID,
    form: str,
    run: Callable[[], Awaitable[str]],
) -> Template | Response[Any]:
    kept = await forms.kept(request)
    try:
        said = await run()
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _material_page(
            request,
            ctx,
            material_id,
            status=exc.status_code,
            error=exc.message,
            form=form,
            kept=kept,
        )
    return see_other(request, f"/t/{ctx.slug}/materials/{material_id}", flash=said)


@form_post(MATERIAL + "/reorder-level", "manage")
async def reorder_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    material_id: FromPath[UUID],
) -> Template | Response[Any]:
    async def run() -> str:
        data, _ = await form_struct(request, ReorderForm)
        level = forms.maybe_number(data.reorder_level, "reorder_level", "Reorder level")
        row = await stock.set_reorder_level(ctx, material_id, level)
        return (
            f"Reorder level of {row.code} set." if level is not None else "Reorder level removed."
        )

    return await _command(request, ctx, material_id, "reorder", run)


@form_post(MATERIAL + "/suppliers", "manage")
async def suppliers_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    material_id: FromPath[UUID],
) -> Template | Response[Any]:
    async def run() -> str:
        data, _ = await form_struct(request, SuppliersForm)
        row = await stock.set_approved_suppliers(ctx, material_id, forms.lines(data.suppliers))
        return f"Approved suppliers of {row.code} set."

    return await _command(request, ctx, material_id, "suppliers", run)


pages = [materials_page, material_form, material_page, reorder_form, suppliers_form]
