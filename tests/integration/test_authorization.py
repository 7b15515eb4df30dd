"""Authorization in the services: every command checks the permission of the actor it is
given, whoever calls it; the system actor has only the permissions listed for it; roles can
be granted at one site."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from opencdmo.access.service import can
from opencdmo.errors import Forbidden, NotFound, ValidationFailed
from opencdmo.hub import library
from opencdmo.recipes import service as recipes
from opencdmo.scope import SYSTEM
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from opencdmo.tenancy import site_roles
from tests.conftest import PASSWORD, World, member_as
from tests.integration.conftest import new_lab


async def test_a_member_without_the_permission_is_refused_by_the_service(
    lab: dict[str, Any], world: World, settings: Settings, owner: asyncpg.Connection
) -> None:
    """Called directly (as the CLI or a worker would), not through a route guard."""
    operator = await member_as(lab["ctx"], world["operator"])
    with pytest.raises(Forbidden, match="may not do this"):
        await recipes.create(operator, "Not mine to write")
    recipe = await recipes.create(lab["author"], "Guarded")
    with pytest.raises(Forbidden):
        await recipes.save(operator, recipe, {"unit_procedures": []}, 1)
    with pytest.raises(Forbidden):
        await recipes.submit(settings, operator, recipe, PASSWORD, "x")
    item = await owner.fetchval("SELECT id FROM hub_items WHERE slug = 'mycoplasma-nat'")
    with pytest.raises(Forbidden):
        await library.install(operator, item)
    assert await recipes.list_recipes(operator)  # reading is allowed to the operator


async def test_the_system_actor_has_only_its_listed_permissions(lab: dict[str, Any]) -> None:
    ctx = lab["ctx"]
    assert ctx.actor is SYSTEM
    assert await can(ctx, "recipes", "edit")
    assert not await can(ctx, "recipes", "approve")
    assert not await can(ctx, "batches", "release")
    with pytest.raises(Forbidden, match="The system"):
        await recipes.make_effective(Settings(), ctx, uuid.uuid4(), PASSWORD, "x")


async def _membership(ctx: Any, user_id: uuid.UUID) -> uuid.UUID:
    found = await tenancy.membership_of(ctx, user_id)
    assert found is not None
    return found


async def test_a_role_granted_at_one_site_applies_there_only(
    synced: Any, world: World, owner: asyncpg.Connection
) -> None:
    lab = await new_lab(world)
    ctx = lab["ctx"]
    await tenancy.upsert_site(ctx, "S1", "First suite", "Europe/Berlin")
    await tenancy.upsert_site(ctx, "S2", "Second suite", "Europe/Berlin")
    sites = {s.code: s.id for s in await tenancy.list_sites(ctx)}
    operator = world["operator"]
    membership = await _membership(ctx, operator.user_id)
    admin = await _admin(ctx, world)
    with pytest.raises(ValidationFailed, match="reason"):
        await site_roles.grant(admin, membership, "S1", "production_supervisor", " ")
    with pytest.raises(ValidationFailed, match="no site"):
        await site_roles.grant(admin, membership, "S9", "production_supervisor", "cover")
    assert await site_roles.grant(admin, membership, "S1", "production_supervisor", "cover")
    assert not await site_roles.grant(admin, membership, "S1", "production_supervisor", "again")
    as_operator = await member_as(ctx, operator)
    assert await can(as_operator, "batches", "create", site_id=uuid.UUID(str(sites["S1"])))
    assert not await can(as_operator, "batches", "create", site_id=uuid.UUID(str(sites["S2"])))
    assert not await can(as_operator, "batches", "create")
    # A tenant-wide role applies at every site.
    assert await can(as_operator, "batches", "execute", site_id=uuid.UUID(str(sites["S2"])))
    assert [(r.site_code, r.role) for r in await site_roles.site_roles(admin, membership)] == [
        ("S1", "production_supervisor")
    ]
    assert await site_roles.revoke(admin, membership, "S1", "production_supervisor", "done")
    refreshed = await member_as(ctx, operator)
    assert not await can(refreshed, "batches", "create", site_id=uuid.UUID(str(sites["S1"])))
    actions = [
        (r["action"], r["reason"])
        for r in await owner.fetch(
            "SELECT action, reason FROM audit_events WHERE tenant_id = $1 AND entity_id = $2 "
            "AND action LIKE 'member.site_role%' ORDER BY seq",
            ctx.tenant_id,
            str(membership),
        )
    ]
    assert actions == [
        ("member.site_role_granted", "cover"),
        ("member.site_role_revoked", "done"),
    ]
    # Another tenant's member is not found.
    outsider = await _membership(world.beta, world["outsider"].user_id)
    with pytest.raises(NotFound):
        await site_roles.grant(admin, outsider, "S1", "viewer", "x")


async def _admin(ctx: Any, world: World) -> Any:
    await tenancy.add_member(ctx, world["admin"].user_id, ["tenant_admin"])
    return await member_as(ctx, world["admin"])


async def test_site_roles_through_the_api_at_the_same_moment(
    synced: Any, world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    """Twenty identical grants at once: one change, one audit event, no error."""
    ctx = world.alpha
    membership = await _membership(ctx, world["operator"].user_id)
    admin = await browser("admin")
    url = f"/api/v1/t/alpha/members/{membership}/site-roles"
    body = {"site": "A1", "role": "materials_handler", "reason": "stores cover"}
    answers = await asyncio.gather(*(admin.send("POST", url, json=body) for _ in range(20)))
    assert {a.status_code for a in answers} == {200}, {a.text for a in answers}
    assert sorted(a.json()["changed"] for a in answers) == [False] * 19 + [True]
    granted = await owner.fetchval(
        "SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND entity_id = $2 "
        "AND action = 'member.site_role_granted'",
        ctx.tenant_id,
        str(membership),
    )
    assert granted == 1
    listed = (await admin.get(url)).json()
    assert {"site": "A1", "role": "materials_handler"} in listed
    operator = await browser("operator")
    refused = await operator.send("POST", url, json=body)
    assert refused.status_code == 403
    bad = await admin.send("POST", url, json={**body, "role": "emperor"})
    assert bad.status_code == 422 and "is not a role" in bad.json()["error"]["message"]
    revoked = await admin.send("POST", url + "/revoke", json=body)
    assert revoked.json()["changed"] is True


async def test_membership_commands_check_the_permission_in_the_service(
    lab: dict[str, Any], world: World
) -> None:
    from opencdmo.tenancy import invitations

    author = await member_as(lab["ctx"], world["author"])
    membership = await _membership(lab["ctx"], world["operator"].user_id)
    with pytest.raises(Forbidden):
        await invitations.invite(author, "someone@else.test", ["viewer"], hours=24)
    with pytest.raises(Forbidden):
        await tenancy.set_roles(author, membership, ["viewer"], "promote myself")
    with pytest.raises(Forbidden):
        await tenancy.set_member_active(author, membership, False, "remove a colleague")
    with pytest.raises(Forbidden):
        await tenancy.upsert_site(author, "X1", "A site of my own", "UTC")
