"""API token lookups are reused only until something they depend on changes: the database
notifies every process on commit, and a lost listener turns the cache off."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from opencdmo.identity import service as identity
from opencdmo.identity.service import hash_token
from opencdmo.scope import SYSTEM, RequestMeta
from opencdmo.tenancy import service as tenancy
from opencdmo.webapp import authcache
from opencdmo.webapp.authcache import TokenCache
from tests.conftest import World, as_actor

MEMBERS = "/api/v1/t/alpha/members"


async def _notified(generation: int) -> None:
    """Wait for the database's notification (delivered after the change committed)."""
    for _ in range(500):
        if authcache.tokens.generation != generation:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no notification from the database")


async def _cached_token(world: World, browser: Any, persona: str = "admin") -> tuple[str, Any, Any]:
    ctx = as_actor(world.alpha, world[persona])
    token, row = await identity.create_token(ctx, world[persona].user_id, "cache test")
    client = await browser()
    headers = {"Authorization": f"Bearer {token}"}
    assert authcache.tokens.active
    # The first request looks the token up (and records its first use), the second one is
    # looked up again after that and kept.
    assert (await client.get(MEMBERS, headers=headers)).status_code == 200
    assert (await client.get(MEMBERS, headers=headers)).status_code == 200
    assert authcache.tokens.get(("alpha", hash_token(token))) is not None
    return token, row, (client, headers)


async def test_revocation_elsewhere_reaches_the_cache(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    token, row, (client, headers) = await _cached_token(world, browser)
    generation = authcache.tokens.generation
    # Revoked by another process (the CLI, another worker): only the database can tell.
    await owner.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = $1", row.id)
    await _notified(generation)
    assert authcache.tokens.get(("alpha", hash_token(token))) is None
    assert (await client.get(MEMBERS, headers=headers)).status_code == 401


async def test_disabling_the_user_or_removing_a_role_reaches_the_cache(
    world: World, browser: Any
) -> None:
    user = await identity.create_user(
        "cache-person@alpha.test", "Cache Person", "violet-harbour-lantern-42"
    )
    membership = await tenancy.add_member(world.alpha, user.id, ["tenant_admin"])
    ctx = as_actor(world.alpha, world["admin"])
    token, _ = await identity.create_token(ctx, user.id, "cache test")
    client = await browser()
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(2):
        assert (await client.get(MEMBERS, headers=headers)).status_code == 200

    generation = authcache.tokens.generation
    await tenancy.set_roles(ctx, membership, ["viewer"], "cache test")
    await _notified(generation)
    assert (await client.get(MEMBERS, headers=headers)).status_code == 403

    generation = authcache.tokens.generation
    await identity.set_user_active(user.id, False, actor=SYSTEM, meta=RequestMeta())
    await _notified(generation)
    assert (await client.get("/api/v1/t/alpha", headers=headers)).status_code == 401


async def test_unsafe_requests_drop_the_cache_and_failures_are_not_kept(
    world: World, browser: Any
) -> None:
    token, _, (client, headers) = await _cached_token(world, browser)
    created = await client.http.post("/api/v1/t/alpha/tokens", json={"name": "x"}, headers=headers)
    assert created.status_code == 201
    assert authcache.tokens.get(("alpha", hash_token(token))) is None
    wrong = {"Authorization": "Bearer ocd_00000000_nothing"}
    for _ in range(2):
        assert (await client.get(MEMBERS, headers=wrong)).status_code == 401
    assert authcache.tokens.get(("alpha", hash_token("ocd_00000000_nothing"))) is None


async def test_a_lost_listener_drops_the_cache_and_comes_back(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    token, _, (client, headers) = await _cached_token(world, browser)
    key = ("alpha", hash_token(token))
    pid = authcache.tokens.listener_pid
    assert pid is not None
    assert await owner.fetchval("SELECT pg_terminate_backend($1)", pid)
    for _ in range(1000):
        if authcache.tokens.listener_pid not in (None, pid):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the listener did not come back")
    # Whatever was cached while nobody listened is gone.
    assert authcache.tokens.get(key) is None
    for _ in range(2):
        assert (await client.get(MEMBERS, headers=headers)).status_code == 200
    assert authcache.tokens.get(key) is not None


def test_a_lookup_overlapping_an_invalidation_is_not_kept() -> None:
    cache = TokenCache()
    cache.ttl = 10
    cache._listening = True  # as when the listener is connected
    generation = cache.generation
    cache.invalidate()  # a change committed while the lookup ran
    cache.put(("alpha", "hash"), {"row": 1}, generation)
    assert cache.get(("alpha", "hash")) is None
    cache.put(("alpha", "hash"), {"row": 1}, cache.generation)
    assert cache.get(("alpha", "hash")) == {"row": 1}
    cache._listening = False
    assert cache.get(("alpha", "hash")) is None, "without a listener the cache is off"
    cache._listening, cache.ttl = True, 0
    assert cache.get(("alpha", "hash")) is None, "a zero lifetime turns the cache off"


@pytest.fixture(autouse=True)
def _cache_on(app: Any) -> None:
    """Every test here runs with the app started (it turns the cache on), whatever order the
    tests run in."""
    assert authcache.tokens.ttl > 0, "the test app runs with the cache on"


def test_only_requests_that_may_change_access_drop_the_cache() -> None:
    from types import SimpleNamespace

    from opencdmo.webapp.middleware import _may_change_access

    def scope(context: str | None) -> dict[str, object]:
        return {"route_handler": SimpleNamespace(opt={"context": context} if context else {})}

    assert not _may_change_access(scope("batches"))  # an entry, a phase command
    assert not _may_change_access(scope("recipes"))
    assert _may_change_access(scope("tenancy"))  # members, roles, sites
    assert _may_change_access(scope("identity"))  # tokens, passwords
    assert _may_change_access(scope(None))  # unrouted or unknown: drop it
    assert _may_change_access({})
