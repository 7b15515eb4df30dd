"""The tenancy data access: typed rows as the services read them, and the database's clock on
the rows it writes."""

from __future__ import annotations

import uuid

import pytest
from litestar import Litestar

from opencdmo.db.tx import tenant_id_transaction
from opencdmo.errors import Conflict
from opencdmo.identity import service as identity
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext
from opencdmo.tenancy import service as tenancy
from opencdmo.tenancy.queries import members, tenants
from opencdmo.tenancy.queries.members import MemberRow
from opencdmo.tenancy.tables import Site
from tests.conftest import PASSWORD


async def _org() -> TenantContext:
    slug = f"tq-{uuid.uuid4().hex[:8]}"
    return await tenancy.create_tenant(slug, f"Org {slug}", "cdmo", SYSTEM, RequestMeta())


async def _person(ctx: TenantContext, name: str, roles: list[str]) -> tuple[uuid.UUID, uuid.UUID]:
    user = await identity.create_user(f"{name}-{ctx.slug}@org.test", f"{name} {ctx.slug}", PASSWORD)
    return user.id, await tenancy.add_member(ctx, user.id, roles)


class _RollBack(Exception):
    pass


async def test_members_are_rows_with_their_roles_sorted(app: Litestar) -> None:
    ctx = await _org()
    many_user, many = await _person(ctx, "b-many", ["viewer", "qc_analyst", "tenant_admin"])
    none_user, none = await _person(ctx, "a-none", [])
    listed = await tenancy.list_members(ctx)
    assert [m.id for m in listed] == [none, many]  # by name
    assert listed[0] == MemberRow(
        id=none,
        user_id=none_user,
        is_active=True,
        created_at=listed[0].created_at,
        email=f"a-none-{ctx.slug}@org.test",
        full_name=f"a-none {ctx.slug}",
        user_active=True,
        roles=(),
    )
    assert listed[1].user_id == many_user
    assert listed[1].roles == ("qc_analyst", "tenant_admin", "viewer")
    assert await tenancy.get_member(ctx, many) == listed[1]


async def test_an_admin_whose_account_is_disabled_does_not_count(app: Litestar) -> None:
    """The last admin is the last active admin of an active account: with the other admin's
    account disabled, the remaining one keeps the role."""
    ctx = await _org()
    _, first = await _person(ctx, "first", ["tenant_admin"])
    second_user, _ = await _person(ctx, "second", ["tenant_admin"])
    await identity.set_user_active(second_user, False, actor=SYSTEM, meta=RequestMeta())
    with pytest.raises(Conflict, match="only active tenant admin"):
        await tenancy.set_roles(ctx, first, ["viewer"], "stepping down")
    await identity.set_user_active(second_user, True, actor=SYSTEM, meta=RequestMeta())
    assert await tenancy.set_roles(ctx, first, ["viewer"], "stepping down")


async def _write_and_roll_back(ctx: TenantContext, user_id: uuid.UUID) -> None:
    """Write a site and a membership, then roll back: raises with the transaction's ``now()``
    and the two rows' ``created_at``."""
    async with tenant_id_transaction(ctx.tenant_id):
        now = (await Site.raw("SELECT now() AS now"))[0]["now"]
        await tenants.insert_site(ctx.tenant_id, "CLK", "Clock site", "UTC")
        membership_id = await members.insert_membership(ctx.tenant_id, user_id)
        site = await tenants.site_by_code("CLK")
        member = await members.member(membership_id) if membership_id else None
        assert site is not None
        assert member is not None
        raise _RollBack(now, site.created_at, member.created_at)


async def test_rows_take_their_times_from_the_database_clock(app: Litestar) -> None:
    """``created_at`` is the database's ``now()`` (the start of the transaction), as the
    migrations' defaults say, not the app server's clock."""
    ctx = await _org()
    user = await identity.create_user(f"clock-{ctx.slug}@org.test", "Clock Person", PASSWORD)
    with pytest.raises(_RollBack) as raised:
        await _write_and_roll_back(ctx, user.id)
    now, site_created, member_created = raised.value.args
    assert (site_created, member_created) == (now, now)
    assert await tenancy.membership_of(ctx, user.id) is None
