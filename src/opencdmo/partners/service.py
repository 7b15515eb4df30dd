"""Relationships between a sponsor tenant and a CDMO tenant of this installation.

An admin of one proposes, naming the other by its slug; an admin of the other accepts or
declines; either side revokes (a proposal, withdrawn; an active relationship, ended), with a
reason. The CDMO decides whether it shares released batch records (on by default). Each
step is one unit of work that changes both sides' rows and writes one audit event in each
tenant's trail (``crossing``). Both rows are locked sponsor's first, so two steps at once
serialise: the second sees the first's outcome and gets a 409 naming it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.clock import database_now
from opencdmo.db.tx import read_view, tenant_id_transaction, unit_of_work
from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.fields import check_text, folded_text
from opencdmo.partners import queries
from opencdmo.partners.crossing import partner_side
from opencdmo.partners.queries import NewLink, RelationshipRow
from opencdmo.scope import TenantContext
from opencdmo.tenancy import service as tenancy
from opencdmo.tenancy.queries.tenants import TenantRow
from opencdmo.tenancy.rules import require_reason

SIDES = ("sponsor", "cdmo")
ENTITY = "partner_link"


@dataclass(frozen=True)
class Relationship:
    """This tenant's side of a relationship, with the partner's name."""

    row: RelationshipRow
    partner_slug: str
    partner_name: str

    @property
    def awaiting_us(self) -> bool:
        return self.row.status == "proposed" and not self.row.proposed_here


def _other(side: str) -> str:
    return "cdmo" if side == "sponsor" else "sponsor"


def _by(ctx: TenantContext) -> str:
    return f"{ctx.actor.full_name} ({ctx.name})"


async def relationships(ctx: TenantContext) -> list[Relationship]:
    """The tenant's relationships, newest first (every status)."""
    await authorize(ctx, "partners", "read")
    async with read_view(ctx):
        rows = await queries.links()
        names = await tenancy.tenants_by_id(r.partner_tenant_id for r in rows)
    return [_view(r, names) for r in rows]


async def relationship(ctx: TenantContext, link_id: UUID) -> Relationship:
    await authorize(ctx, "partners", "read")
    async with read_view(ctx):
        row = await queries.link(link_id)
        names = await tenancy.tenants_by_id([row.partner_tenant_id])
    return _view(row, names)


def _view(row: RelationshipRow, names: dict[UUID, TenantRow]) -> Relationship:
    partner = names.get(row.partner_tenant_id)
    return Relationship(row, partner.slug if partner else "", partner.name if partner else "")


async def _partner(ctx: TenantContext, slug: str) -> TenantRow:
    text = folded_text(slug, "partner", "The partner's slug", 64)
    if not text:
        raise ValidationFailed(
            "Name the partner by its slug (the name in its address, like /t/<slug>/).",
            details={"field": "partner"},
        )
    partner = await tenancy.tenant_by_slug(text.lower())
    if partner is None:
        raise ValidationFailed(
            f"There is no tenant '{text[:64]}' on this installation.", details={"field": "partner"}
        )
    if partner.id == ctx.tenant_id:
        raise ValidationFailed("A tenant cannot be its own partner.", details={"field": "partner"})
    if ctx.kind not in SIDES or partner.kind != _other(ctx.kind):
        want = f"a {_other(ctx.kind)}" if ctx.kind in SIDES else "a sponsor and a CDMO"
        raise ValidationFailed(
            f"{partner.name} is a {partner.kind} tenant; a relationship joins {want}"
            + ("" if ctx.kind not in SIDES else f" and {ctx.name}, a {ctx.kind}")
            + ".",
            details={"field": "partner"},
        )
    return partner


async def propose(ctx: TenantContext, partner_slug: str, message: str = "") -> Relationship:
    """Propose a relationship to another tenant (by its slug); its admins accept or decline."""
    await authorize(ctx, "partners", "manage")
    message = check_text(message, "message", "The message", 2000).strip()
    partner = await _partner(ctx, partner_slug)
    link_id = uuid.uuid4()
    async with unit_of_work(ctx):
        existing = await queries.open_with(partner.id)
        if existing is not None:
            raise _already(existing, partner)
        mine = NewLink(link_id, partner.id, ctx.kind, ctx.tenant_id, ctx.user_id, _by(ctx), message)
        theirs = NewLink(
            link_id, ctx.tenant_id, partner.kind, ctx.tenant_id, ctx.user_id, _by(ctx), message
        )
        new = {"partner": partner.slug, "side": ctx.kind, "message": message}
        try:
            # the sponsor's row first, like every command, so two proposals at once serialise
            if ctx.kind == "sponsor":
                await _write_mine(ctx, mine, new)
                await _write_theirs(ctx, partner, theirs)
            else:
                await _write_theirs(ctx, partner, theirs)
                await _write_mine(ctx, mine, new)
        except asyncpg.UniqueViolationError:
            raise Conflict(
                f"{partner.name} and {ctx.name} have an open relationship already: it was "
                "proposed a moment ago. Reload the Partners page to see it."
            ) from None
        row = await queries.link(link_id)
    return Relationship(row, partner.slug, partner.name)


async def _write_mine(ctx: TenantContext, new: NewLink, event: dict[str, Any]) -> None:
    await queries.insert(ctx.tenant_id, new)
    await audit.record(ctx, "partner.proposed", ENTITY, new.id, new=event)


async def _write_theirs(ctx: TenantContext, partner: TenantRow, new: NewLink) -> None:
    event = {"partner": ctx.slug, "side": partner.kind, "message": new.message}
    async with partner_side(ctx, partner.id):
        await queries.insert(partner.id, new)
        await audit.record_across(
            ctx, partner.id, "partner.proposed", ENTITY, new.id, new={**event, "by": ctx.slug}
        )


def _already(existing: RelationshipRow, partner: TenantRow) -> Conflict:
    if existing.status == "active":
        return Conflict(f"The relationship with {partner.name} is active already.")
    if existing.proposed_here:
        return Conflict(f"A relationship with {partner.name} is proposed already.")
    return Conflict(
        f"{partner.name} has proposed a relationship to you already: accept or decline it."
    )


@dataclass(frozen=True)
class _Locked:
    mine: RelationshipRow
    theirs: RelationshipRow
    partner: TenantRow


async def _lock(ctx: TenantContext, link_id: UUID) -> _Locked:
    """Both sides of the relationship locked, the sponsor's first (in the open unit of work);
    another tenant's or no relationship is a 404."""
    peek = await queries.link(link_id)
    partner = (await tenancy.tenants_by_id([peek.partner_tenant_id]))[peek.partner_tenant_id]
    if peek.side == "sponsor":
        mine = await queries.link(link_id, lock=True)
        async with partner_side(ctx, partner.id):
            theirs = await queries.link(link_id, lock=True)
    else:
        async with partner_side(ctx, partner.id):
            theirs = await queries.link(link_id, lock=True)
        mine = await queries.link(link_id, lock=True)
    return _Locked(mine, theirs, partner)


async def _change(
    ctx: TenantContext,
    locked: _Locked,
    action: str,
    values: dict[str, Any],
    event: dict[str, Any],
    reason: str | None = None,
) -> None:
    """Both rows changed and one event in each tenant's trail."""
    link_id = locked.mine.id
    old = {"status": locked.mine.status, "share_batch_records": locked.mine.share_batch_records}
    ours = {**event, "partner": locked.partner.slug}
    await queries.update(link_id, values)
    await audit.record(ctx, action, ENTITY, link_id, old=old, new=ours, reason=reason)
    async with partner_side(ctx, locked.partner.id):
        await queries.update(link_id, values)
        await audit.record_across(
            ctx,
            locked.partner.id,
            action,
            ENTITY,
            link_id,
            old=old,
            new={**event, "partner": ctx.slug, "by": ctx.slug},
            reason=reason,
        )


def _not_proposed(row: RelationshipRow, partner: TenantRow, doing: str) -> Conflict:
    return Conflict(
        f"The relationship with {partner.name} is {row.status}, not proposed: it cannot be "
        f"{doing} any more.",
        details={"status": row.status},
    )


async def accept(ctx: TenantContext, link_id: UUID) -> Relationship:
    """Accept a relationship the partner proposed: it becomes active on both sides."""
    await authorize(ctx, "partners", "manage")
    async with unit_of_work(ctx):
        locked = await _lock(ctx, link_id)
        _awaiting_us(locked, "accepted")
        values = {"status": "active", "decided_by_name": _by(ctx), "decided_at": database_now()}
        await _change(ctx, locked, "partner.accepted", values, {"status": "active"})
        row = await queries.link(link_id)
    return Relationship(row, locked.partner.slug, locked.partner.name)


async def decline(ctx: TenantContext, link_id: UUID, reason: str) -> Relationship:
    """Decline a relationship the partner proposed, with a reason."""
    await authorize(ctx, "partners", "manage")
    reason = require_reason(reason)
    async with unit_of_work(ctx):
        locked = await _lock(ctx, link_id)
        _awaiting_us(locked, "declined")
        values = {
            "status": "declined",
            "decided_by_name": _by(ctx),
            "decided_at": database_now(),
            "reason": reason,
        }
        await _change(ctx, locked, "partner.declined", values, {"status": "declined"}, reason)
        row = await queries.link(link_id)
    return Relationship(row, locked.partner.slug, locked.partner.name)


def _awaiting_us(locked: _Locked, doing: str) -> None:
    if locked.mine.status != "proposed":
        raise _not_proposed(locked.mine, locked.partner, doing)
    if locked.mine.proposed_here:
        raise Conflict(
            f"You proposed this relationship: {locked.partner.name} accepts or declines it. "
            "To withdraw it, revoke it.",
        )


async def revoke(
    ctx: TenantContext, link_id: UUID, reason: str, seen: str | None = None
) -> Relationship:
    """End a relationship (or withdraw a proposal), with a reason: from this moment the
    sponsor sees nothing of the CDMO's batches. ``seen``: the status the revoker saw (the
    page sends it); a relationship whose status changed since is a 409, not revoked."""
    await authorize(ctx, "partners", "manage")
    reason = require_reason(reason)
    async with unit_of_work(ctx):
        locked = await _lock(ctx, link_id)
        if locked.mine.status not in queries.OPEN:
            raise Conflict(
                f"The relationship with {locked.partner.name} is {locked.mine.status} already.",
                details={"status": locked.mine.status},
            )
        if seen is not None and seen != locked.mine.status:
            raise Conflict(
                f"The relationship with {locked.partner.name} became {locked.mine.status} a "
                f"moment ago, after you saw it {seen}: it is not revoked. Look at it again.",
                details={"status": locked.mine.status},
            )
        values = {
            "status": "revoked",
            "closed_by_tenant_id": ctx.tenant_id,
            "closed_by_name": _by(ctx),
            "closed_at": database_now(),
            "reason": reason,
        }
        await _change(ctx, locked, "partner.revoked", values, {"status": "revoked"}, reason)
        row = await queries.link(link_id)
    return Relationship(row, locked.partner.slug, locked.partner.name)


async def set_sharing(
    ctx: TenantContext, link_id: UUID, share_batch_records: bool, reason: str
) -> Relationship:
    """The CDMO decides whether the sponsor may read its released batch records."""
    await authorize(ctx, "partners", "manage")
    reason = require_reason(reason)
    async with unit_of_work(ctx):
        locked = await _lock(ctx, link_id)
        if locked.mine.side != "cdmo":
            raise Conflict("Only the CDMO decides what it shares of its batch records.")
        if locked.mine.status not in queries.OPEN:
            raise Conflict(
                f"The relationship with {locked.partner.name} is {locked.mine.status}.",
                details={"status": locked.mine.status},
            )
        if locked.mine.share_batch_records != share_batch_records:
            values = {"share_batch_records": share_batch_records}
            await _change(ctx, locked, "partner.sharing_changed", values, values, reason)
        row = await queries.link(link_id)
    return Relationship(row, locked.partner.slug, locked.partner.name)


async def active_between(
    sender_tenant_id: UUID, receiver_tenant_id: UUID
) -> RelationshipRow | None:
    """The sender's side of its active relationship with the receiver, if there is one (for
    sending a package to the partner's inbox). Joins the sender's open transaction, if any."""
    async with tenant_id_transaction(sender_tenant_id):
        return await queries.active_with(receiver_tenant_id)


@dataclass(frozen=True)
class Sponsor:
    tenant_id: UUID
    slug: str
    name: str


async def active_sponsors(ctx: TenantContext) -> list[Sponsor]:
    """The sponsors a CDMO has an active relationship with (the batch form offers them)."""
    async with read_view(ctx):
        rows = await queries.active("cdmo")
        names = await tenancy.tenants_by_id(r.partner_tenant_id for r in rows)
    found = [Sponsor(t.id, t.slug, t.name) for t in names.values()]
    return sorted(found, key=lambda s: s.name.lower())


async def sponsor_tenant_for(ctx: TenantContext, sponsor: str) -> UUID | None:
    """In a batch's creation (its open unit of work): the sponsor tenant of an active
    relationship whose name or slug is the batch's sponsor (ignoring case), or None."""
    wanted = sponsor.strip().casefold()
    rows = await queries.active("cdmo")
    names = await tenancy.tenants_by_id(r.partner_tenant_id for r in rows)
    for tenant in names.values():
        if wanted in (tenant.name.casefold(), tenant.slug.casefold()):
            return tenant.id
    return None
