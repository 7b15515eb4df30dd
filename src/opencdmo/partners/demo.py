"""The demo's relationships: each demo CDMO and each demo sponsor, proposed by the CDMO's
first admin and accepted by the sponsor's, so that the batches the demo makes for the
sponsor show on its "Batches made for us" page. Run twice, it changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from opencdmo.db.tx import read_view
from opencdmo.identity import service as identity
from opencdmo.partners import queries, service
from opencdmo.scope import Actor, RequestMeta, TenantContext
from opencdmo.tenancy import service as tenancy
from opencdmo.tenancy.rules import ADMIN_ROLE


async def _admin(manifest: Any, meta: RequestMeta) -> TenantContext | None:
    person = next((p for p in manifest.people if ADMIN_ROLE in p.roles), None)
    tenant = await tenancy.tenant_by_slug(manifest.slug)
    user = await identity.find_user(person.email) if person else None
    if tenant is None or user is None:
        return None
    return await tenancy.internal_context(
        tenant.id, Actor(user.id, user.email, user.full_name), meta
    )


async def demo_relationships(
    manifests: Iterable[Any], meta: RequestMeta, report: Callable[[str], None]
) -> None:
    listed = list(manifests)
    for cdmo_manifest in (m for m in listed if m.kind == "cdmo"):
        for sponsor_manifest in (m for m in listed if m.kind == "sponsor"):
            cdmo = await _admin(cdmo_manifest, meta)
            sponsor = await _admin(sponsor_manifest, meta)
            if cdmo is None or sponsor is None:
                continue
            async with read_view(cdmo):
                if await queries.open_with(sponsor.tenant_id) is not None:
                    continue
            proposed = await service.propose(cdmo, sponsor.slug, "Demo relationship")
            await service.accept(sponsor, proposed.row.id)
            report(f"  {cdmo.slug} and {sponsor.slug}: partner relationship active")
