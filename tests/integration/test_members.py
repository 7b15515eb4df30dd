"""Membership rules: a reason for every change, and a tenant never left without an admin."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from litestar import Litestar

from opencdmo.db.urls import DatabaseUrls
from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.identity import service as identity
from opencdmo.scope import SYSTEM, Actor, RequestMeta, TenantContext
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, Browser


async def _org(admins: int, others: int = 0) -> tuple[TenantContext, list[dict[str, Any]]]:
    """A fresh tenant with ``admins`` tenant admins and ``others`` viewers."""
    slug = f"adm-{uuid.uuid4().hex[:8]}"
    ctx = await tenancy.create_tenant(slug, f"Org {slug}", "cdmo", SYSTEM, RequestMeta())
    people = []
    for n in range(admins + others):
        email = f"p{n}-{slug}@org.test"
        user = await identity.create_user(email, f"Person {n} {slug}", PASSWORD)
        role = "tenant_admin" if n < admins else "viewer"
        membership = await tenancy.add_member(ctx, user.id, [role])
        people.append({"email": email, "member_id": str(membership), "user_id": user.id})
    return ctx, people


async def _as(app: Litestar, email: str) -> Browser:
    client = Browser(app)
    assert (await client.login(email)).status_code == 303
    return client


async def _admins(owner: asyncpg.Connection, ctx: TenantContext) -> int:
    return int(
        await owner.fetchval(
            "SELECT count(*) FROM role_assignments r JOIN memberships m "
            "ON m.tenant_id = r.tenant_id AND m.id = r.membership_id "
            "WHERE r.tenant_id = $1 AND r.role = 'tenant_admin' AND m.is_active",
            ctx.tenant_id,
        )
    )


async def test_the_only_admin_cannot_drop_their_admin_role(
    app: Litestar, owner: asyncpg.Connection
) -> None:
    ctx, people = await _org(admins=1, others=1)
    client = await _as(app, people[0]["email"])
    url = f"/api/v1/t/{ctx.slug}/members/{people[0]['member_id']}/roles"
    response = await client.send("PUT", url, json={"roles": ["viewer"], "reason": "stepping down"})
    assert response.status_code == 409
    assert "only active tenant admin" in response.json()["error"]["message"]
    assert await _admins(owner, ctx) == 1
    # With a second admin first, stepping down is fine.
    grant = f"/api/v1/t/{ctx.slug}/members/{people[1]['member_id']}/roles"
    body = {"roles": ["tenant_admin"], "reason": "successor"}
    assert (await client.send("PUT", grant, json=body)).status_code == 200
    done = await client.send("PUT", url, json={"roles": ["viewer"], "reason": "stepping down"})
    assert done.status_code == 200
    assert await _admins(owner, ctx) == 1


async def test_the_last_admin_cannot_lose_the_role_or_the_membership_to_anyone(
    app: Litestar, owner: asyncpg.Connection
) -> None:
    ctx, people = await _org(admins=2)
    system = await tenancy.internal_context(ctx.tenant_id, SYSTEM, RequestMeta())
    assert system is not None
    first, second = (uuid.UUID(p["member_id"]) for p in people)
    assert await tenancy.set_member_active(system, first, False, "left the company")
    with pytest.raises(Conflict, match="only active tenant admin"):
        await tenancy.set_member_active(system, second, False, "left too")
    with pytest.raises(Conflict, match="only active tenant admin"):
        await tenancy.set_roles(system, second, ["viewer"], "demoted")
    # A deactivated admin does not count, and taking their role away loses nothing.
    assert await tenancy.set_roles(system, first, ["viewer"], "tidy up")
    assert await _admins(owner, ctx) == 1


def _scopes(ctx: TenantContext, people: list[dict[str, Any]]) -> list[TenantContext]:
    """Each admin's scope as the resolver mints it before either change commits (over HTTP,
    a request resolved after the other change committed is refused at the door instead)."""
    return [
        replace(ctx, actor=Actor(p["user_id"], p["email"], p["email"]), roles=("tenant_admin",))
        for p in people
    ]


async def at_the_same_moment(
    database: DatabaseUrls, ctx: TenantContext, *commands: Awaitable[Any]
) -> list[Any]:
    """Run the commands so that all of them are under way before any can commit: the tenant's
    row is held (as by a slow writer) until every command waits on a lock, then released."""
    holder = await asyncpg.connect(database.owner)
    watcher = await asyncpg.connect(database.owner)
    try:
        hold = holder.transaction()
        await hold.start()
        await holder.execute("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", ctx.tenant_id)
        running = asyncio.gather(*commands, return_exceptions=True)
        for _ in range(500):
            waiting = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting >= len(commands):
                break
            await asyncio.sleep(0.01)
        await hold.rollback()
        return list(await running)
    finally:
        await holder.close()
        await watcher.close()


async def test_two_admins_removing_each_other_at_once_leave_one(
    app: Litestar, database: DatabaseUrls, owner: asyncpg.Connection
) -> None:
    ctx, people = await _org(admins=2)
    first, second = _scopes(ctx, people)
    results = await at_the_same_moment(
        database,
        ctx,
        tenancy.set_roles(first, uuid.UUID(people[1]["member_id"]), ["viewer"], "only one"),
        tenancy.set_roles(second, uuid.UUID(people[0]["member_id"]), ["viewer"], "only one"),
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "bool"]
    assert await _admins(owner, ctx) == 1


async def test_two_admins_deactivating_each_other_at_once_leave_one(
    app: Litestar, database: DatabaseUrls, owner: asyncpg.Connection
) -> None:
    ctx, people = await _org(admins=2)
    first, second = _scopes(ctx, people)
    results = await at_the_same_moment(
        database,
        ctx,
        tenancy.set_member_active(first, uuid.UUID(people[1]["member_id"]), False, "only one"),
        tenancy.set_member_active(second, uuid.UUID(people[0]["member_id"]), False, "only one"),
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "bool"]
    assert await _admins(owner, ctx) == 1


@pytest.mark.parametrize("reason", [None, "", "   "])
async def test_changes_need_a_reason(
    app: Litestar, owner: asyncpg.Connection, reason: str | None
) -> None:
    ctx, people = await _org(admins=1, others=1)
    client = await _as(app, people[0]["email"])
    base = f"/api/v1/t/{ctx.slug}/members/{people[1]['member_id']}"
    extra = {} if reason is None else {"reason": reason}
    roles = await client.send("PUT", f"{base}/roles", json={"roles": ["qc_analyst"], **extra})
    status = await client.send("PUT", f"{base}/status", json={"active": False, **extra})
    for response in (roles, status):
        assert response.status_code == 422
        error = response.json()["error"]
        assert "Give a reason" in error["message"]
        assert error["details"] == {"field": "reason"}
    row = await owner.fetchrow(
        "SELECT m.is_active, array_agg(r.role) AS roles FROM memberships m "
        "JOIN role_assignments r ON r.tenant_id = m.tenant_id AND r.membership_id = m.id "
        "WHERE m.tenant_id = $1 AND m.id = $2 GROUP BY m.is_active",
        ctx.tenant_id,
        uuid.UUID(people[1]["member_id"]),
    )
    assert row["is_active"] is True
    assert row["roles"] == ["viewer"]


async def test_reason_is_trimmed_limited_and_audited(
    app: Litestar, owner: asyncpg.Connection
) -> None:
    ctx, people = await _org(admins=1, others=1)
    member = uuid.UUID(people[1]["member_id"])
    with pytest.raises(ValidationFailed, match="too long"):
        await tenancy.set_roles(ctx, member, ["qc_analyst"], "x" * 1001)
    assert await tenancy.set_member_active(ctx, member, False, "  on   leave ")
    reason = await owner.fetchval(
        "SELECT reason FROM audit_events WHERE tenant_id = $1 AND action = 'member.deactivated'",
        ctx.tenant_id,
    )
    assert reason == "on leave"
