"""Row-level security as the application role: another tenant's rows cannot be read or written."""

from __future__ import annotations

import asyncpg
import pytest

from opencdmo.db.urls import DatabaseUrls
from tests.conftest import World

SET = "SELECT set_config('app.tenant_id', $1, false)"


async def test_no_tenant_set_means_zero_rows(app_role: asyncpg.Connection, world: World) -> None:
    for table in ("memberships", "role_assignments", "audit_events", "sites", "audit_heads"):
        assert await app_role.fetchval(f"SELECT count(*) FROM {table}") == 0, table


async def test_select_sees_only_own_tenant(app_role: asyncpg.Connection, world: World) -> None:
    await app_role.execute(SET, str(world.alpha.tenant_id))
    tenants = {r["tenant_id"] for r in await app_role.fetch("SELECT tenant_id FROM memberships")}
    assert tenants == {world.alpha.tenant_id}
    by_id = await app_role.fetchval(
        "SELECT count(*) FROM memberships WHERE tenant_id = $1", world.beta.tenant_id
    )
    assert by_id == 0


async def test_insert_into_another_tenant_is_refused(
    app_role: asyncpg.Connection, world: World
) -> None:
    await app_role.execute(SET, str(world.alpha.tenant_id))
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await app_role.execute(
            "INSERT INTO sites (tenant_id, code, name, time_zone) VALUES ($1, 'X', 'x', 'UTC')",
            world.beta.tenant_id,
        )


async def test_update_and_delete_of_another_tenant_touch_nothing(
    app_role: asyncpg.Connection, owner: asyncpg.Connection, world: World
) -> None:
    await app_role.execute(SET, str(world.alpha.tenant_id))
    updated = await app_role.execute(
        "UPDATE sites SET name = 'hijacked' WHERE tenant_id = $1", world.beta.tenant_id
    )
    assert updated == "UPDATE 0"
    deleted = await app_role.execute(
        "DELETE FROM role_assignments WHERE tenant_id = $1", world.beta.tenant_id
    )
    assert deleted == "DELETE 0"
    assert await owner.fetchval("SELECT count(*) FROM sites WHERE name = 'hijacked'") == 0
    # Moving an own row into the other tenant is refused by WITH CHECK.
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await app_role.execute(
            "UPDATE memberships SET is_active = is_active, tenant_id = $1", world.beta.tenant_id
        )


async def test_one_connection_serving_a_then_b_leaks_nothing(
    database: DatabaseUrls, world: World
) -> None:
    pool = await asyncpg.create_pool(database.app, min_size=1, max_size=1)
    try:
        seen = []
        for tenant in (world.alpha, world.beta, None):
            async with pool.acquire() as connection, connection.transaction():
                if tenant is not None:
                    await connection.execute(
                        "SELECT set_config('app.tenant_id', $1, true)", str(tenant.tenant_id)
                    )
                rows = await connection.fetch("SELECT DISTINCT tenant_id FROM memberships")
                seen.append({r["tenant_id"] for r in rows})
        assert seen == [{world.alpha.tenant_id}, {world.beta.tenant_id}, set()]
    finally:
        await pool.close()
