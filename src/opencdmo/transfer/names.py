"""Names of tech-transfer records for the audit trail (``audit.sentences``)."""

from __future__ import annotations

from opencdmo.audit.naming import uuids
from opencdmo.audit.sentences import Named, Resolver
from opencdmo.scope import TenantContext
from opencdmo.transfer.tables import TransferPackage, TrustedKey


async def _packages(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    wanted = uuids(ids)
    if not wanted:
        return {}
    rows = await TransferPackage.select(TransferPackage.id, TransferPackage.revision).where(
        TransferPackage.id.is_in(wanted)
    )
    return {
        str(r["id"]): Named(
            f"transfer package {str(r['id'])[:8]} (revision {r['revision']})",
            f"/t/{ctx.slug}/transfer/packages",
        )
        for r in rows
    }


async def _trusted(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    wanted = uuids(ids)
    if not wanted:
        return {}
    rows = await TrustedKey.select(TrustedKey.id, TrustedKey.label).where(
        TrustedKey.id.is_in(wanted)
    )
    return {
        str(r["id"]): Named(f"the sender key of {r['label']}", f"/t/{ctx.slug}/settings/transfer")
        for r in rows
    }


AUDIT_NAMES: dict[str, Resolver] = {
    "transfer_package": _packages,
    "transfer_trusted_key": _trusted,
}
