"""Names of API tokens for the audit trail (``audit.sentences``)."""

from __future__ import annotations

from opencdmo.audit.naming import uuids
from opencdmo.audit.sentences import Named, Resolver
from opencdmo.identity.tables import ApiToken
from opencdmo.scope import TenantContext


async def _tokens(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    wanted = uuids(ids)
    if not wanted:
        return {}
    rows = await ApiToken.select(ApiToken.id, ApiToken.name).where(ApiToken.id.is_in(wanted))
    return {str(r["id"]): Named(r["name"], f"/t/{ctx.slug}/tokens") for r in rows}


AUDIT_NAMES: dict[str, Resolver] = {"api_token": _tokens}
