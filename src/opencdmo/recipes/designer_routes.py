"""The recipe designer: a palette of the tenant's unit operations and a canvas of unit
procedures and steps. Drag and drop (SortableJS) and every form post one edit; each edit is
saved as a revision against the revision the page showed (optimistic concurrency)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template

from opencdmo.errors import AppError, ValidationFailed
from opencdmo.fields import Key
from opencdmo.hub.content import common_enum
from opencdmo.hub.model import Category, DataCaptureField, Method
from opencdmo.recipes import designer, mbr, service
from opencdmo.recipes.content import (
    NUMERIC,
    Library,
    Pinned,
    methods_of,
    normalised,
    parameters_of,
    stale,
    step_content,
    unit_operations_of,
)
from opencdmo.recipes.model import content_to_dict, parse_content
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
COMMENT_LIMIT = 500


@dataclass(frozen=True)
class PaletteItem:
    """A unit operation of the library as the palette lists it."""

    id: str
    name: str
    version: str
    category: Category
    library_source: str


@dataclass(frozen=True)
class MethodChoice:
    """A QC method of the library as the sampling and release forms offer it."""

    id: str
    name: str
    version: str
    result_fields: tuple[DataCaptureField, ...]


def _palette(library: Library) -> list[PaletteItem]:
    items = (
        PaletteItem(k, uo.name, uo.version, uo.category, library[k].source)
        for k, uo in unit_operations_of(library).items()
    )
    return sorted(items, key=lambda u: u.name)


def _methods(library: Library) -> list[MethodChoice]:
    items = (
        MethodChoice(k, m.name, m.version, m.result_fields) for k, m in methods_of(library).items()
    )
    return sorted(items, key=lambda m: m.name)


async def _page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    recipe_id: UUID,
    *,
    status: int = 200,
    error: str | None = None,
    notice: str | None = None,
    selected: str | None = None,
    typed: dict[str, Any] | None = None,
    field: str | None = None,
    flash: str | None = None,
) -> Template:
    """The designer; after a refused edit, ``typed`` holds what the user sent (the form is
    shown again with it) and ``field`` the field the message is about."""
    recipe = await service.get(ctx, recipe_id)
    recipe = replace(recipe, content=normalised(recipe.content))
    library = await service.library(ctx)
    pinned = await service.pinned_contents(ctx, recipe.content)
    return await page(
        request,
        "recipes/designer.html",
        block="canvas",
        status_code=status,
        flash=flash,
        recipe=recipe,
        flow=mbr.flow(recipe.content, library, pinned),
        step_of=lambda op: step_content(op, library, pinned),
        stale=stale(recipe.content, library),
        palette=_palette(library),
        methods=_methods(library),
        modalities=common_enum("modality"),
        units=common_enum("ucum_unit"),
        error=error,
        notice=notice,
        selected=selected,
        typed=typed or {"action": None, "fields": {}},
        field=field,
        numeric=NUMERIC,
        parameters_of=parameters_of,
    )


@get(
    "/recipes/{recipe_id:uuid}/design",
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
    library: Library,
    pinned: Pinned,
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
        unit_operation = unit_operations_of(library).get(item)
        if unit_operation is None:
            raise ValidationFailed("Choose a unit operation from the palette.")
        position = _position(data.get("position", ""))
        return designer.add_operation(
            content, str(data.get("procedure", "")), item, unit_operation, position
        )
    if action == "remove":
        return designer.remove_operation(content, op_key)
    if action == "move":
        return designer.move(content, op_key, -1 if data.get("direction") == "up" else 1)
    if action == "relocate":
        return designer.relocate(content, op_key, str(data.get("procedure", "")))
    if action == "arrange":
        return designer.arrange(content, _layout(data.get("layout", "")))
    if action == "formula":
        return designer.set_formula(
            content, str(data.get("formula", "")), str(data.get("overrides", ""))
        )
    if action in ("specification", "sample", "unsample", "release", "unrelease"):
        return _specify(action, content, data, library)
    return _configure(content, op_key, data, library, pinned)


def _position(raw: Any) -> int | None:
    """Where a dropped step goes (0 is first; empty: at the end)."""
    text = str(raw).strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 6):
        raise ValidationFailed(
            f"The position '{text[:20]}' is not a step number (0 to 999999).",
            details={"field": "position"},
        )
    return int(text)


Layout = dict[Key, Annotated[list[Key], msgspec.Meta(max_length=10_000)]]


def _layout(raw: Any) -> dict[str, list[str]]:
    """The drag and drop's arrangement: unit procedure key -> its step keys, in order."""
    try:
        return msgspec.json.decode(str(raw).encode(), type=Layout, strict=True)
    except msgspec.MsgspecError:
        raise ValidationFailed(
            "The arrangement is not readable: it must map each unit procedure to its list of "
            "steps.",
            details={"field": "layout"},
        ) from None


def _step(content: dict[str, Any], op_key: str) -> dict[str, Any]:
    op = next(
        (o for up in content["unit_procedures"] for o in up["operations"] if o["key"] == op_key),
        None,
    )
    if op is None:
        raise ValidationFailed("No such step in this recipe.")
    return dict(op)


def _method(library: Library, method_id: str) -> Method:
    method = methods_of(library).get(method_id)
    if method is None:
        raise ValidationFailed("Choose a QC method of the library.", details={"field": "method"})
    return method


def _specify(
    action: str, content: dict[str, Any], data: dict[str, Any], library: Library
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
    library: Library,
    pinned: Pinned,
) -> dict[str, Any]:
    op = _step(content, op_key)
    parameters: dict[str, Any] = {}
    acknowledged: dict[str, str] = {}
    for key, parameter in parameters_of(step_content(op, library, pinned)).items():
        raw = str(data.get(f"param:{key}", "")).strip()
        if raw and parameter.type in NUMERIC:
            try:
                parameters[key] = designer.number(raw, parameter.name)
            except ValidationFailed as exc:
                raise ValidationFailed(exc.message, details={"field": f"param:{key}"}) from None
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
    "/recipes/{recipe_id:uuid}/design/{action:str}",
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
    recipe = replace(recipe, content=normalised(recipe.content))
    data = await form_data(request)
    try:
        base = int(str(data.get("base_revision", "")))
        if not 1 <= base < 2**31:
            raise ValueError(base)
    except ValueError:
        raise ValidationFailed("The form is missing the revision it was based on.") from None
    library = await service.library(ctx)
    pinned = await service.pinned_contents(ctx, recipe.content)
    # The step the panel showed stays selected after the edit (or the one the edit is about).
    selected = _last(data.get("selected")) or _last(data.get("step")) or None
    try:
        message = _comment(data.get("comment", "")) or f"designer: {action}"
        content = _edit(
            action,
            recipe.content,  # a stale base is refused by save() with a 409
            data,
            library,
            pinned,
        )
        content = content_to_dict(parse_content(content))
        revision = await service.save(ctx, recipe_id, content, base, message)
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _page(
            request,
            ctx,
            recipe_id,
            status=exc.status_code,
            error=exc.message,
            selected=selected,
            typed=_typed(action, data),
            field=_field(exc, action, data),
        )
    if revision == base:
        return await _page(request, ctx, recipe_id, notice="No change.", selected=selected)
    return await _page(
        request, ctx, recipe_id, selected=selected, flash=f"Saved as revision {revision}"
    )


def _last(raw: Any) -> str:
    """A form value as text (the last of a repeated field)."""
    if isinstance(raw, list):
        return str(raw[-1]) if raw else ""
    return "" if raw is None else str(raw)


def _comment(raw: Any) -> str:
    """The edit's optional revision comment (the revision's message in history and compare)."""
    text = " ".join(_last(raw).split())
    if len(text) > COMMENT_LIMIT:
        raise ValidationFailed(
            f"The revision comment is {len(text)} characters long: at most {COMMENT_LIMIT}.",
            details={"field": "comment"},
        )
    return text


def _typed(action: str, data: dict[str, Any]) -> dict[str, Any]:
    """What the user sent with a refused edit, to show the form again as they left it."""
    hidden = ("_csrf_token", "base_revision", "selected")
    values = {k: v if isinstance(v, str) else str(v[-1]) for k, v in data.items()}
    return {"action": action, "fields": {k: v for k, v in values.items() if k not in hidden}}


def _field(exc: AppError, action: str, data: dict[str, Any]) -> str | None:
    """The form field a refusal is about: named by the error, or, for a step's value refused
    by the content checks, the value's field."""
    details = exc.details if isinstance(exc.details, dict) else {}
    if isinstance(details.get("field"), str):
        return str(details["field"])
    problems = [str(p) for p in details.get("problems") or []]
    if action == "configure":
        for name in data:
            key = name.removeprefix("param:")
            if name.startswith("param:") and any(f".parameters[{key}]" in p for p in problems):
                return name
    return None


# Pages of a tenant, under /t/{slug} (the app mounts them in the context's router).
pages = [
    design_page,
    design_action,
]
