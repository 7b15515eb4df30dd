"""API tokens expire: a default and a maximum set by the tenant, chosen at creation, refused
after expiry (the lookup cache included), shown and audited."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from opencdmo.errors import ValidationFailed
from opencdmo.identity import service as identity
from opencdmo.identity.service import hash_token
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext
from opencdmo.tenancy import service as tenancy
from opencdmo.tenancy.manifest import ManifestError, discover
from opencdmo.tenancy.provision import apply_path
from opencdmo.tenancy.token_policy import TokenPolicy, set_token_policy, token_policy
from opencdmo.webapp import authcache, resolver
from tests.conftest import World, as_actor
from tests.integration.test_cli import cli_env, run

__all__ = ["cli_env"]  # the fixture, shared with the CLI tests


async def _tenant(world: World) -> tuple[TenantContext, TenantContext]:
    """A fresh tenant with the admin persona as a member: (system scope, admin's scope)."""
    ctx = await tenancy.create_tenant(
        f"tx-{uuid.uuid4().hex[:8]}", "Token Lab", "cdmo", SYSTEM, RequestMeta()
    )
    await tenancy.add_member(ctx, world["admin"].user_id, ["tenant_admin"])
    return ctx, as_actor(ctx, world["admin"])


async def _expire(owner: asyncpg.Connection, token_id: Any) -> None:
    """Time passes: the token's expiry is behind us (no notification: the app role cannot
    change an expiry, and time changes nothing in the database)."""
    await owner.execute(
        "UPDATE api_tokens SET created_at = now() - interval '2 days', "
        "expires_at = now() - interval '1 second' WHERE id = $1",
        token_id,
    )


async def test_tokens_get_the_tenants_default_and_stay_under_its_maximum(
    world: World, owner: asyncpg.Connection
) -> None:
    system, admin = await _tenant(world)
    assert await token_policy(system) == TokenPolicy(90, 365)
    assert await set_token_policy(system, TokenPolicy(30, 60))
    assert not await set_token_policy(system, TokenPolicy(30, 60))
    changed = await owner.fetch(
        "SELECT old_values, new_values FROM audit_events WHERE tenant_id = $1 "
        "AND action = 'tenant.token_policy_changed'",
        system.tenant_id,
    )
    assert len(changed) == 1
    _, default = await identity.create_token(admin, world["admin"].user_id, "default")
    assert default.expires_at - default.created_at == timedelta(days=30)
    _, longest = await identity.create_token(admin, world["admin"].user_id, "longest", 60)
    assert longest.expires_at - longest.created_at == timedelta(days=60)
    for days in (0, -1, 61, 10_000):
        with pytest.raises(ValidationFailed, match="1 to 60 days"):
            await identity.create_token(admin, world["admin"].user_id, "too long", days)
    count = await owner.fetchval(
        "SELECT count(*) FROM api_tokens WHERE tenant_id = $1", system.tenant_id
    )
    assert count == 2
    audited = await owner.fetchval(
        "SELECT new_values FROM audit_events WHERE action = 'token.created' AND entity_id = $1",
        str(longest.id),
    )
    assert longest.expires_at.isoformat() in audited


@pytest.mark.parametrize(
    "policy", [TokenPolicy(0, 10), TokenPolicy(20, 10), TokenPolicy(10, 4000), TokenPolicy(1, 0)]
)
async def test_impossible_policies_are_refused(world: World, policy: TokenPolicy) -> None:
    system, _ = await _tenant(world)
    with pytest.raises(ValidationFailed):
        await set_token_policy(system, policy)
    assert await token_policy(system) == TokenPolicy(90, 365)


async def test_an_expired_token_is_refused_and_the_use_audited(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    ctx = as_actor(world.alpha, world["admin"])
    token, row = await identity.create_token(ctx, world["admin"].user_id, "short-lived", 1)
    client = await browser()
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/t/alpha/members", headers=bearer)).status_code == 200
    await _expire(owner, row.id)
    refused = await client.get("/api/v1/t/alpha/members", headers=bearer)
    assert refused.status_code == 401
    assert "expired" in refused.json()["error"]["message"]
    assert "expired" in refused.headers["www-authenticate"]
    events = await owner.fetch(
        "SELECT actor_id, new_values::jsonb ->> 'token_id' AS token_id FROM audit_events "
        "WHERE tenant_id = $1 AND action = 'token.expired_used'",
        world.alpha.tenant_id,
    )
    assert (world["admin"].user_id, str(row.id)) in {(e["actor_id"], e["token_id"]) for e in events}


async def test_the_lookup_cache_does_not_serve_an_expired_token(
    world: World, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = as_actor(world.alpha, world["viewer"])
    token, row = await identity.create_token(ctx, world["viewer"].user_id, "cached", 1)
    client = await browser()
    bearer = {"Authorization": f"Bearer {token}"}
    assert authcache.tokens.active
    for _ in range(2):  # the first use records itself; the second lookup is kept
        assert (await client.get("/api/v1/t/alpha", headers=bearer)).status_code == 200
    key = ("alpha", hash_token(token))
    assert authcache.tokens.get(key) is not None
    # A day and a minute later (nothing in the database changes when a token expires, so
    # nothing tells the cache): the cached lookup is refused all the same.
    later = row.expires_at + timedelta(minutes=1)
    monkeypatch.setattr(resolver, "utcnow", lambda: later)
    refused = await client.get("/api/v1/t/alpha", headers=bearer)
    assert refused.status_code == 401
    assert "expired" in refused.json()["error"]["message"]
    assert authcache.tokens.get(key) is None


async def test_the_api_takes_days_within_the_limits(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    client = await browser("author")
    made = await client.send("POST", "/api/v1/t/alpha/tokens", json={"name": "week", "days": 7})
    assert made.status_code == 201
    details = made.json()["details"]
    listed = (await client.get("/api/v1/t/alpha/tokens")).json()
    mine = next(t for t in listed if t["id"] == details["id"])
    assert mine["expires_at"] == details["expires_at"]
    stored = await owner.fetchval(
        "SELECT expires_at - created_at FROM api_tokens WHERE id = $1", uuid.UUID(details["id"])
    )
    assert stored == timedelta(days=7)
    default = await client.send("POST", "/api/v1/t/alpha/tokens", json={"name": "default"})
    assert default.status_code == 201
    too_long = await client.send("POST", "/api/v1/t/alpha/tokens", json={"name": "x", "days": 400})
    assert too_long.status_code == 422
    assert "1 to 365 days" in too_long.json()["error"]["message"]
    for days in (0, 5000, 1.5):
        bad = await client.send("POST", "/api/v1/t/alpha/tokens", json={"name": "x", "days": days})
        assert bad.status_code == 422, days


async def test_the_page_offers_days_and_shows_expiry(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    client = await browser("operator")
    page = await client.get("/t/alpha/tokens")
    assert 'name="days"' in page.text and 'max="365"' in page.text and 'value="90"' in page.text
    made = await client.send("POST", "/t/alpha/tokens", data={"name": "ui week", "days": "7"})
    assert made.status_code == 200
    assert "data-new-token" in made.text
    # The form is read into the API's struct: the same limits and messages as the API.
    for days, message in (("abc", "whole number"), ("999", "1 to 365 days"), ("0", "at least 1")):
        refused = await client.send(
            "POST", "/t/alpha/tokens", data={"name": f"kept {days}", "days": days}
        )
        assert refused.status_code == 422
        assert message in refused.text
        assert f'value="kept {days}"' in refused.text, "what was typed stays in the form"
    _, row = await identity.create_token(
        as_actor(world.alpha, world["operator"]), world["operator"].user_id, "old one"
    )
    await _expire(owner, row.id)
    listing = (await client.get("/t/alpha/tokens")).text
    line = listing[listing.index("old one") :].split("</tr>")[0]
    assert "data-expires" in line
    assert re.search(r"<td data-status><span [^>]*>Expired</span></td>", line)
    assert "Revoke" not in line


async def test_the_cli_takes_days(
    world: World, cli_env: dict[str, str], owner: asyncpg.Connection
) -> None:
    email = world["approver"].email
    code, out, err = await run(
        cli_env, "tokens", "create", "--tenant", "alpha", "--email", email, "--days", "3"
    )
    assert code == 0, err
    assert "expires" in err
    stored = await owner.fetchval(
        "SELECT expires_at - created_at FROM api_tokens WHERE token_hash = $1",
        hash_token(out.strip()),
    )
    assert stored == timedelta(days=3)
    code, out, err = await run(
        cli_env, "tokens", "create", "--tenant", "alpha", "--email", email, "--days", "366"
    )
    assert code == 2
    assert "1 to 365 days" in err
    assert out == ""


MANIFEST = """
name: Delta Tokens
kind: sponsor
api_tokens: {default_days: 14, max_days: 30}
"""


async def test_the_manifest_sets_the_token_lifetimes(
    world: World, tmp_path: Path, owner: asyncpg.Connection
) -> None:
    slug = f"delta-{uuid.uuid4().hex[:6]}"
    (tmp_path / slug).mkdir()
    path = tmp_path / slug / "tenant.yaml"
    path.write_text(MANIFEST)
    lines: list[str] = []
    assert await apply_path(tmp_path, lines.append) == 2
    assert f"{slug}: API tokens valid for 14 days by default, 30 at most" in lines
    assert await apply_path(tmp_path, lines.append) == 0
    row = await owner.fetchrow(
        "SELECT id, token_default_days, token_max_days FROM tenants WHERE slug = $1", slug
    )
    assert (row["token_default_days"], row["token_max_days"]) == (14, 30)
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM audit_events WHERE tenant_id = $1 "
            "AND action = 'tenant.token_policy_changed'",
            row["id"],
        )
        == 1
    )
    path.write_text(MANIFEST.replace("{default_days: 14, max_days: 30}", "{max_days: 7}"))
    assert discover(path).pop().token_policy == TokenPolicy(7, 7)


@pytest.mark.parametrize(
    ("tokens", "field"),
    [
        ("{default_days: 40, max_days: 30}", "api_tokens.default_days"),
        ("{max_days: 0}", "api_tokens.max_days"),
        ("{max_days: 5000}", "api_tokens.max_days"),
        ("{default_days: seven}", "api_tokens.default_days"),
        ("{forever: true}", "api_tokens"),
    ],
)
def test_bad_token_lifetimes_in_a_manifest_name_the_field(
    tmp_path: Path, tokens: str, field: str
) -> None:
    (tmp_path / "epsilon").mkdir()
    path = tmp_path / "epsilon" / "tenant.yaml"
    path.write_text(f"name: Epsilon\nkind: cdmo\napi_tokens: {tokens}\n")
    with pytest.raises(ManifestError) as failed:
        discover(path)
    assert failed.value.details["field"] == field
