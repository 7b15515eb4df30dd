"""Sign-in, sessions, CSRF, throttling and API tokens, through the real app."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from opencdmo.identity import service as identity
from opencdmo.identity.sessions import token_hash
from opencdmo.scope import SYSTEM, RequestMeta
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, World, as_actor


async def _new_user(world: World, roles: list[str] | None = None) -> str:
    email = f"u-{uuid.uuid4().hex[:8]}@alpha.test"
    user = await identity.create_user(email, "Temp User", PASSWORD)
    await tenancy.add_member(world.alpha, user.id, roles or ["viewer"])
    return email


def _cookie_header(response: Any, name: str) -> str:
    return next(h for h in response.headers.get_list("set-cookie") if h.startswith(name + "="))


async def test_login_sets_a_hardened_session_cookie(world: World, browser: Any) -> None:
    client = await browser()
    response = await client.login(world["viewer"].email)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = _cookie_header(response, "opencdmo_session").lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "secure" in cookie


async def test_login_issues_a_new_session_id_each_time(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    client = await browser("viewer")
    first = client.http.cookies.get("opencdmo_session")
    await client.login(world["viewer"].email)
    second = client.http.cookies.get("opencdmo_session")
    assert first
    assert second
    assert first != second
    stored = await owner.fetchval("SELECT count(*) FROM sessions WHERE token_hash = $1", second)
    assert stored == 0, "the cookie value itself must never be stored"
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM sessions WHERE token_hash = $1", token_hash(second)
        )
        == 1
    )


async def test_wrong_password_is_refused_and_recorded(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    email = await _new_user(world)
    client = await browser(address="10.0.0.11")
    response = await client.login(email, "not-the-right-password")
    assert response.status_code == 401
    assert "Email or password is incorrect" in response.text
    assert "opencdmo_session" not in response.headers.get("set-cookie", "")
    events = await owner.fetch(
        "SELECT action, detail FROM security_events WHERE action = 'login.failed' "
        "AND detail->>'email' = $1",
        email,
    )
    assert len(events) == 1


async def test_logout_invalidates_the_session(browser: Any) -> None:
    client = await browser("viewer")
    assert (await client.get("/t/alpha/")).status_code == 200
    stolen = client.http.cookies.get("opencdmo_session")
    response = await client.send("POST", "/logout", data={"_csrf_token": client.csrf})
    assert response.status_code == 303
    replay = await browser()
    replay.http.cookies.set("opencdmo_session", stolen)
    assert (await replay.get("/t/alpha/")).status_code == 303


async def test_idle_timeout_and_absolute_lifetime(browser: Any, owner: asyncpg.Connection) -> None:
    idle = await browser("viewer")
    await owner.execute(
        "UPDATE sessions SET last_seen_at = now() - interval '31 minutes' WHERE token_hash = $1",
        token_hash(idle.http.cookies.get("opencdmo_session")),
    )
    assert (await idle.get("/t/alpha/")).status_code == 303
    old = await browser("viewer")
    await owner.execute(
        "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE token_hash = $1",
        token_hash(old.http.cookies.get("opencdmo_session")),
    )
    assert (await old.get("/t/alpha/")).status_code == 303
    reasons = await owner.fetch(
        "SELECT end_reason FROM sessions WHERE token_hash = ANY($1::text[])",
        [token_hash(c.http.cookies.get("opencdmo_session")) for c in (idle, old)],
    )
    assert sorted(r["end_reason"] for r in reasons) == ["idle timeout", "lifetime reached"]


async def test_disabling_a_user_ends_all_their_sessions(world: World, browser: Any) -> None:
    email = await _new_user(world)
    first, second = await browser(), await browser()
    for client in (first, second):
        assert (await client.login(email)).status_code == 303
    user = await identity.find_user(email)
    assert user is not None
    await identity.set_user_active(user.id, False, actor=SYSTEM, meta=RequestMeta())
    for client in (first, second):
        assert (await client.get("/t/alpha/")).status_code == 303
    assert (await (await browser()).login(email)).status_code == 401


async def test_change_password_ends_other_sessions(world: World, browser: Any) -> None:
    email = await _new_user(world)
    here, elsewhere = await browser(), await browser()
    await here.login(email)
    await elsewhere.login(email)
    new = "a-new-long-passphrase-77"
    response = await here.send(
        "POST",
        "/account/password",
        data={
            "_csrf_token": here.csrf,
            "current_password": PASSWORD,
            "new_password": new,
            "confirm_password": new,
        },
    )
    assert response.status_code == 200
    assert "Password changed" in response.text
    assert (await here.get("/account")).status_code == 200
    assert (await elsewhere.get("/account")).status_code == 303
    assert (await (await browser()).login(email, new)).status_code == 303


async def test_change_password_refuses_a_common_password(world: World, browser: Any) -> None:
    email = await _new_user(world)
    client = await browser()
    await client.login(email)
    response = await client.send(
        "POST",
        "/account/password",
        data={
            "_csrf_token": client.csrf,
            "current_password": PASSWORD,
            "new_password": "password1234",
            "confirm_password": "password1234",
        },
    )
    assert response.status_code == 422
    assert "commonly used" in response.text


# --- CSRF --------------------------------------------------------------------------------


async def test_unsafe_requests_need_the_csrf_token(browser: Any) -> None:
    client = await browser("admin")
    no_token = await client.http.post("/t/alpha/tokens", data={"name": "x"})
    assert no_token.status_code == 403
    assert "CSRF" in no_token.text
    wrong = await client.http.post("/t/alpha/tokens", data={"name": "x", "_csrf_token": "f" * 128})
    assert wrong.status_code == 403
    api = await client.http.post("/api/v1/t/alpha/tokens", json={"name": "x"})
    assert api.status_code == 403
    htmx = await client.http.post(
        "/t/alpha/tokens",
        data={"name": "x"},
        headers={"HX-Request": "true", "X-CSRFToken": client.csrf},
    )
    assert htmx.status_code == 200


async def test_login_form_itself_is_csrf_protected(world: World, browser: Any) -> None:
    client = await browser()
    response = await client.http.post(
        "/login", data={"email": world["viewer"].email, "password": PASSWORD}
    )
    assert response.status_code == 403


# --- API tokens ---------------------------------------------------------------------------


async def test_token_is_stored_hashed_and_works_as_bearer(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    ctx = as_actor(world.alpha, world["admin"])
    token, row = await identity.create_token(ctx, world["admin"].user_id, "integration")
    assert token.startswith("ocd_")
    assert await owner.fetchval("SELECT count(*) FROM api_tokens WHERE token_hash = $1", token) == 0
    client = await browser()
    headers = {"Authorization": f"Bearer {token}"}
    response = await client.get("/api/v1/t/alpha/members", headers=headers)
    assert response.status_code == 200
    assert world["viewer"].email in response.text
    # Unsafe methods with a bearer token need no CSRF token: a browser never sends one by itself.
    created = await client.http.post("/api/v1/t/alpha/tokens", json={"name": "t2"}, headers=headers)
    assert created.status_code == 201
    # Scoped to one tenant: in another tenant it is not valid at all.
    assert (await client.get("/api/v1/t/beta", headers=headers)).status_code == 401
    # Revoked: refused at once.
    await identity.revoke_token(ctx, row.id, only_user=None)
    assert (await client.get("/api/v1/t/alpha/members", headers=headers)).status_code == 401


async def test_token_carries_its_users_roles(world: World, browser: Any) -> None:
    ctx = as_actor(world.alpha, world["operator"])
    token, _ = await identity.create_token(ctx, world["operator"].user_id, "operator")
    client = await browser()
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/t/alpha", headers=headers)).status_code == 200
    assert (await client.get("/api/v1/t/alpha/members", headers=headers)).status_code == 403


async def test_tokens_revocable_in_the_ui(world: World, browser: Any) -> None:
    client = await browser("author")
    page = await client.send(
        "POST", "/t/alpha/tokens", data={"name": "ui token", "_csrf_token": client.csrf}
    )
    assert page.status_code == 200
    token = page.text.split("data-new-token>")[1].split("<")[0]
    listed = (await client.get("/api/v1/t/alpha/tokens")).json()
    mine = next(t for t in listed if t["name"] == "ui token")
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/t/alpha", headers=bearer)).status_code == 200
    revoked = await client.send(
        "POST", f"/t/alpha/tokens/{mine['id']}/revoke", data={"_csrf_token": client.csrf}
    )
    assert revoked.status_code == 200
    assert "revoked" in revoked.text
    assert (await client.get("/api/v1/t/alpha", headers=bearer)).status_code == 401


async def test_non_admin_cannot_revoke_someone_elses_token(world: World, browser: Any) -> None:
    _, row = await identity.create_token(
        as_actor(world.alpha, world["admin"]), world["admin"].user_id, "admin's"
    )
    client = await browser("author")
    response = await client.send("DELETE", f"/api/v1/t/alpha/tokens/{row.id}")
    assert response.status_code == 404


async def test_a_revoked_token_records_the_reason(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    _, row = await identity.create_token(
        as_actor(world.alpha, world["author"]), world["author"].user_id, "laptop"
    )
    client = await browser("author")
    url = f"/api/v1/t/alpha/tokens/{row.id}"
    too_long = await client.send("DELETE", url, params={"reason": "x" * 10_001})
    assert too_long.status_code == 400 and "reason" in too_long.text
    done = await client.send("DELETE", url, params={"reason": "laptop lost"})
    assert done.status_code == 204
    reason = await owner.fetchval(
        "SELECT reason FROM audit_events WHERE action = 'token.revoked' AND entity_id = $1",
        str(row.id),
    )
    assert reason == "laptop lost"


@pytest.mark.parametrize("header", ["Bearer ", "Bearer nonsense", "Bearer ocd_00000000_xyz"])
async def test_bad_bearer_tokens_get_401(browser: Any, header: str) -> None:
    response = await (await browser()).get("/api/v1/t/alpha", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]["status"] == 401
