"""The tenant library: install from the HUB, see updates, structural diffs, upgrade."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect, Template

from opencdmo.audit.service import record_security
from opencdmo.errors import Conflict, Forbidden, NotAuthenticated, ValidationFailed
from opencdmo.hub import library, queries, service
from opencdmo.hub.diff import Change
from opencdmo.hub.schemas import (
    ChangeOut,
    ForkEdit,
    Installed,
    InstallRequest,
    LibraryEntry,
    PublishRequest,
    UpgradePreview,
    UpgradeRequest,
)
from opencdmo.settings import Settings
from opencdmo.tenancy.context import TenantContext
from opencdmo.web.guards import TENANT_DEPS, TENANT_GUARDS, requires
from opencdmo.web.pages import form_data, page

To = Annotated[str | None, QueryParameter(name="to", required=False, max_length=40)]


def _entry(row: dict[str, Any]) -> LibraryEntry:
    return LibraryEntry(
        row["id"],
        row["source"],
        row["hub_item_id"],
        row["kind"],
        row["slug"],
        row["name"],
        row["version"],
        row["content_hash"],
        row["update_available"],
        row["available"],
        row["deprecated_message"],
    )


def _changes(changes: list[Change]) -> list[ChangeOut]:
    return [ChangeOut(c.op, c.path, c.old, c.new) for c in changes]


@get(
    "/t/{slug:str}/library",
    opt=requires("hub", "read"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
)
async def library_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    items = await library.list_library(ctx)
    updates = [i for i in items if i["update_available"]]
    return await page(request, "hub/library.html", items=items, updates=updates)


@post(
    "/t/{slug:str}/hub/items/{item_id:uuid}/install",
    opt=requires("hub", "install"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
    status_code=303,
)
async def install_form(ctx: NamedDependency[TenantContext], item_id: FromPath[UUID]) -> Redirect:
    await library.install(ctx, item_id)
    return Redirect(f"/t/{ctx.slug}/library", status_code=303)


@get(
    "/t/{slug:str}/library/{library_id:uuid}/diff",
    opt=requires("hub", "read"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
)
async def diff_page(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    library_id: FromPath[UUID],
    to: To = None,
) -> Template:
    item, target, changes = await library.preview_upgrade(ctx, library_id, to)
    hub_item = await queries.get_item(ctx, item["hub_item_id"])
    return await page(
        request,
        "hub/diff.html",
        item=item,
        target=target,
        changes=changes,
        versions=hub_item["versions"],
    )


@post(
    "/t/{slug:str}/library/{library_id:uuid}/upgrade",
    opt=requires("hub", "install"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
    status_code=303,
)
async def upgrade_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], library_id: FromPath[UUID]
) -> Redirect:
    data = await form_data(request)
    to = str(data.get("to") or "")
    if not to:
        raise ValidationFailed("Choose the version to upgrade to.", details={"field": "to"})
    await library.upgrade(ctx, library_id, to, str(data.get("reason") or "") or None)
    return Redirect(f"/t/{ctx.slug}/library", status_code=303)


@get(
    "/api/v1/t/{slug:str}/library",
    opt=requires("hub", "read"),
    tags=["hub"],
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
)
async def api_library(ctx: NamedDependency[TenantContext]) -> list[LibraryEntry]:
    """The tenant's installed and forked items, each with whether an update is available."""
    return [_entry(row) for row in await library.list_library(ctx)]


@post(
    "/api/v1/t/{slug:str}/hub/items/{item_id:uuid}/install",
    opt=requires("hub", "install"),
    tags=["hub"],
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
    status_code=201,
)
async def api_install(
    ctx: NamedDependency[TenantContext], item_id: FromPath[UUID], data: JSONBody[InstallRequest]
) -> Installed:
    """Install a version (default the latest) with every dependency not yet installed."""
    return Installed(await library.install(ctx, item_id, data.version))


@get(
    "/api/v1/t/{slug:str}/library/{library_id:uuid}/diff",
    opt=requires("hub", "read"),
    tags=["hub"],
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
)
async def api_diff(
    ctx: NamedDependency[TenantContext], library_id: FromPath[UUID], to: To = None
) -> UpgradePreview:
    """Structural diff from the installed version to ``to`` (default the latest)."""
    item, target, changes = await library.preview_upgrade(ctx, library_id, to)
    return UpgradePreview(item["version"], target["version"], _changes(changes))


@post(
    "/api/v1/t/{slug:str}/library/{library_id:uuid}/upgrade",
    opt=requires("hub", "install"),
    tags=["hub"],
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
)
async def api_upgrade(
    ctx: NamedDependency[TenantContext], library_id: FromPath[UUID], data: JSONBody[UpgradeRequest]
) -> UpgradePreview:
    """Upgrade an installed item explicitly; the change is audited with its diff."""
    before = await library.get_library_item(ctx, library_id)
    changes = await library.upgrade(ctx, library_id, data.to, data.reason)
    return UpgradePreview(before["version"], data.to, _changes(changes))


@put(
    "/api/v1/t/{slug:str}/hub/items/{item_id:uuid}",
    opt=requires("hub", "read"),
    tags=["hub"],
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
    include_in_schema=False,
)
async def api_modify_item(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], item_id: FromPath[UUID]
) -> None:
    """HUB items are read-only for tenants: 403, recorded as a security event."""
    await queries.get_item(ctx, item_id)  # 404 first when it is not visible
    await record_security(
        "hub.modify_refused",
        actor=ctx.actor,
        meta=ctx.meta,
        tenant_id=ctx.tenant_id,
        detail={"path": request.url.path, "method": request.method},
    )
    raise Forbidden("HUB items are read-only: install or fork an item to work with it.")


api_patch_item = patch(
    "/api/v1/t/{slug:str}/hub/items/{item_id:uuid}",
    opt=requires("hub", "read"),
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
    include_in_schema=False,
    name="api_patch_item",
)(api_modify_item.fn)
api_delete_item = delete(
    "/api/v1/t/{slug:str}/hub/items/{item_id:uuid}",
    opt=requires("hub", "read"),
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
    include_in_schema=False,
    status_code=403,
    name="api_delete_item",
)(api_modify_item.fn)

route_handlers = [
    library_page,
    install_form,
    diff_page,
    upgrade_form,
    api_library,
    api_install,
    api_diff,
    api_upgrade,
    api_modify_item,
    api_patch_item,
    api_delete_item,
]


# --- forks -------------------------------------------------------------------------------

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
    "/t/{slug:str}/hub/items/{item_id:uuid}/fork",
    opt=requires("hub", "fork"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
    status_code=303,
)
async def fork_form(ctx: NamedDependency[TenantContext], item_id: FromPath[UUID]) -> Redirect:
    library_id = await library.fork(ctx, item_id)
    return Redirect(f"/t/{ctx.slug}/library/{library_id}", status_code=303)


@get(
    "/t/{slug:str}/library/{library_id:uuid}",
    opt=requires("hub", "read"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
)
async def library_item_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], library_id: FromPath[UUID]
) -> Template:
    item = await library.get_library_item(ctx, library_id)
    return await page(
        request,
        "hub/library_item.html",
        item=item,
        content=item["content"],
        error=None,
        notice=None,
    )


@post(
    "/t/{slug:str}/library/{library_id:uuid}/edit",
    opt=requires("hub", "fork"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
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
        content = content_from_form(item["content"], data)
        changes = await library.edit_fork(ctx, library_id, content, revision)
    except (ValidationFailed, Conflict) as exc:
        return await page(
            request,
            "hub/library_item.html",
            status_code=exc.status_code,
            item=item,
            content=item["content"],
            error=exc.message,
            notice=None,
        )
    item = await library.get_library_item(ctx, library_id)
    notice = (
        f"Saved revision {item['revision']}: {len(changes)} change(s)." if changes else "No change."
    )
    return await page(
        request,
        "hub/library_item.html",
        item=item,
        content=item["content"],
        error=None,
        notice=notice,
    )


@post(
    "/t/{slug:str}/library/{library_id:uuid}/publish",
    opt=requires("hub", "approve_publication"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
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
        return await page(
            request,
            "hub/library_item.html",
            status_code=exc.status_code,
            item=item,
            content=item["content"],
            error=exc.message,
            notice=None,
        )
    return Redirect(f"/t/{ctx.slug}/hub/items/{hub_item}", status_code=303)


@post(
    "/api/v1/t/{slug:str}/hub/items/{item_id:uuid}/fork",
    opt=requires("hub", "fork"),
    tags=["hub"],
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
    status_code=201,
)
async def api_fork(
    ctx: NamedDependency[TenantContext], item_id: FromPath[UUID], data: JSONBody[InstallRequest]
) -> LibraryEntry:
    """Fork a version (default the latest) into an editable draft that keeps its lineage."""
    library_id = await library.fork(ctx, item_id, data.version)
    return _entry(await library.get_library_item(ctx, library_id))


@put(
    "/api/v1/t/{slug:str}/library/{library_id:uuid}/content",
    opt=requires("hub", "fork"),
    tags=["hub"],
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
)
async def api_edit(
    ctx: NamedDependency[TenantContext], library_id: FromPath[UUID], data: JSONBody[ForkEdit]
) -> list[ChangeOut]:
    """Replace a fork's content; refused (409) if ``revision`` is not the current one."""
    return _changes(await library.edit_fork(ctx, library_id, data.content, data.revision))


@post(
    "/api/v1/t/{slug:str}/library/{library_id:uuid}/publish",
    opt=requires("hub", "approve_publication"),
    tags=["hub"],
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
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


route_handlers += [
    fork_form,
    library_item_page,
    edit_form,
    publish_form,
    api_fork,
    api_edit,
    api_publish,
]


# --- the publisher's own items (UI forms; the API is in hub.routes) ----------------------


@post(
    "/t/{slug:str}/hub/items/{item_id:uuid}/visibility",
    opt=requires("hub", "publish"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
    status_code=303,
)
async def visibility_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], item_id: FromPath[UUID]
) -> Redirect:
    data = await form_data(request)
    shared = [s.strip() for s in str(data.get("shared_with", "")).split(",") if s.strip()]
    await service.set_visibility(ctx, item_id, str(data.get("visibility", "")), shared)
    return Redirect(f"/t/{ctx.slug}/hub/items/{item_id}", status_code=303)


@post(
    "/t/{slug:str}/hub/items/{item_id:uuid}/versions/{version:str}/mark",
    opt=requires("hub", "publish"),
    include_in_schema=False,
    guards=TENANT_GUARDS,
    dependencies=TENANT_DEPS,
    status_code=303,
)
async def mark_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    item_id: FromPath[UUID],
    version: FromPath[str],
) -> Redirect:
    data = await form_data(request)
    await service.mark_version(
        ctx,
        item_id,
        version,
        deprecated_message=str(data.get("message", "")) or None,
        yank=str(data.get("action", "")) == "yank",
    )
    return Redirect(f"/t/{ctx.slug}/hub/items/{item_id}", status_code=303)


route_handlers += [visibility_form, mark_form]
