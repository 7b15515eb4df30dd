"""Names of master recipes for the audit trail (``audit.sentences``)."""

from __future__ import annotations

from opencdmo.audit.naming import uuids
from opencdmo.audit.sentences import Named, Resolver
from opencdmo.recipes.tables import MasterRecipe
from opencdmo.scope import TenantContext


async def _recipes(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    wanted = uuids(ids)
    if not wanted:
        return {}
    rows = await MasterRecipe.select(MasterRecipe.id, MasterRecipe.name).where(
        MasterRecipe.id.is_in(wanted)
    )
    return {str(r["id"]): Named(r["name"], f"/t/{ctx.slug}/recipes/{r['id']}") for r in rows}


AUDIT_NAMES: dict[str, Resolver] = {"master_recipe": _recipes}
