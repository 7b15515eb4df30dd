"""Memberships and role grants: reads and writes of ``memberships``, ``role_assignments`` and
``site_role_assignments``, and of the ``users.member_of`` list that mirrors memberships.

The people's names and addresses come from the global ``users`` table, joined by the
membership's ``user_id``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any
from uuid import UUID

from piccolo.query.functions.array import ArrayAppend, ArrayRemove

from opencdmo.db.rows import columns, typed
from opencdmo.identity.tables import User
from opencdmo.tenancy.tables import Membership, RoleAssignment, Site, SiteRoleAssignment


@dataclass(frozen=True)
class MemberRow:
    """A member as the members page and the API show them: the membership, the person and
    their tenant-wide roles (sorted)."""

    id: UUID
    user_id: UUID
    is_active: bool  # the membership
    created_at: datetime
    email: str
    full_name: str
    user_active: bool  # the account, everywhere
    roles: tuple[str, ...]


@dataclass(frozen=True)
class MembershipRow:
    id: UUID
    user_id: UUID
    is_active: bool


@dataclass(frozen=True, order=True)
class SiteRole:
    site_code: str
    role: str


_MEMBERSHIP = columns(Membership, MembershipRow)


def _user() -> Any:
    """The member's ``users`` row, joined on ``memberships.user_id``."""
    return Membership.user_id.join_on(User.id)


# --- members ------------------------------------------------------------------------------------


async def members(membership_id: UUID | None = None) -> list[MemberRow]:
    """Every member of the tenant (or the one), by name and address, with their roles (one
    query: a row per role held, folded into one row per member)."""
    grant: Any = Membership.id.join_on(RoleAssignment.membership_id)
    query = Membership.select(
        Membership.id,
        Membership.user_id,
        Membership.is_active,
        Membership.created_at,
        _user().email.as_alias("email"),
        _user().full_name.as_alias("full_name"),
        _user().is_active.as_alias("user_active"),
        grant.role.as_alias("role"),
    ).order_by(_user().full_name, _user().email, Membership.id, grant.role)
    if membership_id is not None:
        query = query.where(Membership.id == membership_id)
    rows = await query
    return [_member(list(held)) for _, held in groupby(rows, key=itemgetter("id"))]


def _member(rows: list[dict[str, Any]]) -> MemberRow:
    """One member from their rows (consecutive: one per role held, one if none is)."""
    roles = tuple(r["role"] for r in rows if r["role"] is not None)
    return typed(MemberRow, {**rows[0], "roles": roles})


async def member(membership_id: UUID) -> MemberRow | None:
    found = await members(membership_id)
    return found[0] if found else None


async def membership(membership_id: UUID, *, lock: bool = False) -> MembershipRow | None:
    """The membership (row-locked until the transaction ends with ``lock``)."""
    query = Membership.select(*_MEMBERSHIP).where(Membership.id == membership_id)
    if lock:
        query = query.lock_rows("UPDATE")
    raw = await query.first()
    return None if raw is None else typed(MembershipRow, raw)


async def membership_of(user_id: UUID) -> UUID | None:
    """The user's membership of this tenant, if any (active or not)."""
    raw = await Membership.select(Membership.id).where(Membership.user_id == user_id).first()
    return None if raw is None else _uuid(raw["id"])


async def membership_active_by_email(email: str) -> bool | None:
    """Whether the address's membership of this tenant is active (None: not a member)."""
    raw = await Membership.select(Membership.is_active).where(_user().email == email).first()
    return None if raw is None else bool(raw["is_active"])


async def insert_membership(tenant_id: UUID, user_id: UUID) -> UUID | None:
    """The new membership's id; None when the user is a member already."""
    rows = (
        await Membership.insert(Membership(tenant_id=tenant_id, user_id=user_id))
        .on_conflict(target=(Membership.tenant_id, Membership.user_id), action="DO NOTHING")
        .returning(Membership.id)
    )
    return _uuid(rows[0]["id"]) if rows else None


async def set_membership_active(membership_id: UUID, active: bool) -> None:
    await Membership.update({Membership.is_active: active}).where(Membership.id == membership_id)


async def list_in_member_of(user_id: UUID, tenant_id: UUID, *, listed: bool) -> None:
    """Add the tenant to the user's ``member_of`` (once), or take it out."""
    change = ArrayRemove(User.member_of, tenant_id)
    value = ArrayAppend(change, tenant_id) if listed else change
    await User.update({User.member_of: value}).where(User.id == user_id)


# --- tenant-wide roles --------------------------------------------------------------------------


async def roles_of(membership_id: UUID) -> list[str]:
    rows = await RoleAssignment.select(RoleAssignment.role).where(
        RoleAssignment.membership_id == membership_id
    )
    return [r["role"] for r in rows]


async def add_roles(tenant_id: UUID, membership_id: UUID, roles: Iterable[str]) -> None:
    grants = [
        RoleAssignment(tenant_id=tenant_id, membership_id=membership_id, role=role)
        for role in roles
    ]
    if grants:
        await RoleAssignment.insert(*grants)


async def remove_roles(membership_id: UUID, roles: list[str]) -> None:
    if roles:
        await RoleAssignment.delete().where(
            (RoleAssignment.membership_id == membership_id) & RoleAssignment.role.is_in(roles)
        )


async def active_holders(role: str) -> set[UUID]:
    """The memberships holding ``role`` tenant-wide that are active, of an active user."""
    membership: Any = RoleAssignment.membership_id.join_on(Membership.id)
    rows = await RoleAssignment.select(RoleAssignment.membership_id).where(
        (RoleAssignment.role == role)
        & membership.is_active.eq(True)
        & membership.user_id.join_on(User.id).is_active.eq(True)
    )
    return {_uuid(r["membership_id"]) for r in rows}


# --- roles at one site --------------------------------------------------------------------------


async def site_roles(membership_id: UUID) -> list[SiteRole]:
    """The member's roles at one site, by site code and role."""
    rows = await SiteRoleAssignment.select(
        SiteRoleAssignment.site_id.join_on(Site.id).code.as_alias("site_code"),
        SiteRoleAssignment.role,
    ).where(SiteRoleAssignment.membership_id == membership_id)
    return sorted(SiteRole(r["site_code"], r["role"]) for r in rows)


async def add_site_role(tenant_id: UUID, membership_id: UUID, site_id: UUID, role: str) -> bool:
    """Grant the role at the site; False when the member holds it there already."""
    inserted = (
        await SiteRoleAssignment.insert(
            SiteRoleAssignment(
                tenant_id=tenant_id, membership_id=membership_id, site_id=site_id, role=role
            )
        )
        .on_conflict(
            target=(
                SiteRoleAssignment.tenant_id,
                SiteRoleAssignment.membership_id,
                SiteRoleAssignment.site_id,
                SiteRoleAssignment.role,
            ),
            action="DO NOTHING",
        )
        .returning(SiteRoleAssignment.id)
    )
    return bool(inserted)


async def remove_site_role(membership_id: UUID, site_id: UUID, role: str) -> bool:
    """Take the role at the site away; False when the member did not hold it there."""
    removed = (
        await SiteRoleAssignment.delete()
        .where(
            (SiteRoleAssignment.membership_id == membership_id)
            & (SiteRoleAssignment.site_id == site_id)
            & (SiteRoleAssignment.role == role)
        )
        .returning(SiteRoleAssignment.id)
    )
    return bool(removed)


def _uuid(value: object) -> UUID:
    assert isinstance(value, UUID)
    return value


_NONE = UUID(int=0)


async def member_names(
    membership_ids: list[UUID], user_ids: list[UUID]
) -> tuple[dict[UUID, str], dict[UUID, str]]:
    """Printed names of members, by membership id and by user id, of this tenant only (the
    audit trail names the people its events refer to)."""
    if not membership_ids and not user_ids:
        return {}, {}
    # is_in refuses an empty list: the id that no row has stands in for "none".
    wanted = Membership.id.is_in(membership_ids or [_NONE]) | Membership.user_id.is_in(
        user_ids or [_NONE]
    )
    rows = await Membership.select(
        Membership.id, Membership.user_id, _user().full_name.as_alias("full_name")
    ).where(wanted)
    return (
        {r["id"]: r["full_name"] for r in rows},
        {r["user_id"]: r["full_name"] for r in rows},
    )
