"""Names of HUB items and library items for the audit trail (``audit.sentences``); a HUB
item the tenant may no longer see (row-level security) is left unnamed."""

from __future__ import annotations

from opencdmo.audit.naming import uuids
from opencdmo.audit.sentences import Named, Resolver
from opencdmo.hub.tables import HubItem, LibraryItem
from opencdmo.scope import TenantContext


async def _hub_items(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    wanted = uuids(ids)
    if not wanted:
        return {}
    rows = await HubItem.select(HubItem.id, HubItem.name).where(HubItem.id.is_in(wanted))
    return {str(r["id"]): Named(r["name"], f"/t/{ctx.slug}/hub/items/{r['id']}") for r in rows}


async def _library_items(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    wanted = uuids(ids)
    if not wanted:
        return {}
    rows = await LibraryItem.select(LibraryItem.id, LibraryItem.name, LibraryItem.version).where(
        LibraryItem.id.is_in(wanted)
    )
    return {
        str(r["id"]): Named(f"{r['name']} {r['version']}", f"/t/{ctx.slug}/library/{r['id']}")
        for r in rows
    }


AUDIT_NAMES: dict[str, Resolver] = {"hub_item": _hub_items, "library_item": _library_items}
