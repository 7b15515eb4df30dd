"""Password guessing stays throttled, but nobody can lock a named person out cheaply."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from opencdmo.errors import NotAuthenticated, TooManyAttempts
from opencdmo.identity import service as identity
from opencdmo.identity.throttle import MAX_DELAY_SECONDS
from opencdmo.scope import Actor, RequestMeta, TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from opencdmo.webapp import resolver
from tests.conftest import PASSWORD, World, as_actor

WRONG = "wrong-password-123"


async def _person(world: World, roles: list[str] | None = None) -> tuple[str, uuid.UUID]:
    email = f"t-{uuid.uuid4().hex[:8]}@alpha.test"
    user = await identity.create_user(email, "Throttle Person", PASSWORD)
    await tenancy.add_member(world.alpha, user.id, roles or ["viewer"])
    return email, user.id


def _net() -> str:
    """A /24 of client addresses no other test uses."""
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


async def _fail(browser: Any, email: str, address: str, times: int) -> None:
    client = await browser(address=address)
    for _ in range(times):
        assert (await client.login(email, WRONG)).status_code == 401


async def _failed_from(owner: asyncpg.Connection, email: str, addresses: list[str]) -> None:
    """Five failures just now from each address (the throttle would slow real ones down)."""
    await owner.executemany(
        "INSERT INTO login_failures (kind, email, address) VALUES ('sign_in', $1, $2)",
        [(email, address) for address in addresses for _ in range(5)],
    )


async def _sprayed(owner: asyncpg.Connection, address: str, accounts: int) -> None:
    """Failures just now from one address for that many different unknown accounts."""
    await owner.executemany(
        "INSERT INTO login_failures (kind, email, address) VALUES ('sign_in', $1, $2)",
        [(f"spray-{uuid.uuid4().hex[:8]}@nowhere.test", address) for _ in range(accounts)],
    )


async def test_brute_force_from_one_address_is_stopped(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    email, _ = await _person(world)
    net = _net()
    await _fail(browser, email, f"{net}.1", 5)
    attacker = await browser(address=f"{net}.1")
    blocked = await attacker.login(email)  # even the right password is not checked now
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["retry-after"]) <= 900
    assert "Too many failed sign-in attempts" in blocked.text
    throttled = await owner.fetchval(
        "SELECT count(*) FROM security_events WHERE action = 'login.throttled' "
        "AND detail->>'email' = $1",
        email,
    )
    assert throttled == 1
    # Refused attempts do not count: only the five failures are stored.
    assert await owner.fetchval("SELECT count(*) FROM login_failures WHERE email = $1", email) == 5
    # The address is not locked for other accounts.
    assert (
        await (await browser(address=f"{net}.1")).login(world["viewer"].email)
    ).status_code == 303
    # The refusal ends one window after the failures.
    await owner.execute(
        "UPDATE login_failures SET failed_at = failed_at - interval '16 minutes' WHERE email = $1",
        email,
    )
    assert (await (await browser(address=f"{net}.1")).login(email)).status_code == 303


async def test_an_attacker_elsewhere_cannot_lock_the_person_out(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    email, _ = await _person(world)
    net = _net()
    usual = await browser(address=f"{net}.200")
    assert (await usual.login(email)).status_code == 303  # this browser is now trusted
    assert usual.http.cookies.get("opencdmo_device")
    # 40 failures from 8 addresses (each refused after 5); the next ones would be slowed.
    await _fail(browser, email, f"{net}.1", 5)
    await _failed_from(owner, email, [f"{net}.{i}" for i in range(2, 9)])
    assert (await (await browser(address=f"{net}.9")).login(email, WRONG)).status_code == 429
    assert (await (await browser(address=f"{net}.1")).login(email)).status_code == 429
    # The person's usual browser signs in at once, from its usual address or another.
    assert (await usual.login(email)).status_code == 303
    travelling = await browser(address=f"{net}.201")
    travelling.http.cookies.set(
        "opencdmo_device", usual.http.cookies["opencdmo_device"], path="/login"
    )
    assert (await travelling.login(email)).status_code == 303
    # A new browser is slowed down, never locked: at most a minute after the latest failure.
    new = await browser(address=f"{net}.202")
    slowed = await new.login(email)
    assert slowed.status_code == 429
    assert 1 <= int(slowed.headers["retry-after"]) <= MAX_DELAY_SECONDS
    await owner.execute(
        "UPDATE login_failures SET failed_at = failed_at - make_interval(secs => $2) "
        "WHERE email = $1",
        email,
        MAX_DELAY_SECONDS + 1,
    )
    # The failures are still in the window (the attacker's addresses stay refused) ...
    assert (await (await browser(address=f"{net}.1")).login(email)).status_code == 429
    # ... but the person gets in from the new browser.
    assert (await new.login(email)).status_code == 303


async def test_a_trusted_browser_cookie_is_bound_to_its_account(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    email, _ = await _person(world)
    other, _ = await _person(world)
    net = _net()
    mine = await browser(address=f"{net}.100")
    assert (await mine.login(other)).status_code == 303  # trusted for the other account
    await _failed_from(owner, email, [f"{net}.{i}" for i in range(1, 8)])
    borrowed = await browser(address=f"{net}.101")
    borrowed.http.cookies.set(
        "opencdmo_device", mine.http.cookies["opencdmo_device"], path="/login"
    )
    assert (await borrowed.login(email)).status_code == 429
    forged = await browser(address=f"{net}.102")
    forged.http.cookies.set("opencdmo_device", "0" * 32 + "." + "0" * 64, path="/login")
    assert (await forged.login(email)).status_code == 429


async def test_a_trusted_browser_is_stopped_after_its_own_failures(
    world: World, browser: Any
) -> None:
    email, _ = await _person(world)
    client = await browser(address=f"{_net()}.1")
    assert (await client.login(email)).status_code == 303
    for _ in range(5):
        assert (await client.login(email, WRONG)).status_code == 401
    assert (await client.login(email)).status_code == 429


async def test_a_shared_address_with_many_users(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    net = _net()
    shared = f"{net}.1"
    people = [await _person(world) for _ in range(25)]
    trusted = []
    for email, _ in people:  # everyone behind the shared address mistypes once, then gets in
        client = await browser(address=shared)
        assert (await client.login(email, WRONG)).status_code == 401
        assert (await client.login(email)).status_code == 303
        trusted.append((email, client))
    # Someone behind it sprays passwords at many accounts.
    sprayer = await browser(address=shared)
    for i in range(20):
        response = await sprayer.login(f"spray-{i}-{uuid.uuid4().hex[:6]}@nowhere.test", WRONG)
        assert response.status_code == 401
    await _sprayed(owner, shared, 5)
    # Untrusted attempts from the address wait (seconds, not a lock) ...
    newcomer, _ = await _person(world)
    slowed = await (await browser(address=shared)).login(newcomer)
    assert slowed.status_code == 429
    assert 1 <= int(slowed.headers["retry-after"]) <= MAX_DELAY_SECONDS
    # ... the people whose browsers are trusted sign in at once ...
    for email, client in trusted[:5]:
        assert (await client.login(email)).status_code == 303
    # ... and the address's slow-down does not follow the newcomer elsewhere.
    assert (await (await browser(address=f"{net}.2")).login(newcomer)).status_code == 303
    newcomer2, _ = await _person(world)
    await owner.execute(
        "UPDATE login_failures SET failed_at = failed_at - make_interval(secs => $2) "
        "WHERE address = $1",
        shared,
        MAX_DELAY_SECONDS + 1,
    )
    assert (await (await browser(address=shared)).login(newcomer2)).status_code == 303


# --- password re-entry -------------------------------------------------------------------


async def _token_scope(world: World, user_id: uuid.UUID, email: str) -> TenantContext:
    persona_ctx = as_actor(world.alpha, _persona(email, user_id))
    token, _ = await identity.create_token(persona_ctx, user_id, "signing script")
    found = await resolver.for_token(token, "alpha", RequestMeta(address="10.250.0.1"))
    assert isinstance(found, TenantContext)
    assert found.meta.credential is not None and found.meta.credential.startswith("token:")
    return found


def _persona(email: str, user_id: uuid.UUID) -> Any:
    from tests.conftest import Persona

    return Persona("p", email, "Throttle Person", user_id)


async def test_wrong_signature_passwords_through_a_token_do_not_lock_the_sign_in(
    world: World, settings: Settings, browser: Any, owner: asyncpg.Connection
) -> None:
    email, user_id = await _person(world, ["qa_approver"])
    ctx = await _token_scope(world, user_id, email)
    for _ in range(5):
        with pytest.raises(NotAuthenticated):
            await identity.reauthenticate(settings, ctx, WRONG)
    with pytest.raises(TooManyAttempts):
        await identity.reauthenticate(settings, ctx, PASSWORD)
    # The person still signs in, from the same address too ...
    client = await browser(address="10.250.0.1")
    assert (await client.login(email)).status_code == 303
    # ... and signs with their browser session: another credential, counted on its own.
    session = await resolver.for_user(
        Actor(user_id, email, "Throttle Person"),
        "alpha",
        RequestMeta(address="10.250.0.1", credential=f"session:{uuid.uuid4()}"),
    )
    assert session is not None
    await identity.reauthenticate(settings, session, PASSWORD)
    kinds = await owner.fetch("SELECT kind, source FROM login_failures WHERE email = $1", email)
    assert {r["kind"] for r in kinds} == {"re_entry"}
    assert {r["source"] for r in kinds} == {ctx.meta.credential}


async def test_re_entry_across_many_credentials_is_slowed_down(
    world: World, settings: Settings, owner: asyncpg.Connection
) -> None:
    email, user_id = await _person(world, ["qa_approver"])
    first, fresh = (
        await _token_scope(world, user_id, email),
        await _token_scope(world, user_id, email),
    )
    for _ in range(5):
        with pytest.raises(NotAuthenticated):
            await identity.reauthenticate(settings, first, WRONG)
    # More tokens of the same person, each just under its own limit.
    await owner.executemany(
        "INSERT INTO login_failures (kind, email, address, source) VALUES ('re_entry', $1, $2, $3)",
        [(email, "10.250.0.1", f"token:{uuid.uuid4()}") for _ in range(10)],
    )
    with pytest.raises(TooManyAttempts) as refused:
        await identity.reauthenticate(settings, fresh, PASSWORD)
    assert 1 <= refused.value.retry_after <= MAX_DELAY_SECONDS
    await owner.execute(
        "UPDATE login_failures SET failed_at = failed_at - make_interval(secs => $2) "
        "WHERE email = $1",
        email,
        MAX_DELAY_SECONDS + 1,
    )
    await identity.reauthenticate(settings, fresh, PASSWORD)  # slowed down, not locked
    with pytest.raises(TooManyAttempts):
        await identity.reauthenticate(settings, first, PASSWORD)  # its own limit still holds
