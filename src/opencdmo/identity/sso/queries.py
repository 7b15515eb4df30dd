"""Single sign-on data access: the tenant's stored configuration, requests (state, nonce,
PKCE verifier) and the provider identities linked to people. Global tables: each function
runs in the caller's global transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from opencdmo.db.sql import clock
from opencdmo.identity.tables import SsoIdentity, SsoRequest
from opencdmo.tenancy.tables import Tenant


@dataclass(frozen=True)
class RequestRow:
    id: UUID
    tenant_id: UUID
    purpose: str
    nonce: str
    code_verifier: str
    next: str
    user_id: UUID | None
    started_at: datetime


async def tenant_sso(slug: str) -> tuple[UUID, str, dict[str, Any] | None] | None:
    """The tenant's id, name and stored ``sso`` configuration (None: not configured)."""
    raw = await Tenant.select(Tenant.id, Tenant.name, Tenant.sso).where(Tenant.slug == slug).first()
    if raw is None:
        return None
    stored = raw["sso"]
    data = json.loads(stored) if isinstance(stored, str) else stored
    return raw["id"], raw["name"], data


async def tenant_sso_by_id(tenant_id: UUID) -> dict[str, Any] | None:
    raw = await Tenant.select(Tenant.sso).where(Tenant.id == tenant_id).first()
    stored = None if raw is None else raw["sso"]
    return json.loads(stored) if isinstance(stored, str) else stored


async def set_tenant_sso(tenant_id: UUID, data: dict[str, Any] | None) -> None:
    await Tenant.update({Tenant.sso: None if data is None else json.dumps(data)}).where(
        Tenant.id == tenant_id
    )


async def insert_request(
    state_hash: str,
    tenant_id: UUID,
    purpose: str,
    nonce: str,
    code_verifier: str,
    next_: str,
    user_id: UUID | None,
) -> None:
    await SsoRequest.insert(
        SsoRequest(
            state_hash=state_hash,
            for_tenant=tenant_id,
            purpose=purpose,
            nonce=nonce,
            code_verifier=code_verifier,
            next=next_,
            user_id=user_id,
            started_at=await clock(),
        )
    )


async def use_request(state_hash: str, valid_for: timedelta) -> RequestRow | None:
    """The request with this state, marked used: None when unknown, used or too old (a
    replayed state). Raw SQL: one atomic UPDATE ... RETURNING with the database's clock."""
    rows = await SsoRequest.raw(
        "UPDATE sso_requests SET used_at = clock_timestamp() "
        "WHERE state_hash = {} AND used_at IS NULL "
        "AND started_at > clock_timestamp() - {}::interval "
        "RETURNING id, for_tenant AS tenant_id, purpose, nonce, code_verifier, next, user_id, "
        "started_at",
        state_hash,
        valid_for,
    )
    return RequestRow(**rows[0]) if rows else None


async def set_grant(request_id: UUID, grant_hash: str) -> None:
    await SsoRequest.update({SsoRequest.grant_hash: grant_hash}).where(SsoRequest.id == request_id)


async def use_grant(grant_hash: str, tenant_id: UUID, user_id: UUID, valid_for: timedelta) -> bool:
    """Spend a signing grant once (its person, its tenant, still fresh)."""
    rows = await SsoRequest.raw(
        "UPDATE sso_requests SET grant_used_at = clock_timestamp() "
        "WHERE grant_hash = {} AND for_tenant = {} AND user_id = {} AND grant_used_at IS NULL "
        "AND used_at > clock_timestamp() - {}::interval RETURNING id",
        grant_hash,
        tenant_id,
        user_id,
        valid_for,
    )
    return bool(rows)


async def identity(issuer: str, subject: str) -> UUID | None:
    raw = await (
        SsoIdentity.select(SsoIdentity.user_id)
        .where((SsoIdentity.issuer == issuer) & (SsoIdentity.subject == subject))
        .first()
    )
    return None if raw is None else UUID(str(raw["user_id"]))


async def has_identity(user_id: UUID) -> bool:
    return bool(await SsoIdentity.exists().where(SsoIdentity.user_id == user_id))


async def link(issuer: str, subject: str, user_id: UUID, tenant_id: UUID) -> None:
    now = await clock()
    await SsoIdentity.insert(
        SsoIdentity(
            issuer=issuer,
            subject=subject,
            user_id=user_id,
            linked_by_tenant=tenant_id,
            created_at=now,
            last_sign_in_at=now,
        )
    )


async def touch_identity(issuer: str, subject: str) -> None:
    await SsoIdentity.update({SsoIdentity.last_sign_in_at: await clock()}).where(
        (SsoIdentity.issuer == issuer) & (SsoIdentity.subject == subject)
    )


async def prune_requests(older_than: datetime) -> int:
    """Remove the requests started before ``older_than`` (spent or expired long ago)."""
    gone = (
        await SsoRequest.delete().where(SsoRequest.started_at < older_than).returning(SsoRequest.id)
    )
    return len(gone)
