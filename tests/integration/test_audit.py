"""The audit trail: completeness per action, append-only, the chain under concurrency.

Tampering with the chain and its checkpoints: test_audit_chain.py."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest

from opencdmo.audit import service as audit
from opencdmo.audit.verify import verify_security_chain, verify_tenant
from opencdmo.db.tx import tenant_transaction, unit_of_work
from opencdmo.identity import service as identity
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, World, as_actor, recorded


async def _events(
    owner: asyncpg.Connection, tenant: TenantContext, action: str
) -> list[dict[str, Any]]:
    rows = await owner.fetch(
        "SELECT * FROM audit_events WHERE tenant_id = $1 AND action = $2 ORDER BY seq",
        tenant.tenant_id,
        action,
    )
    return [dict(r) for r in rows]


async def _scratch_tenant(events: int = 5) -> TenantContext:
    slug = f"t-{uuid.uuid4().hex[:10]}"
    ctx = await tenancy.create_tenant(slug, "Scratch", "cdmo", SYSTEM, RequestMeta())
    for i in range(events - 1):
        async with unit_of_work(ctx):
            await audit.record(ctx, "test.event", "thing", i, new={"n": i, "x": 1.5})
    return ctx


# --- completeness -------------------------------------------------------------------------


async def test_member_and_role_changes_are_audited_with_old_and_new(
    world: World, owner: asyncpg.Connection
) -> None:
    ctx = as_actor(world.alpha, world["admin"])
    user = await identity.create_user(
        f"aud-{uuid.uuid4().hex[:6]}@alpha.test", "Audit Subject", PASSWORD
    )
    membership = await tenancy.add_member(ctx, user.id, ["viewer"])
    await tenancy.set_roles(ctx, membership, ["viewer", "qc_analyst"], "covering QC")
    await tenancy.set_member_active(ctx, membership, False, "left the company")
    added = [
        e
        for e in await _events(owner, world.alpha, "member.added")
        if e["entity_id"] == str(membership)
    ]
    changed = [
        e
        for e in await _events(owner, world.alpha, "member.roles_changed")
        if e["entity_id"] == str(membership)
    ]
    deactivated = [
        e
        for e in await _events(owner, world.alpha, "member.deactivated")
        if e["entity_id"] == str(membership)
    ]
    assert len(added) == 1
    assert added[0]["actor_id"] == world["admin"].user_id
    assert [json.loads(e["new_values"])["roles"] for e in changed] == [
        ["viewer"],
        ["qc_analyst", "viewer"],
    ]
    assert json.loads(changed[1]["old_values"]) == {"roles": ["viewer"]}
    assert changed[1]["reason"] == "covering QC"
    assert deactivated[0]["reason"] == "left the company"
    assert json.loads(deactivated[0]["old_values"]) == {"is_active": True}


async def test_login_logout_and_denials_reach_the_tenant_trail(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    client = await browser("bare")
    before = len(await _events(owner, world.alpha, "user.login"))
    await client.login(world["bare"].email)
    # Signing in is the platform's; the tenant records it when the session enters it, once.
    assert len(await _events(owner, world.alpha, "user.login")) == before
    assert (await client.get("/t/alpha/audit")).status_code == 403
    assert (await client.get("/t/alpha/members")).status_code == 403
    logins = await _events(owner, world.alpha, "user.login")
    assert len(logins) == before + 1
    assert logins[-1]["actor_id"] == world["bare"].user_id
    denied = await _events(owner, world.alpha, "access.denied")
    assert denied[-1]["actor_id"] == world["bare"].user_id
    assert json.loads(denied[-1]["new_values"])["path"] == "/t/alpha/members"
    await client.send("POST", "/logout", data={"_csrf_token": client.csrf})
    assert (await _events(owner, world.alpha, "user.logout"))[-1]["actor_id"] == world[
        "bare"
    ].user_id


async def test_unknown_object_ids_are_security_events(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    client = await browser("admin")
    missing = uuid.uuid4()
    assert (await client.get(f"/api/v1/t/alpha/members/{missing}")).status_code == 404
    events = await _events(owner, world.alpha, "access.not_found")
    assert any(str(missing) in json.loads(e["new_values"])["path"] for e in events)


async def test_non_member_attempts_are_kept_in_the_platform_chain(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    client = await browser("outsider")
    assert (await client.get("/t/alpha/audit")).status_code == 404
    rows = await owner.fetch(
        "SELECT detail FROM security_events WHERE action = 'access.tenant_not_found' "
        "AND actor_id = $1",
        world["outsider"].user_id,
    )
    assert any(json.loads(r["detail"])["path"] == "/t/alpha/audit" for r in rows)


async def test_security_events_survive_a_rollback(world: World, owner: asyncpg.Connection) -> None:
    ctx = as_actor(world.alpha, world["admin"])
    marker = uuid.uuid4().hex

    class Boom(Exception):
        pass

    with pytest.raises(Boom):  # noqa: PT012 - the rollback of this whole block is the point
        async with tenant_transaction(ctx):
            await audit.record(ctx, "test.rolled_back", "thing", marker)
            await audit.record_security(
                "test.security",
                actor=ctx.actor,
                meta=ctx.meta,
                tenant_id=ctx.tenant_id,
                detail={"path": marker},
            )
            raise Boom
    await audit.drain()
    assert await _events(owner, world.alpha, "test.rolled_back") == []
    kept = await _events(owner, world.alpha, "test.security")
    assert [e["entity_id"] for e in kept] == [marker]
    assert (await verify_tenant(world.alpha.tenant_id, "alpha")).intact


# --- append-only ----------------------------------------------------------------------------


async def test_app_role_cannot_change_or_remove_events(
    app_role: asyncpg.Connection, world: World
) -> None:
    await app_role.execute(
        "SELECT set_config('app.tenant_id', $1, false)", str(world.alpha.tenant_id)
    )
    for statement in (
        "UPDATE audit_events SET actor_name = 'x'",
        "UPDATE audit_events SET seq = seq + 1000",  # sealing sets seq once, from NULL
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "UPDATE signatures SET meaning = 'x'",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app_role.execute(statement)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor_name = 'rewritten'",
        "UPDATE audit_events SET seq = seq, hash = repeat('a', 64)",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "UPDATE security_events SET action = 'x'",
        "DELETE FROM security_events",
        "TRUNCATE signatures CASCADE",  # batches and deviations refer to signatures
    ],
)
async def test_trigger_refuses_changes_even_for_the_owner(
    owner: asyncpg.Connection, world: World, statement: str
) -> None:
    # A row trigger fires only for rows: each table has one whatever ran before.
    await recorded(world.alpha, "test.row", "t", "1")
    await audit.record_security("test.security", actor=SYSTEM, meta=RequestMeta())
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await owner.execute(statement)


# --- the chain ------------------------------------------------------------------------------


async def test_chain_of_an_untouched_tenant_verifies(world: World) -> None:
    report = await verify_tenant(world.alpha.tenant_id, "alpha")
    assert report.intact
    assert report.checked > 10
    assert (await verify_security_chain()).intact


async def test_sequence_stays_contiguous_with_many_concurrent_writers(
    owner: asyncpg.Connection,
) -> None:
    ctx = await _scratch_tenant(1)

    async def writer(n: int) -> None:
        for i in range(4):
            async with tenant_transaction(ctx):
                await audit.record(ctx, "test.concurrent", "writer", n, new={"i": i})
                await asyncio.sleep(0)

    await asyncio.gather(*(writer(n) for n in range(24)))
    seqs = [
        r["seq"]
        for r in await owner.fetch(
            "SELECT seq FROM audit_events WHERE tenant_id = $1 ORDER BY seq", ctx.tenant_id
        )
    ]
    assert seqs == list(range(1, 24 * 4 + 2)), "every event sealed before its command returned"
    report = await verify_tenant(ctx.tenant_id, ctx.slug)
    assert report.intact
    assert report.checked == 24 * 4 + 1


async def test_every_identity_and_tenancy_action_is_audited(
    world: World, owner: asyncpg.Connection
) -> None:
    """One event per action, each with who and what, old and new where something changed."""
    from opencdmo.identity import service as identity

    admin = as_actor(world.alpha, world["admin"])
    user = await identity.create_user(
        f"all-{uuid.uuid4().hex[:6]}@alpha.test", "All Actions", PASSWORD
    )
    membership = await tenancy.add_member(admin, user.id, ["viewer"])
    _, token = await identity.create_token(admin, user.id, "audited token")
    await identity.revoke_token(admin, token.id, only_user=None)
    await tenancy.set_member_active(admin, membership, False, "on leave")
    await tenancy.set_member_active(admin, membership, True, "back from leave")
    await identity.change_password(
        world_settings(), user.id, None, PASSWORD, "another-long-passphrase-9", RequestMeta()
    )
    await identity.set_user_active(user.id, False, actor=admin.actor, meta=RequestMeta())
    expected = {
        "member.added": str(membership),
        "member.deactivated": str(membership),
        "member.reactivated": str(membership),
        "token.created": str(token.id),
        "token.revoked": str(token.id),
        "user.disabled": str(user.id),
    }
    for action, entity in expected.items():
        rows = await owner.fetch(
            "SELECT actor_name, old_values, new_values FROM audit_events "
            "WHERE tenant_id = $1 AND action = $2 AND entity_id = $3",
            world.alpha.tenant_id,
            action,
            entity,
        )
        assert len(rows) == 1, action
        assert rows[0]["actor_name"], action
        assert rows[0]["new_values"] is not None, action
    disabled = await owner.fetchrow(
        "SELECT old_values, new_values FROM audit_events WHERE action = 'user.disabled' "
        "AND entity_id = $1",
        str(user.id),
    )
    assert json.loads(disabled["old_values"]) == {"is_active": True}
    assert json.loads(disabled["new_values"]) == {"is_active": False}
    # Account events belong to the platform's chain, not to the tenants the person is in.
    for action in ("user.created", "user.password_changed"):
        count = await owner.fetchval(
            "SELECT count(*) FROM security_events WHERE action = $1 AND detail->>'email' = $2",
            action,
            user.email,
        )
        assert count == 1, action


def world_settings() -> Any:
    from opencdmo.settings import Settings

    return Settings(argon2_time_cost=1, argon2_memory_kib=1024)
