"""Invitations: how a person joins a tenant without any tenant touching their account."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from litestar import Litestar

from opencdmo.db.urls import DatabaseUrls
from opencdmo.errors import Conflict
from opencdmo.identity import service as identity
from opencdmo.scope import SYSTEM, Actor, RequestMeta, TenantContext
from opencdmo.tenancy import invitations
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, Browser, World, as_actor
from tests.integration.test_members import at_the_same_moment

OWN_PASSWORD = "my-own-long-passphrase-31"


@dataclass
class Org:
    ctx: TenantContext
    admin_email: str


async def new_org(kind: str = "cdmo") -> Org:
    """A fresh tenant with one tenant admin (signed in with PASSWORD)."""
    slug = f"inv-{uuid.uuid4().hex[:8]}"
    ctx = await tenancy.create_tenant(slug, f"Org {slug}", kind, SYSTEM, RequestMeta())
    email = f"admin-{slug}@org.test"
    user = await identity.create_user(email, f"Admin of {slug}", PASSWORD)
    await tenancy.add_member(ctx, user.id, ["tenant_admin"])
    return Org(ctx, email)


async def signed_in(app: Litestar, email: str, password: str = PASSWORD) -> Browser:
    client = Browser(app)
    response = await client.login(email, password)
    assert response.status_code == 303, response.text
    return client


def _token(url: str) -> str:
    return url.split("token=", 1)[1]


async def _invite(client: Browser, org: Org, email: str, roles: list[str] | None = None) -> Any:
    return await client.send(
        "POST",
        f"/api/v1/t/{org.ctx.slug}/invitations",
        json={"email": email, "roles": roles or ["process_engineer"]},
    )


async def _accept_new(
    client: Browser, token: str, name: str = "Future Hire", password: str = OWN_PASSWORD
) -> Any:
    await client.prime()
    return await client.send(
        "POST",
        "/invitations/accept",
        data={
            "_csrf_token": client.csrf,
            "token": token,
            "mode": "new",
            "full_name": name,
            "new_password": password,
            "confirm_password": password,
        },
    )


async def _accept_signing_in(client: Browser, token: str, password: str) -> Any:
    await client.prime()
    return await client.send(
        "POST",
        "/invitations/accept",
        data={"_csrf_token": client.csrf, "token": token, "mode": "sign-in", "password": password},
    )


async def _events(owner: asyncpg.Connection, ctx: TenantContext, action: str) -> list[Any]:
    return list(
        await owner.fetch(
            "SELECT * FROM audit_events WHERE tenant_id = $1 AND action = $2 ORDER BY seq",
            ctx.tenant_id,
            action,
        )
    )


def _shape(body: dict[str, Any]) -> dict[str, Any]:
    """The answer without what differs by nature (ids, times, the address, the secret)."""
    invitation = dict(body["invitation"])
    for key in ("id", "email", "created_at", "expires_at"):
        invitation.pop(key)
    return {"keys": sorted(body), "invitation": invitation}


async def test_known_and_unknown_addresses_get_the_same_answer(
    app: Litestar, owner: asyncpg.Connection
) -> None:
    org, elsewhere = await new_org(), await new_org()
    known = f"known-{uuid.uuid4().hex[:6]}@people.test"
    user = await identity.create_user(known, "Kept Private-Name", PASSWORD)
    await tenancy.add_member(elsewhere.ctx, user.id, ["viewer"])
    unknown = f"unknown-{uuid.uuid4().hex[:6]}@people.test"
    admin = await signed_in(app, org.admin_email)
    answers = [await _invite(admin, org, email) for email in (known, unknown)]
    assert [a.status_code for a in answers] == [201, 201]
    assert _shape(answers[0].json()) == _shape(answers[1].json())
    assert set(answers[0].headers) == set(answers[1].headers)
    page = await admin.get(f"/t/{org.ctx.slug}/members")
    listed = (await admin.get(f"/api/v1/t/{org.ctx.slug}/invitations")).text
    trail = json.dumps(
        [dict(e) for e in await _events(owner, org.ctx, "invitation.created")], default=str
    )
    for text in (answers[0].text, page.text, listed, trail):
        assert "Private-Name" not in text
        assert str(user.id) not in text
    assert known in page.text  # the address is the admin's own input


async def test_a_tenant_cannot_set_anyones_password_or_name(
    app: Litestar, world: World, owner: asyncpg.Connection
) -> None:
    org, theirs = await new_org(), await new_org()
    victim = f"victim-{uuid.uuid4().hex[:6]}@people.test"
    user = await identity.create_user(victim, "Victor Original", PASSWORD)
    await tenancy.add_member(theirs.ctx, user.id, ["process_engineer"])
    admin = await signed_in(app, org.admin_email)
    old_route = await admin.send(
        "POST",
        f"/api/v1/t/{org.ctx.slug}/members",
        json={"email": victim, "roles": ["viewer"], "initial_password": OWN_PASSWORD},
    )
    assert old_route.status_code == 405
    with_password = await admin.send(
        "POST",
        f"/api/v1/t/{org.ctx.slug}/invitations",
        json={"email": victim, "roles": ["viewer"], "initial_password": OWN_PASSWORD},
    )
    assert with_password.status_code == 422, with_password.text
    assert "initial_password" in with_password.json()["error"]["message"]
    assert await owner.fetchval("SELECT count(*) FROM invitations WHERE email = $1", victim) == 0
    # The admin holds the link of a real invitation and tries to set the account up.
    link = (await _invite(admin, org, victim)).json()["accept_url"]
    attempt = await _accept_new(Browser(app), _token(link), "Mallory Took-Over")
    assert attempt.status_code == 409
    assert "already has an account" in attempt.text
    assert (await Browser(app).login(victim, OWN_PASSWORD)).status_code == 401
    assert (await Browser(app).login(victim, PASSWORD)).status_code == 303
    row = await owner.fetchrow("SELECT full_name, member_of FROM users WHERE email = $1", victim)
    assert row["full_name"] == "Victor Original"
    assert row["member_of"] == [theirs.ctx.tenant_id]
    status = await owner.fetchval("SELECT status FROM invitations WHERE email = $1", victim)
    assert status == "pending"


async def test_the_reproduced_takeover_fails(app: Litestar, owner: asyncpg.Connection) -> None:
    """A invites future-hire@ and sets the account up itself; B invites the same address;
    A's password must not open B."""
    a, b = await new_org(), await new_org("sponsor")
    address = f"future-hire-{uuid.uuid4().hex[:6]}@quillon.test"
    a_admin, b_admin = await signed_in(app, a.admin_email), await signed_in(app, b.admin_email)
    a_link = (await _invite(a_admin, a, address)).json()["accept_url"]
    assert (await _accept_new(Browser(app), _token(a_link), "Set Up By A")).status_code == 303
    invited_by_b = await _invite(b_admin, b, address)
    assert invited_by_b.status_code == 201
    attacker = await signed_in(app, address, OWN_PASSWORD)
    assert (await attacker.get(f"/t/{b.ctx.slug}/recipes")).status_code == 404
    assert (await attacker.get(f"/api/v1/t/{b.ctx.slug}")).status_code == 404
    assert [t["slug"] for t in (await attacker.get("/api/v1/me")).json()["tenants"]] == [a.ctx.slug]
    # B's link opens B only for whoever holds it and proves the account: A's session cannot
    # take it over without the link, and the link cannot set a new password.
    b_token = _token(invited_by_b.json()["accept_url"])
    assert (await _accept_new(Browser(app), b_token, "Again A")).status_code == 409
    members = await owner.fetchval(
        "SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id "
        "WHERE m.tenant_id = $1 AND u.email = $2",
        b.ctx.tenant_id,
        address,
    )
    assert members == 0


async def test_accepting_creates_the_account_and_the_membership_audited(
    app: Litestar, owner: asyncpg.Connection
) -> None:
    org = await new_org()
    address = f"joiner-{uuid.uuid4().hex[:6]}@people.test"
    admin = await signed_in(app, org.admin_email)
    created = (await _invite(admin, org, address, ["qa_approver", "viewer"])).json()
    assert created["invitation"]["status"] == "pending"
    page = await Browser(app).get(f"/invitations/accept?token={_token(created['accept_url'])}")
    assert page.status_code == 200
    assert org.ctx.name in page.text and "QA approver, Viewer" in page.text
    joiner = Browser(app)
    response = await _accept_new(joiner, _token(created["accept_url"]), "Jo Iner")
    assert response.status_code == 303
    assert response.headers["location"] == f"/t/{org.ctx.slug}/"
    assert (await joiner.get(f"/t/{org.ctx.slug}/")).status_code == 200
    member = next(
        m
        for m in (await admin.get(f"/api/v1/t/{org.ctx.slug}/members")).json()
        if m["email"] == address
    )
    assert member["roles"] == ["qa_approver", "viewer"]
    assert member["full_name"] == "Jo Iner"
    accepted = await _events(owner, org.ctx, "invitation.accepted")
    assert len(accepted) == 1
    assert accepted[0]["actor_name"] == "Jo Iner"
    assert json.loads(accepted[0]["new_values"])["user_id"] == member["user_id"]
    added = await _events(owner, org.ctx, "member.added")
    assert json.loads(added[-1]["new_values"])["user_id"] == member["user_id"]
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM security_events WHERE action = 'user.created' "
            "AND detail->>'email' = $1",
            address,
        )
        == 1
    )
    assert (await admin.get(f"/api/v1/t/{org.ctx.slug}/invitations")).json() == []


async def test_an_existing_account_accepts_by_signing_in(
    app: Litestar, owner: asyncpg.Connection
) -> None:
    org, elsewhere = await new_org(), await new_org()
    address = f"worker-{uuid.uuid4().hex[:6]}@people.test"
    user = await identity.create_user(address, "Wendy Worker", PASSWORD)
    await tenancy.add_member(elsewhere.ctx, user.id, ["viewer"])
    admin = await signed_in(app, org.admin_email)
    token = _token((await _invite(admin, org, address)).json()["accept_url"])
    person = Browser(app)
    wrong = await _accept_signing_in(person, token, "not-my-password-at-all")
    assert wrong.status_code == 401
    assert "Email or password is incorrect" in wrong.text
    right = await _accept_signing_in(person, token, PASSWORD)
    assert right.status_code == 303
    assert right.headers["location"] == f"/t/{org.ctx.slug}/"
    assert (await person.get(f"/t/{org.ctx.slug}/")).status_code == 200
    # The account is the person's: name and password are as they were.
    assert await owner.fetchval("SELECT full_name FROM users WHERE id = $1", user.id) == (
        "Wendy Worker"
    )


async def test_a_signed_in_person_accepts_only_their_own_invitation(app: Litestar) -> None:
    org = await new_org()
    mine, theirs = (f"{k}-{uuid.uuid4().hex[:6]}@people.test" for k in ("mine", "theirs"))
    await identity.create_user(mine, "Me Myself", PASSWORD)
    admin = await signed_in(app, org.admin_email)
    my_token = _token((await _invite(admin, org, mine)).json()["accept_url"])
    their_token = _token((await _invite(admin, org, theirs)).json()["accept_url"])
    me = await signed_in(app, mine)
    page = await me.get(f"/invitations/accept?token={their_token}")
    assert "sign out, then open the link again" in page.text
    data = {"_csrf_token": me.csrf, "mode": "accept"}
    other = await me.send("POST", "/invitations/accept", data={**data, "token": their_token})
    assert other.status_code == 409
    own = await me.send("POST", "/invitations/accept", data={**data, "token": my_token})
    assert own.status_code == 303


async def test_single_use_expiry_and_revocation(app: Litestar, owner: asyncpg.Connection) -> None:
    org = await new_org()
    admin = await signed_in(app, org.admin_email)
    used, late, withdrawn = (f"{k}-{uuid.uuid4().hex[:6]}@people.test" for k in "ulw")
    used_token = _token((await _invite(admin, org, used)).json()["accept_url"])
    assert (await _accept_new(Browser(app), used_token)).status_code == 303
    twice = await _accept_new(Browser(app), used_token)
    assert twice.status_code == 409
    assert "already been accepted" in twice.text

    late_token = _token((await _invite(admin, org, late)).json()["accept_url"])
    await owner.execute(
        "UPDATE invitations SET expires_at = now() - interval '1 minute' WHERE email = $1", late
    )
    expired = await _accept_new(Browser(app), late_token)
    assert expired.status_code == 410
    assert "expired" in expired.text
    assert (await Browser(app).get(f"/invitations/accept?token={late_token}")).status_code == 410
    assert await owner.fetchval("SELECT count(*) FROM users WHERE email = $1", late) == 0
    # An expired invitation does not block a new one; it is closed, and that is audited.
    renewed = await _invite(admin, org, late)
    assert renewed.status_code == 201
    assert len(await _events(owner, org.ctx, "invitation.expired")) == 1

    created = (await _invite(admin, org, withdrawn)).json()
    path = f"/api/v1/t/{org.ctx.slug}/invitations/{created['invitation']['id']}"
    assert (await admin.send("DELETE", path)).status_code == 204
    assert (await admin.send("DELETE", path)).status_code == 409
    revoked = await _accept_new(Browser(app), _token(created["accept_url"]))
    assert revoked.status_code == 410
    assert "withdrawn" in revoked.text
    events = await _events(owner, org.ctx, "invitation.revoked")
    assert [json.loads(e["new_values"])["email"] for e in events] == [withdrawn]
    bogus = await Browser(app).get("/invitations/accept?token=" + org.ctx.slug + ".x" * 3)
    assert bogus.status_code == 404


async def test_revoke_from_the_members_page(app: Litestar) -> None:
    org = await new_org()
    admin = await signed_in(app, org.admin_email)
    address = f"page-{uuid.uuid4().hex[:6]}@people.test"
    form = await admin.send(
        "POST",
        f"/t/{org.ctx.slug}/invitations",
        data={"_csrf_token": admin.csrf, "email": address, "roles": "viewer"},
    )
    assert form.status_code == 200
    assert "not shown again" in form.text
    invitation_id = re.search(r'id="invitation-([0-9a-f-]{36})"', form.text)
    assert invitation_id is not None
    revoked = await admin.send(
        "POST",
        f"/t/{org.ctx.slug}/invitations/{invitation_id.group(1)}/revoke",
        data={"_csrf_token": admin.csrf},
    )
    assert revoked.status_code == 200
    assert f"Invitation for {address} revoked" in revoked.text
    assert f'id="invitation-{invitation_id.group(1)}"' not in revoked.text


async def test_concurrent_accepts_one_wins(app: Litestar, owner: asyncpg.Connection) -> None:
    org = await new_org()
    admin = await signed_in(app, org.admin_email)
    address = f"race-{uuid.uuid4().hex[:6]}@people.test"
    token = _token((await _invite(admin, org, address)).json()["accept_url"])
    clients = [Browser(app), Browser(app)]
    for client in clients:
        await client.prime()
    answers = await asyncio.gather(
        _accept_new(clients[0], token, "Racer One"), _accept_new(clients[1], token, "Racer Two")
    )
    assert sorted(a.status_code for a in answers) == [303, 409]
    loser = next(a for a in answers if a.status_code == 409)
    assert "already been accepted" in loser.text  # refused by the invitation, not the account
    assert await owner.fetchval("SELECT count(*) FROM users WHERE email = $1", address) == 1
    assert len(await _events(owner, org.ctx, "invitation.accepted")) == 1
    assert len(await _events(owner, org.ctx, "member.added")) == 2  # the admin, then the racer


async def test_two_accepts_by_one_account_at_once(
    app: Litestar, database: DatabaseUrls, owner: asyncpg.Connection
) -> None:
    """A double submit by the signed-in person: both are under way before either commits; one
    accepts, the other is told the invitation is used, and it is accepted once."""
    org = await new_org()
    address = f"double-{uuid.uuid4().hex[:6]}@people.test"
    user = await identity.create_user(address, "Double Click", PASSWORD)
    invitation, token = await invitations.invite(org.ctx, address, ["viewer"], hours=1)
    actor = Actor(user.id, user.email, user.full_name)
    results = await at_the_same_moment(
        database,
        org.ctx,
        invitations.accept(token, actor, RequestMeta()),
        invitations.accept(token, actor, RequestMeta()),
    )
    assert sorted(type(r).__name__ for r in results) == ["Accepted", "Conflict"]
    refused = next(r for r in results if isinstance(r, Conflict))
    assert "already been accepted" in refused.message
    accepted = await _events(owner, org.ctx, "invitation.accepted")
    assert [e["entity_id"] for e in accepted] == [str(invitation.id)]


async def test_twenty_concurrent_invitations_leave_one_pending(
    app: Litestar, owner: asyncpg.Connection
) -> None:
    org = await new_org()
    admin = await signed_in(app, org.admin_email)
    address = f"crowd-{uuid.uuid4().hex[:6]}@people.test"
    answers = await asyncio.gather(*(_invite(admin, org, address) for _ in range(20)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 19
    conflict = next(a for a in answers if a.status_code == 409).json()["error"]
    assert "already pending" in conflict["message"]
    assert await owner.fetchval("SELECT count(*) FROM invitations WHERE email = $1", address) == 1
    assert len(await _events(owner, org.ctx, "invitation.created")) == 1


async def test_twenty_concurrent_adds_of_one_member(world: World) -> None:
    """Provisioning (manifests, the operator's CLI) adds members directly: one add wins, the
    others are a clear conflict, never a database error."""
    org = await new_org()
    user = await identity.create_user(f"add-{uuid.uuid4().hex[:6]}@people.test", "Add Me", PASSWORD)
    results = await asyncio.gather(
        *(tenancy.add_member(org.ctx, user.id, ["viewer"]) for _ in range(20)),
        return_exceptions=True,
    )
    added = [r for r in results if isinstance(r, uuid.UUID)]
    refused = [r for r in results if not isinstance(r, uuid.UUID)]
    assert len(added) == 1
    assert len(refused) == 19
    assert all(getattr(r, "status_code", None) == 409 for r in refused), refused


async def test_inviting_a_member_and_accepting_as_one(
    app: Litestar, owner: asyncpg.Connection
) -> None:
    org = await new_org()
    admin = await signed_in(app, org.admin_email)
    refused = await _invite(admin, org, org.admin_email)
    assert refused.status_code == 409
    assert "already a member" in refused.json()["error"]["message"]
    # Invited, then made a member by provisioning before accepting: accepting is harmless.
    address = f"both-{uuid.uuid4().hex[:6]}@people.test"
    token = _token((await _invite(admin, org, address, ["qc_analyst"])).json()["accept_url"])
    user = await identity.create_user(address, "Both Ways", PASSWORD)
    await tenancy.add_member(org.ctx, user.id, ["viewer"])
    answer = await _accept_signing_in(Browser(app), token, PASSWORD)
    assert answer.status_code == 200
    assert "already a member" in answer.text
    roles = await owner.fetch(
        "SELECT role FROM role_assignments r JOIN memberships m ON m.id = r.membership_id "
        "WHERE m.tenant_id = $1 AND m.user_id = $2",
        org.ctx.tenant_id,
        user.id,
    )
    assert [r["role"] for r in roles] == ["viewer"]
    accepted = await _events(owner, org.ctx, "invitation.accepted")
    assert json.loads(accepted[0]["new_values"])["already_member"] is True


async def test_sign_in_is_recorded_only_in_the_tenant_entered(
    app: Litestar, owner: asyncpg.Connection
) -> None:
    first, second = await new_org(), await new_org()
    address = f"two-{uuid.uuid4().hex[:6]}@people.test"
    user = await identity.create_user(address, "Two Tenants", PASSWORD)
    for org in (first, second):
        await tenancy.add_member(org.ctx, user.id, ["viewer"])
    client = await signed_in(app, address)
    landing = await client.get("/")
    assert landing.headers["location"] == "/tenants"
    choose = await client.get("/tenants")
    assert first.ctx.name in choose.text and second.ctx.name in choose.text
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM security_events WHERE action = 'login.succeeded' AND actor_id = $1",
            user.id,
        )
        == 1
    )
    for _ in range(2):
        assert (await client.get(f"/t/{second.ctx.slug}/")).status_code == 200
    await client.send("POST", "/logout", data={"_csrf_token": client.csrf})
    for org, expected in ((first, 0), (second, 1)):
        for action in ("user.login", "user.logout"):
            events = [e for e in await _events(owner, org.ctx, action) if e["actor_id"] == user.id]
            assert len(events) == expected, (org.ctx.slug, action)


async def test_one_tenant_lands_in_it(app: Litestar) -> None:
    org = await new_org()
    client = await signed_in(app, org.admin_email)
    assert (await client.get("/")).headers["location"] == f"/t/{org.ctx.slug}/"


async def test_service_invitation_by_the_system_actor(world: World) -> None:
    """The operator's CLI invites as the system; the invitation says so."""
    org = await new_org()
    invitation, token = await invitations.invite(
        org.ctx, f"Op-{uuid.uuid4().hex[:6]}@People.test ", ["viewer"], hours=2
    )
    assert invitation.email == invitation.email.lower()
    assert invitation.invited_by_name == SYSTEM.full_name
    offer = await invitations.offer(token, RequestMeta())
    assert offer.invitation.id == invitation.id
    assert offer.ctx.tenant_id == org.ctx.tenant_id
    other_tenant = as_actor(world.alpha, world["admin"])
    assert invitation.id not in [i.id for i in await invitations.pending(other_tenant)]


async def test_odd_input_to_the_accept_form_is_never_a_500(
    app: Litestar, owner: asyncpg.Connection
) -> None:
    org = await new_org()
    admin = await signed_in(app, org.admin_email)
    address = f"odd-{uuid.uuid4().hex[:6]}@people.test"
    token = _token((await _invite(admin, org, address)).json()["accept_url"])
    client = Browser(app)
    await client.prime()
    forms = [
        {"token": token},
        {"token": token, "mode": "wizard"},
        {"token": token, "mode": "new", "full_name": "\u200b\u200b", "new_password": OWN_PASSWORD,
         "confirm_password": OWN_PASSWORD},
        {"token": token, "mode": "new", "full_name": "x" * 5000, "new_password": OWN_PASSWORD,
         "confirm_password": OWN_PASSWORD},
        {"token": token, "mode": "new", "full_name": "Short Pass", "new_password": "short",
         "confirm_password": "short"},
        {"token": token, "mode": "new", "full_name": "Two Pass", "new_password": OWN_PASSWORD,
         "confirm_password": OWN_PASSWORD + "x"},
        {"token": token, "mode": "accept"},
        {"token": token * 50, "mode": "sign-in", "password": "x"},
        {"token": "\x00", "mode": "new"},
    ]  # fmt: skip
    for form in forms:
        response = await client.send(
            "POST", "/invitations/accept", data={**form, "_csrf_token": client.csrf}
        )
        assert 400 <= response.status_code < 500, (form, response.status_code)
    typed = await client.send(
        "POST",
        "/invitations/accept",
        data={**forms[4], "_csrf_token": client.csrf},
    )
    assert 'value="Short Pass"' in typed.text  # what was typed stays
    assert await owner.fetchval("SELECT count(*) FROM users WHERE email = $1", address) == 0
    pending = await owner.fetchval("SELECT status FROM invitations WHERE email = $1", address)
    assert pending == "pending"
