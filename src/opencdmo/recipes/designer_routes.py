"""The recipe designer: a palette of the tenant's unit operations and a canvas of unit
procedures and steps. Drag and drop (SortableJS) and every form post one edit; each edit is
saved as a revision against the revision the page showed (optimistic concurrency)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template

from opencdmo.errors import AppError, ValidationFailed
from opencdmo.recipes import designer, service
from opencdmo.recipes.content import NUMERIC, parameters_of
from opencdmo.tenancy.context import TenantContext
from opencdmo.web.guards import TENANT_DEPS, TENANT_GUARDS, requires
from opencdmo.web.pages import form_data, page

ACTIONS = ("procedure", "step", "remove", "move", "arrange", "configure", "formula")


async def _page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    recipe_id: UUID,
    *,
    status: int = 200,
    error: str | None = None,
    notice: str | None = None,
    selected: str | None = None,
) -> Template:
    recipe = await service.get(ctx, recipe_id)
    library = await service.unit_operations(ctx)
    palette = sorted(({"id": k, **v} for k, v in library.items()), key=lambda u: u["name"])
    return await page(
        request,
        "recipes/designer.html",
        block="canvas",
        status_code=status,
        recipe=recipe,
        library=library,
        palette=palette,
        error=error,
        notice=notice,
        selected=selected,
        numeric=NUMERIC,
        parameters_of=parameters_of,
    )


@get(
    "/t/{slug:str}/recipes/{recipe_id:uuid}/design",
    opt=requires("recipes", "edit"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
)
async def design_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], recipe_id: FromPath[UUID]
) -> Template:
    step = request.query_params.get("step")
    return await _page(request, ctx, recipe_id, selected=step)


def _number(raw: str, where: str) -> float | int:
    try:
        value = float(raw)
    except ValueError:
        raise ValidationFailed(f"{where}: '{raw}' is not a number.") from None
    return int(value) if value.is_integer() else value


def _edit(
    action: str, content: dict[str, Any], data: dict[str, Any], library: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    op_key = str(data.get("step", ""))
    if action == "procedure":
        return designer.add_procedure(content, str(data.get("name", "")))
    if action == "step":
        item = str(data.get("library_item_id", ""))
        if item not in library:
            raise ValidationFailed("Choose a unit operation from the palette.")
        raw = str(data.get("position", "")).strip()
        position = int(raw) if raw.isdigit() else None
        return designer.add_operation(
            content, str(data.get("procedure", "")), item, library[item], position
        )
    if action == "remove":
        return designer.remove_operation(content, op_key)
    if action == "move":
        return designer.move(content, op_key, -1 if data.get("direction") == "up" else 1)
    if action == "arrange":
        try:
            layout = json.loads(str(data.get("layout", "")))
        except ValueError:
            raise ValidationFailed("The arrangement is not readable.") from None
        if not isinstance(layout, dict):
            raise ValidationFailed("The arrangement is not readable.")
        return designer.arrange(content, {str(k): [str(v) for v in vs] for k, vs in layout.items()})
    if action == "formula":
        return designer.set_formula(
            content, str(data.get("formula", "")), str(data.get("overrides", ""))
        )
    return _configure(content, op_key, data, library)


def _configure(
    content: dict[str, Any], op_key: str, data: dict[str, Any], library: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    op = next(
        (o for up in content["unit_procedures"] for o in up["operations"] if o["key"] == op_key),
        None,
    )
    if op is None:
        raise ValidationFailed("No such step in this recipe.")
    parameters: dict[str, Any] = {}
    acknowledged: dict[str, str] = {}
    for key, parameter in parameters_of(library.get(op["library_item_id"], {})).items():
        raw = str(data.get(f"param:{key}", "")).strip()
        if raw and parameter.get("type") in NUMERIC:
            parameters[key] = _number(raw, parameter["name"])
        acknowledged[key] = str(data.get(f"ack:{key}", ""))
    return designer.configure(
        content,
        op_key,
        parameters,
        acknowledged,
        str(data.get("equipment_class", "")) or None,
        str(data.get("notes", "")),
    )


@post(
    "/t/{slug:str}/recipes/{recipe_id:uuid}/design/{action:str}",
    opt=requires("recipes", "edit"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
    status_code=200,
)
async def design_action(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    recipe_id: FromPath[UUID],
    action: FromPath[str],
) -> Template:
    if action not in ACTIONS:
        raise ValidationFailed(f"Unknown designer action '{action}'.")
    recipe = await service.get(ctx, recipe_id)
    data = await form_data(request)
    try:
        base = int(str(data.get("base_revision", "")))
    except ValueError:
        raise ValidationFailed("The form is missing the revision it was based on.") from None
    library = await service.unit_operations(ctx)
    selected = str(data.get("step", "")) or None
    try:
        content = _edit(
            action,
            recipe["content"],  # a stale base is refused by save() with a 409
            data,
            library,
        )
        revision = await service.save(ctx, recipe_id, content, base, f"designer: {action}")
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _page(
            request, ctx, recipe_id, status=exc.status_code, error=exc.message, selected=selected
        )
    notice = f"Saved as revision {revision}." if revision != base else "No change."
    return await _page(request, ctx, recipe_id, notice=notice, selected=selected)


route_handlers = [design_page, design_action]
