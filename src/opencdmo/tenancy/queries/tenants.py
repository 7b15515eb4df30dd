"""Tenants and sites: reads and writes of ``tenants`` (global) and ``sites``, as typed rows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from opencdmo.db.rows import columns, typed
from opencdmo.errors import NotFound
from opencdmo.tenancy.tables import Site, Tenant


@dataclass(frozen=True)
class TenantRow:
    id: UUID
    slug: str
    name: str
    kind: str
    policy_version: int
    recipe_approvers: int
    recipe_unique_signers: bool
    token_default_days: int
    token_max_days: int
    batch_number_pattern: str
    exception_severities: str  # JSON text: an object of exception kind to severity
    late_entry_minutes: int
    excursion_debounce_seconds: int
    created_at: datetime


@dataclass(frozen=True)
class TenantRef:
    """A tenant as the tenant switcher shows it."""

    slug: str
    name: str
    kind: str


@dataclass(frozen=True)
class SiteRow:
    id: UUID
    code: str
    name: str
    time_zone: str
    created_at: datetime


_TENANT = columns(Tenant, TenantRow)
_SITE = columns(Site, SiteRow)


# --- tenants ------------------------------------------------------------------------------------


async def tenant(tenant_id: UUID, *, lock: bool = False) -> TenantRow | None:
    """The tenant (row-locked until the transaction ends with ``lock``)."""
    query = Tenant.select(*_TENANT).where(Tenant.id == tenant_id)
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    return None if raw is None else typed(TenantRow, raw)


async def this_tenant(tenant_id: UUID, *, lock: bool = False) -> TenantRow:
    """The tenant of the open scope (it exists: a scope is minted from its row)."""
    row = await tenant(tenant_id, lock=lock)
    if row is None:
        raise NotFound("No such tenant.")
    return row


async def tenant_by_slug(slug: str) -> TenantRow | None:
    raw = await Tenant.select(*_TENANT).where(Tenant.slug == slug).first()
    return None if raw is None else typed(TenantRow, raw)


async def slug_taken(slug: str) -> bool:
    return bool(await Tenant.exists().where(Tenant.slug == slug))


async def tenant_refs(tenant_ids: Iterable[UUID]) -> list[TenantRef]:
    """These tenants, by name."""
    ids = list(tenant_ids)
    if not ids:
        return []
    rows = (
        await Tenant.select(*columns(Tenant, TenantRef))
        .where(Tenant.id.is_in(ids))
        .order_by(Tenant.name)
    )
    return [typed(TenantRef, r) for r in rows]


async def insert_tenant(slug: str, name: str, kind: str) -> TenantRow:
    rows = await Tenant.insert(Tenant(slug=slug, name=name, kind=kind)).returning(*_TENANT)
    return typed(TenantRow, rows[0])


async def set_name_and_kind(tenant_id: UUID, name: str, kind: str) -> None:
    await Tenant.update({Tenant.name: name, Tenant.kind: kind}).where(Tenant.id == tenant_id)


async def set_signature_flow(tenant_id: UUID, approvers: int, unique_signers: bool) -> None:
    await Tenant.update(
        {Tenant.recipe_approvers: approvers, Tenant.recipe_unique_signers: unique_signers}
    ).where(Tenant.id == tenant_id)


async def set_token_days(tenant_id: UUID, default_days: int, max_days: int) -> None:
    await Tenant.update(
        {Tenant.token_default_days: default_days, Tenant.token_max_days: max_days}
    ).where(Tenant.id == tenant_id)


async def set_batch_number_pattern(tenant_id: UUID, pattern: str) -> None:
    await Tenant.update({Tenant.batch_number_pattern: pattern}).where(Tenant.id == tenant_id)


async def set_exception_rules(
    tenant_id: UUID, severities: dict[str, str], minutes: int, debounce_seconds: int
) -> None:
    await Tenant.update(
        {
            Tenant.exception_severities: json.dumps(severities),
            Tenant.late_entry_minutes: minutes,
            Tenant.excursion_debounce_seconds: debounce_seconds,
        }
    ).where(Tenant.id == tenant_id)


async def bump_policy(tenant_id: UUID) -> None:
    """Move the tenant's policy version: every process rebuilds its enforcer for it."""
    await Tenant.update({Tenant.policy_version: Tenant.policy_version + 1}).where(
        Tenant.id == tenant_id
    )


async def lock_for_membership_changes(tenant_id: UUID) -> None:
    """Lock the tenant's row until the transaction ends: membership and role changes of one
    tenant take this lock first, so they run one after the other.

    ``FOR NO KEY UPDATE`` (not ``FOR UPDATE``) so that inserts elsewhere in the tenant, whose
    foreign keys take a key-share lock on the tenant row, do not wait for it.
    """
    await Tenant.select(Tenant.id).where(Tenant.id == tenant_id).lock_rows("NO KEY UPDATE")


# --- sites --------------------------------------------------------------------------------------


async def sites() -> list[SiteRow]:
    return [typed(SiteRow, r) for r in await Site.select(*_SITE).order_by(Site.code)]


async def site_by_code(code: str) -> SiteRow | None:
    raw = await Site.select(*_SITE).where(Site.code == code).first()
    return None if raw is None else typed(SiteRow, raw)


async def insert_site(tenant_id: UUID, code: str, name: str, time_zone: str) -> UUID:
    rows = await Site.insert(
        Site(tenant_id=tenant_id, code=code, name=name, time_zone=time_zone)
    ).returning(Site.id)
    site_id = rows[0]["id"]
    assert isinstance(site_id, UUID)
    return site_id


async def update_site(site_id: UUID, name: str, time_zone: str) -> None:
    await Site.update({Site.name: name, Site.time_zone: time_zone}).where(Site.id == site_id)
