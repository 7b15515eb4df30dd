"""Partner data access: the rows of ``partner_links`` as typed rows. Each function runs in
the transaction open in its context and reads or writes the side of the tenant the
transaction is set to (row-level security)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from opencdmo.db.clock import database_now
from opencdmo.db.rows import columns, typed
from opencdmo.errors import NotFound
from opencdmo.partners.tables import PartnerLink

OPEN = ("proposed", "active")


@dataclass(frozen=True)
class RelationshipRow:
    """One tenant's side of a relationship with another tenant of the installation."""

    tenant_id: UUID
    id: UUID
    partner_tenant_id: UUID
    side: str  # this tenant's side: 'sponsor' or 'cdmo'
    status: str  # proposed, active, declined, revoked
    proposed_by_tenant_id: UUID
    proposed_by_name: str
    proposed_at: datetime
    message: str
    share_batch_records: bool
    decided_by_name: str | None
    decided_at: datetime | None
    closed_by_name: str | None
    closed_at: datetime | None
    reason: str | None
    updated_at: datetime

    @property
    def proposed_here(self) -> bool:
        return self.proposed_by_tenant_id == self.tenant_id


_ROW = columns(PartnerLink, RelationshipRow)


@dataclass(frozen=True)
class NewLink:
    id: UUID
    partner_tenant_id: UUID
    side: str
    proposed_by_tenant_id: UUID
    proposed_by: UUID | None
    proposed_by_name: str
    message: str


async def links() -> list[RelationshipRow]:
    rows = await PartnerLink.select(*_ROW).order_by(PartnerLink.proposed_at, ascending=False)
    return [typed(RelationshipRow, r) for r in rows]


async def link(link_id: UUID, *, lock: bool = False) -> RelationshipRow:
    query = PartnerLink.select(*_ROW).where(PartnerLink.id == link_id)
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    if raw is None:
        raise NotFound("No such partner relationship.")
    return typed(RelationshipRow, raw)


async def open_with(partner_tenant_id: UUID) -> RelationshipRow | None:
    """The proposed or active relationship with that tenant, if any."""
    raw = (
        await PartnerLink.select(*_ROW)
        .where(PartnerLink.partner_tenant_id == partner_tenant_id)
        .where(PartnerLink.status.is_in(list(OPEN)))
        .first()
    )
    return None if raw is None else typed(RelationshipRow, raw)


async def active_with(partner_tenant_id: UUID) -> RelationshipRow | None:
    found = await open_with(partner_tenant_id)
    return found if found is not None and found.status == "active" else None


async def active(side: str) -> list[RelationshipRow]:
    """The tenant's active relationships in which the partner is on ``side``'s other side."""
    rows = (
        await PartnerLink.select(*_ROW)
        .where(PartnerLink.status == "active")
        .where(PartnerLink.side == side)
    )
    return [typed(RelationshipRow, r) for r in rows]


async def insert(tenant_id: UUID, new: NewLink) -> None:
    values = {f.name: getattr(new, f.name) for f in fields(NewLink)}
    await PartnerLink.insert(
        PartnerLink(
            tenant_id=tenant_id,
            **values,
            proposed_at=database_now(),
            updated_at=database_now(),
        )
    )


async def update(link_id: UUID, values: dict[str, Any]) -> None:
    changes = {getattr(PartnerLink, k): v for k, v in values.items()}
    await PartnerLink.update({**changes, PartnerLink.updated_at: database_now()}).where(
        PartnerLink.id == link_id
    )
