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
from opencdmo.hub.content import common_enum
from opencdmo.recipes import designer, service
from opencdmo.recipes.content import (
    NUMERIC,
    methods_of,
    parameters_of,
    stale,
    step_content,
    unit_operations_of,
)
from opencdmo.scope import TenantContext
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data, page

ACTIONS = (
    "procedure",
    "step",
    "remove",
    "move",
    "relocate",
    "adopt",
    "arrange",
    "configure",
    "formula",
    "specification",
    "sample",
    "unsample",
    "release",
    "unrelease",
)


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
    library = await service.library(ctx)
    pinned = await service.pinned_contents(ctx, recipe["content"])
    palette = sorted(
        ({"id": k, **v} for k, v in unit_operations_of(library).items()), key=lambda u: u["name"]
    )
    methods = sorted(
        ({"id": k, **v} for k, v in methods_of(library).items()), key=lambda m: m["name"]
    )
    return await page(
        request,
        "recipes/designer.html",
        block="canvas",
        status_code=status,
        recipe=recipe,
        library=library,
        step_of=lambda op: step_content(op, library, pinned) or {},
        stale=stale(recipe["content"], library),
        palette=palette,
        methods=methods,
        modalities=common_enum("modality"),
        units=common_enum("ucum_unit"),
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
)
async def design_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], recipe_id: FromPath[UUID]
) -> Template:
    step = request.query_params.get("step")
    return await _page(request, ctx, recipe_id, selected=step)


def _edit(
    action: str,
    content: dict[str, Any],
    data: dict[str, Any],
    library: dict[str, dict[str, Any]],
    pinned: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    op_key = str(data.get("step", ""))
    if action == "adopt":
        changed = stale(content, library)
        op = _step(content, op_key) if op_key else None
        ids = {str(op["library_item_id"])} if op else set(changed)
        if not ids & set(changed):
            raise ValidationFailed("Nothing to adopt: the library has the pinned content.")
        return designer.adopt(content, ids)
    if action == "procedure":
        return designer.add_procedure(content, str(data.get("name", "")))
    if action == "step":
        item = str(data.get("library_item_id", ""))
        if item not in unit_operations_of(library):
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
    if action == "relocate":
        return designer.relocate(content, op_key, str(data.get("procedure", "")))
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
    if action in ("specification", "sample", "unsample", "release", "unrelease"):
        return _specify(action, content, data, library)
    return _configure(content, op_key, data, library, pinned)


def _step(content: dict[str, Any], op_key: str) -> dict[str, Any]:
    op = next(
        (o for up in content["unit_procedures"] for o in up["operations"] if o["key"] == op_key),
        None,
    )
    if op is None:
        raise ValidationFailed("No such step in this recipe.")
    return dict(op)


def _method(library: dict[str, dict[str, Any]], method_id: str) -> dict[str, Any]:
    method = methods_of(library).get(method_id)
    if method is None:
        raise ValidationFailed("Choose a QC method of the library.", details={"field": "method"})
    return method


def _specify(
    action: str, content: dict[str, Any], data: dict[str, Any], library: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The specification, sampling points and release specifications."""
    text = {k: str(v) for k, v in data.items()}
    if action == "specification":
        return designer.set_specification(
            content,
            text.get("modality", ""),
            text.get("batch_quantity", ""),
            text.get("batch_unit", ""),
        )
    if action == "sample":
        method_id = text.get("method", "")
        return designer.add_sampling_point(
            content,
            text.get("after_operation", ""),
            method_id,
            _method(library, method_id),
            text.get("volume", ""),
            text.get("unit", ""),
            text.get("note", ""),
        )
    if action == "unsample":
        return designer.remove_sampling_point(content, text.get("key", ""))
    if action == "release":
        method_id, _, attribute = text.get("result", "").partition(":")
        return designer.set_release_specification(
            content,
            method_id,
            _method(library, method_id),
            attribute,
            text.get("criterion", ""),
            text.get("low", ""),
            text.get("high", ""),
        )
    return designer.remove_release_specification(content, text.get("attribute", ""))


def _configure(
    content: dict[str, Any],
    op_key: str,
    data: dict[str, Any],
    library: dict[str, dict[str, Any]],
    pinned: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    op = _step(content, op_key)
    parameters: dict[str, Any] = {}
    acknowledged: dict[str, str] = {}
    for key, parameter in parameters_of(step_content(op, library, pinned) or {}).items():
        raw = str(data.get(f"param:{key}", "")).strip()
        if raw and parameter.get("type") in NUMERIC:
            parameters[key] = designer.number(raw, parameter["name"])
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
    library = await service.library(ctx)
    pinned = await service.pinned_contents(ctx, recipe["content"])
    selected = str(data.get("step", "")) or None
    try:
        content = _edit(
            action,
            recipe["content"],  # a stale base is refused by save() with a 409
            data,
            library,
            pinned,
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
