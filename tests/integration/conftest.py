"""Fixtures shared by the recipe tests: a fresh CDMO tenant with an author, an approver and
an operator, and a unit operation in its library."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from opencdmo.db.urls import DatabaseUrls
from opencdmo.hub import library
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext
from opencdmo.tenancy import service as tenancy
from tests.conftest import World, as_actor


async def installed(owner: asyncpg.Connection, ctx: TenantContext, slug: str, version: str) -> str:
    """The library id of a platform HUB item in the tenant's library (installed if missing)."""
    item = await owner.fetchval(
        "SELECT i.id FROM hub_items i JOIN tenants t ON t.id = i.publisher_id "
        "WHERE i.slug = $1 AND t.slug = 'opencdmo-hub'",
        slug,
    )
    entries = [e for e in await library.list_library(ctx) if e.slug == slug]
    if not entries:
        await library.install(ctx, item, version)
        entries = [e for e in await library.list_library(ctx) if e.slug == slug]
    return str(entries[0].id)


async def activation(owner: asyncpg.Connection, ctx: TenantContext) -> str:
    return await installed(owner, ctx, "t-cell-activation", "1.1.0")


async def viability(owner: asyncpg.Connection, ctx: TenantContext) -> str:
    """A QC method to release against (cell count and viability)."""
    return await installed(owner, ctx, "cell-count-viability", "1.1.0")


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
    return {
        **fresh,
        "uo": await activation(owner, fresh["ctx"]),
        "method": await viability(owner, fresh["ctx"]),
    }


def reviewable(content: dict[str, Any], method_id: str) -> dict[str, Any]:
    """The content with what review needs: a specification and a release specification."""
    return {
        **content,
        "specification": {"modality": "car-t", "batch_size": {"quantity": 1, "unit": "{dose}"}},
        "release_specifications": [
            {
                "attribute": "viability",
                "acceptance_criterion": "Viability >= 70 %",
                "limits": {"low": 70},
                "unit": "%",
                "library_item_id": method_id,
            }
        ],
    }


@pytest.fixture(scope="session")
async def janitor(database: DatabaseUrls) -> AsyncIterator[asyncpg.Connection]:
    """One owner connection for the whole run, for clean-up between tests."""
    connection = await asyncpg.connect(database.owner)
    yield connection
    await connection.close()


@pytest.fixture(autouse=True)
async def _forget_failed_passwords(janitor: asyncpg.Connection) -> AsyncIterator[None]:
    """The people of the shared world sign in and sign in every test: the failed sign-ins
    and password re-entries one test makes (a refusal it checks) are forgotten after it, so
    that they never throttle another test's signature. A test of the throttle makes and
    checks its own failures within itself."""
    yield
    await janitor.execute("DELETE FROM login_failures")
