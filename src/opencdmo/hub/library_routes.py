"""The tenant library: install from the HUB, see updates, structural diffs, upgrade."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Response, Template

from opencdmo.audit.service import record_security
from opencdmo.errors import Forbidden, ValidationFailed
from opencdmo.hub import library, queries
from opencdmo.hub.diff import Change
from opencdmo.hub.library_queries import LibraryRow
from opencdmo.hub.schemas import (
    ChangeOut,
    Installed,
    InstallRequest,
    LibraryEntry,
    UpgradePreview,
    UpgradeRequest,
)
from opencdmo.scope import TenantContext
from opencdmo.web.flash import see_other
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data, page

To = Annotated[str | None, QueryParameter(name="to", required=False, max_length=40)]


def _entry(row: LibraryRow) -> LibraryEntry:
    return LibraryEntry(
        row.id,
        row.source,
        row.hub_item_id,
        row.kind,
        row.slug,
        row.name,
        row.version,
        row.content_hash,
        row.update_available,
        row.available,
        row.deprecated_message,
    )


def _changes(changes: list[Change]) -> list[ChangeOut]:
    return [ChangeOut(c.op, c.path, c.old, c.new) for c in changes]


@get(
    "/library",
    opt=requires("hub", "read"),
    include_in_schema=False,
)
async def library_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    items = await library.list_library(ctx)
    updates = [i for i in items if i.update_available]
    return await page(request, "hub/library.html", items=items, updates=updates)


@post(
    "/hub/items/{item_id:uuid}/install",
    opt=requires("hub", "install"),
    include_in_schema=False,
    status_code=303,
)
async def install_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], item_id: FromPath[UUID]
) -> Response[Any]:
    installed = await library.install(ctx, item_id)
    item = await queries.get_item(ctx, item_id)
    # installed: "<kind> <slug> <version>" for the item and each dependency new to the library
    mine = next((i for i in installed if i.split(" ")[1:2] == [item.slug]), None)
    more = len(installed) - (1 if mine else 0)
    message = f"Installed {item.name}" + (f" v{mine.rsplit(' ', 1)[-1]}" if mine else "")
    message += f" and {more} dependenc{'y' if more == 1 else 'ies'}." if more else "."
    return see_other(request, f"/t/{ctx.slug}/library", flash=message)


@get(
    "/library/{library_id:uuid}/diff",
    opt=requires("hub", "read"),
    include_in_schema=False,
)
async def diff_page(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    library_id: FromPath[UUID],
    to: To = None,
) -> Template:
    item, target, changes = await library.preview_upgrade(ctx, library_id, to)
    hub_item = await queries.get_item(ctx, item.hub_item_id)
    return await page(
        request,
        "hub/diff.html",
        item=item,
        target=target,
        changes=changes,
        versions=hub_item.versions,
    )


@post(
    "/library/{library_id:uuid}/upgrade",
    opt=requires("hub", "install"),
    include_in_schema=False,
    status_code=303,
)
async def upgrade_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], library_id: FromPath[UUID]
) -> Response[Any]:
    data = await form_data(request)
    to = str(data.get("to") or "")
    if not to:
        raise ValidationFailed("Choose the version to upgrade to.", details={"field": "to"})
    changes = await library.upgrade(ctx, library_id, to, str(data.get("reason") or "") or None)
    item = await library.get_library_item(ctx, library_id)
    message = f"Upgraded {item.name} to v{to}: {len(changes)} change(s)."
    return see_other(request, f"/t/{ctx.slug}/library", flash=message)


@get(
    "/library",
    opt=requires("hub", "read"),
    tags=["hub"],
)
async def api_library(ctx: NamedDependency[TenantContext]) -> list[LibraryEntry]:
    """The tenant's installed and forked items, each with whether an update is available."""
    return [_entry(row) for row in await library.list_library(ctx)]


@post(
    "/hub/items/{item_id:uuid}/install",
    opt=requires("hub", "install"),
    tags=["hub"],
    status_code=201,
)
async def api_install(
    ctx: NamedDependency[TenantContext], item_id: FromPath[UUID], data: JSONBody[InstallRequest]
) -> Installed:
    """Install a version (default the latest) with every dependency not yet installed."""
    return Installed(await library.install(ctx, item_id, data.version))


@get(
    "/library/{library_id:uuid}/diff",
    opt=requires("hub", "read"),
    tags=["hub"],
)
async def api_diff(
    ctx: NamedDependency[TenantContext], library_id: FromPath[UUID], to: To = None
) -> UpgradePreview:
    """Structural diff from the installed version to ``to`` (default the latest)."""
    item, target, changes = await library.preview_upgrade(ctx, library_id, to)
    return UpgradePreview(item.version, target.version, _changes(changes))


@post(
    "/library/{library_id:uuid}/upgrade",
    opt=requires("hub", "install"),
    tags=["hub"],
)
async def api_upgrade(
    ctx: NamedDependency[TenantContext], library_id: FromPath[UUID], data: JSONBody[UpgradeRequest]
) -> UpgradePreview:
    """Upgrade an installed item explicitly; the change is audited with its diff."""
    before = await library.get_library_item(ctx, library_id)
    changes = await library.upgrade(ctx, library_id, data.to, data.reason)
    return UpgradePreview(before.version, data.to, _changes(changes))


@put(
    "/hub/items/{item_id:uuid}",
    opt=requires("hub", "read"),
    tags=["hub"],
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
    "/hub/items/{item_id:uuid}",
    opt=requires("hub", "read"),
    include_in_schema=False,
    name="api_patch_item",
)(api_modify_item.fn)
api_delete_item = delete(
    "/hub/items/{item_id:uuid}",
    opt=requires("hub", "read"),
    include_in_schema=False,
    status_code=403,
    name="api_delete_item",
)(api_modify_item.fn)

# Pages of a tenant, under /t/{slug} (the app mounts them in the context's router).
pages = [
    library_page,
    install_form,
    diff_page,
    upgrade_form,
]

# The JSON API of a tenant, under /api/v1/t/{slug} (the app mounts it likewise).
api = [
    api_library,
    api_install,
    api_diff,
    api_upgrade,
    api_modify_item,
    api_patch_item,
    api_delete_item,
]
