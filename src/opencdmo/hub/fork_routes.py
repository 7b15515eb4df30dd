"""Forks (edit, sign and publish) and the publisher's own items, as pages and API."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.response import Response, Template

from opencdmo.errors import Conflict, Forbidden, NotAuthenticated, ValidationFailed
from opencdmo.hub import library, service
from opencdmo.hub.library_queries import LibraryDetail
from opencdmo.hub.library_routes import _changes, _entry
from opencdmo.hub.schemas import (
    ChangeOut,
    ForkEdit,
    Installed,
    InstallRequest,
    LibraryEntry,
    PublishRequest,
)
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.web.flash import see_other
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data, page

# --- forks -------------------------------------------------------------------------------


async def _item_page(
    request: Request[Any, Any, Any],
    item: LibraryDetail,
    *,
    status: int = 200,
    error: str | None = None,
    notice: str | None = None,
) -> Template:
    return await page(
        request,
        "hub/library_item.html",
        status_code=status,
        item=item,
        content=item.content,
        error=error,
        notice=notice,
    )


NUMERIC_FIELDS = (
    ("default", None),
    ("nor_low", ("normal_range", "low")),
    ("nor_high", ("normal_range", "high")),
    ("par_low", ("proven_acceptable_range", "low")),
    ("par_high", ("proven_acceptable_range", "high")),
)


def _number(raw: str, where: str) -> float | int:
    try:
        value = float(raw)
    except ValueError:
        raise ValidationFailed(
            f"{where}: '{raw}' is not a number.", details={"field": where}
        ) from None
    return int(value) if value.is_integer() else value


def content_from_form(content: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The fork's content with the form's name, summary and numeric parameter values."""
    import copy

    result = copy.deepcopy(content)
    for name in ("name", "summary"):
        if str(data.get(name, "")).strip():
            result[name] = str(data[name]).strip()
    for phase in result.get("phases", []):
        for parameter in phase.get("parameters", []):
            prefix = f"p:{phase['key']}:{parameter['key']}:"
            for field, target in NUMERIC_FIELDS:
                raw = str(data.get(prefix + field, "")).strip()
                if not raw:
                    continue
                value = _number(raw, f"{parameter['name']} {field}")
                if target is None:
                    parameter["default"] = value
                else:
                    parameter.setdefault(target[0], {"low": value, "high": value})[target[1]] = (
                        value
                    )
    return result


@post(
    "/hub/items/{item_id:uuid}/fork",
    opt=requires("hub", "fork"),
    include_in_schema=False,
    status_code=303,
)
async def fork_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], item_id: FromPath[UUID]
) -> Response[Any]:
    library_id = await library.fork(ctx, item_id)
    item = await library.get_library_item(ctx, library_id)
    message = f"Forked {item.name} v{item.version} into your library: edit it here."
    return see_other(request, f"/t/{ctx.slug}/library/{library_id}", flash=message)


@get(
    "/library/{library_id:uuid}",
    opt=requires("hub", "read"),
    include_in_schema=False,
)
async def library_item_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], library_id: FromPath[UUID]
) -> Template:
    item = await library.get_library_item(ctx, library_id)
    return await _item_page(request, item)


@post(
    "/library/{library_id:uuid}/edit",
    opt=requires("hub", "fork"),
    include_in_schema=False,
    status_code=200,
)
async def edit_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], library_id: FromPath[UUID]
) -> Template:
    item = await library.get_library_item(ctx, library_id)
    data = await form_data(request)
    try:
        revision = int(str(data.get("revision", "")))
    except ValueError:
        raise ValidationFailed(
            "The form is missing its revision.", details={"field": "revision"}
        ) from None
    try:
        content = content_from_form(item.content, data)
        changes = await library.edit_fork(ctx, library_id, content, revision)
    except (ValidationFailed, Conflict) as exc:
        return await _item_page(request, item, status=exc.status_code, error=exc.message)
    item = await library.get_library_item(ctx, library_id)
    notice = (
        f"Saved revision {item.revision}: {len(changes)} change(s)." if changes else "No change."
    )
    return await _item_page(request, item, notice=notice)


@post(
    "/library/{library_id:uuid}/publish",
    opt=requires("hub", "approve_publication"),
    include_in_schema=False,
    status_code=200,
)
async def publish_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    library_id: FromPath[UUID],
    settings: NamedDependency[Settings],
) -> Any:
    data = await form_data(request)
    try:
        hub_item = await library.publish_fork(
            settings,
            ctx,
            library_id,
            version=str(data.get("version", "")),
            changelog=str(data.get("changelog", "")),
            visibility=str(data.get("visibility", "private")),
            password=str(data.get("password", "")),
            reason=str(data.get("reason", "")),
        )
    except (ValidationFailed, Conflict, Forbidden, NotAuthenticated) as exc:
        item = await library.get_library_item(ctx, library_id)
        return await _item_page(request, item, status=exc.status_code, error=exc.message)
    message = f"Signed and published v{data.get('version', '')} to the HUB."
    return see_other(request, f"/t/{ctx.slug}/hub/items/{hub_item}", flash=message)


@post(
    "/hub/items/{item_id:uuid}/fork",
    opt=requires("hub", "fork"),
    tags=["hub"],
    status_code=201,
)
async def api_fork(
    ctx: NamedDependency[TenantContext], item_id: FromPath[UUID], data: JSONBody[InstallRequest]
) -> LibraryEntry:
    """Fork a version (default the latest) into an editable draft that keeps its lineage."""
    library_id = await library.fork(ctx, item_id, data.version)
    return _entry(await library.get_library_item(ctx, library_id))


@put(
    "/library/{library_id:uuid}/content",
    opt=requires("hub", "fork"),
    tags=["hub"],
)
async def api_edit(
    ctx: NamedDependency[TenantContext], library_id: FromPath[UUID], data: JSONBody[ForkEdit]
) -> list[ChangeOut]:
    """Replace a fork's content; refused (409) if ``revision`` is not the current one."""
    return _changes(await library.edit_fork(ctx, library_id, data.content, data.revision))


@post(
    "/library/{library_id:uuid}/publish",
    opt=requires("hub", "approve_publication"),
    tags=["hub"],
    status_code=201,
)
async def api_publish(
    ctx: NamedDependency[TenantContext],
    library_id: FromPath[UUID],
    data: JSONBody[PublishRequest],
    settings: NamedDependency[Settings],
) -> Installed:
    """Publish a fork as this tenant's HUB item, signed "approved for publication" with the
    signer's password; the author of the fork cannot sign it."""
    item_id = await library.publish_fork(
        settings,
        ctx,
        library_id,
        version=data.version,
        changelog=data.changelog,
        visibility=data.visibility,
        password=data.password,
        reason=data.reason,
    )
    return Installed([str(item_id)])


# --- the publisher's own items (UI forms; the API is in hub.routes) ----------------------


@post(
    "/hub/items/{item_id:uuid}/visibility",
    opt=requires("hub", "publish"),
    include_in_schema=False,
    status_code=303,
)
async def visibility_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], item_id: FromPath[UUID]
) -> Response[Any]:
    data = await form_data(request)
    shared = [s.strip() for s in str(data.get("shared_with", "")).split(",") if s.strip()]
    visibility = str(data.get("visibility", ""))
    await service.set_visibility(ctx, item_id, visibility, shared)
    return see_other(request, f"/t/{ctx.slug}/hub/items/{item_id}", flash=f"Now {visibility}.")


@post(
    "/hub/items/{item_id:uuid}/versions/{version:str}/mark",
    opt=requires("hub", "publish"),
    include_in_schema=False,
    status_code=303,
)
async def mark_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    item_id: FromPath[UUID],
    version: FromPath[str],
) -> Response[Any]:
    data = await form_data(request)
    yank = str(data.get("action", "")) == "yank"
    await service.mark_version(
        ctx,
        item_id,
        version,
        deprecated_message=str(data.get("message", "")) or None,
        yank=yank,
        reason=str(data.get("reason", "")) or None,
    )
    message = f"Yanked {version}." if yank else f"Deprecated {version}."
    return see_other(request, f"/t/{ctx.slug}/hub/items/{item_id}", flash=message)


# Pages of a tenant, under /t/{slug} (the app mounts them in the context's router).
pages = [
    fork_form,
    library_item_page,
    edit_form,
    publish_form,
    visibility_form,
    mark_form,
]

# The JSON API of a tenant, under /api/v1/t/{slug} (the app mounts it likewise).
api = [
    api_fork,
    api_edit,
    api_publish,
]
