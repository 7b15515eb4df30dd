"""Fixtures shared by the recipe tests: a fresh CDMO tenant with an author, an approver and
an operator, and a unit operation in its library."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from opencdmo.hub import library
from opencdmo.tenancy import service as tenancy
from opencdmo.tenancy.context import SYSTEM, RequestMeta, TenantContext
from tests.conftest import World, as_actor


async def activation(owner: asyncpg.Connection, ctx: TenantContext) -> str:
    item = await owner.fetchval(
        "SELECT i.id FROM hub_items i JOIN tenants t ON t.id = i.publisher_id "
        "WHERE i.slug = 't-cell-activation' AND t.slug = 'opencdmo-hub'"
    )
    entries = [e for e in await library.list_library(ctx) if e["slug"] == "t-cell-activation"]
    if not entries:
        await library.install(ctx, item, "1.1.0")
        entries = [e for e in await library.list_library(ctx) if e["slug"] == "t-cell-activation"]
    return str(entries[0]["id"])


async def new_lab(world: World) -> dict[str, Any]:
    """A fresh CDMO tenant with an author, an approver and an operator, and an empty library."""
    slug = f"rx-{uuid.uuid4().hex[:8]}"
    ctx = await tenancy.create_tenant(slug, "Recipe Lab", "cdmo", SYSTEM, RequestMeta())
    for key, role in (
        ("author", "process_engineer"),
        ("approver", "qa_approver"),
        ("operator", "production_operator"),
    ):
        await tenancy.add_member(ctx, world[key].user_id, [role])
    return {
        "ctx": ctx,
        "author": as_actor(ctx, world["author"]),
        "approver": as_actor(ctx, world["approver"]),
    }


@pytest.fixture
async def lab(synced: Any, world: World, owner: asyncpg.Connection) -> dict[str, Any]:
    fresh = await new_lab(world)
    return {**fresh, "uo": await activation(owner, fresh["ctx"])}
