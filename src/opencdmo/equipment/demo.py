"""The demo's equipment made ready for its batches: each available unit of a CDMO's manifest
whose cleaning has run out (or never was) is cleaned, signed by the manifest's first
production operator, valid for ``CLEAN_FOR``. Qualification and calibration due dates are the
manifest's own (in the future). Run again, it cleans only what expired since."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from opencdmo.equipment import service
from opencdmo.equipment.service import Work
from opencdmo.identity import service as identity
from opencdmo.scope import Actor, RequestMeta
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy

CLEAN_FOR: Final = timedelta(days=30)


async def clean_equipment(
    settings: Settings,
    manifest: Any,
    meta: RequestMeta,
    password: str,
    report: Callable[[str], None],
) -> int:
    """Clean the manifest's available units that are not clean now; how many were."""
    person = next((p for p in manifest.people if "production_operator" in p.roles), None)
    tenant = await tenancy.tenant_by_slug(manifest.slug)
    user = await identity.find_user(person.email) if person else None
    if tenant is None or user is None:
        return 0
    actor = Actor(user.id, user.email, user.full_name)
    ctx = await tenancy.internal_context(tenant.id, actor, meta)
    if ctx is None:
        return 0
    now = datetime.now(UTC)
    cleaned = []
    for unit in await service.list_units(ctx):
        if unit.status != "available" or (unit.clean_until and unit.clean_until > now):
            continue
        work = Work("cleaning", "Cleaned for the demo batches", clean_until=now + CLEAN_FOR)
        await service.log_work(settings, ctx, unit.id, work, password)
        cleaned.append(unit.code)
    if cleaned:
        report(f"  {manifest.slug}: {', '.join(cleaned)} cleaned by {user.email}")
    return len(cleaned)
