"""Sponsor-CDMO relationships between tenants: proposed, accepted or declined, revoked, each
step in both tenants' audit trails (each chain intact); bad input refused with nothing
written; another tenant's relationship a 404; two admins at the same moment (real concurrent
requests) leave one relationship and one clear 409."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import pytest

from opencdmo.audit import service as audit
from opencdmo.audit.verify import verify_tenant
from opencdmo.identity import service as identity
from opencdmo.partners import service as partners
from opencdmo.scope import SYSTEM, Actor, RequestMeta, TenantContext
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, World


@dataclass(frozen=True)
class Org:
    ctx: TenantContext  # the provisioning system actor
    admin: TenantContext  # its administrator (a person of its own)
    email: str

    @property
    def api(self) -> str:
        return f"/api/v1/t/{self.ctx.slug}/partners"


async def new_org(kind: str, name: str | None = None, ctx: TenantContext | None = None) -> Org:
    """A new tenant of that kind (or ``ctx``) with an administrator of its own."""
    slug = f"{kind}-{uuid.uuid4().hex[:8]}"
    if ctx is None:
        ctx = await tenancy.create_tenant(slug, name or f"Org {slug}", kind, SYSTEM, RequestMeta())
    email = f"admin-{uuid.uuid4().hex[:8]}@{ctx.slug}.test"
    user = await identity.create_user(email, f"Admin of {ctx.name}", PASSWORD)
    await tenancy.add_member(ctx, user.id, ["tenant_admin"])
    fresh = await tenancy.internal_context(ctx.tenant_id, SYSTEM, RequestMeta())
    assert fresh is not None
    actor = Actor(user.id, user.email, user.full_name)
    return Org(fresh, replace(fresh, actor=actor), email)


async def signed_in(browser: Any, org: Org) -> Any:
    client = await browser()
    assert (await client.login(org.email)).status_code == 303
    return client


@pytest.fixture
async def sponsor(world: World) -> Org:
    return await new_org("sponsor")


@pytest.fixture
async def cdmo(world: World) -> Org:
    return await new_org("cdmo")


async def _events(owner: asyncpg.Connection, link_id: object) -> list[tuple[Any, str, str]]:
    rows = await owner.fetch(
        "SELECT tenant_id, action, actor_name FROM audit_events "
        "WHERE entity_type = 'partner_link' AND entity_id = $1 ORDER BY entry",
        str(link_id),
    )
    return [(r["tenant_id"], r["action"], r["actor_name"]) for r in rows]


async def _rows(owner: asyncpg.Connection, link_id: object) -> dict[Any, str]:
    rows = await owner.fetch(
        "SELECT tenant_id, status FROM partner_links WHERE id = $1", uuid.UUID(str(link_id))
    )
    return {r["tenant_id"]: r["status"] for r in rows}


async def test_proposed_then_accepted_in_both_trails(
    sponsor: Org, cdmo: Org, browser: Any, owner: asyncpg.Connection
) -> None:
    them, us = await signed_in(browser, sponsor), await signed_in(browser, cdmo)
    sent = await them.send("POST", sponsor.api, json={"partner": cdmo.ctx.slug, "message": "Hi"})
    assert sent.status_code == 201, sent.text
    link = sent.json()
    assert (link["status"], link["side"], link["proposed_by_us"]) == ("proposed", "sponsor", True)
    listed = (await us.get(cdmo.api)).json()
    assert [(r["id"], r["side"], r["proposed_by_us"]) for r in listed] == [
        (link["id"], "cdmo", False)
    ]
    page = await us.get(f"/t/{cdmo.ctx.slug}/settings/partners")
    assert page.status_code == 200 and "Awaiting your answer" in page.text
    accepted = await us.send("POST", f"{cdmo.api}/{link['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "active"
    assert (await them.get(f"{sponsor.api}/{link['id']}")).json()["status"] == "active"
    assert await _rows(owner, link["id"]) == {
        sponsor.ctx.tenant_id: "active",
        cdmo.ctx.tenant_id: "active",
    }
    await audit.drain()
    events = await _events(owner, link["id"])
    assert sorted((t, a) for t, a, _ in events) == sorted(
        [
            (sponsor.ctx.tenant_id, "partner.proposed"),
            (cdmo.ctx.tenant_id, "partner.proposed"),
            (sponsor.ctx.tenant_id, "partner.accepted"),
            (cdmo.ctx.tenant_id, "partner.accepted"),
        ]
    )
    # the other tenant's trail names who acted and for which organisation
    across = next(n for t, a, n in events if t == sponsor.ctx.tenant_id and a.endswith("accepted"))
    assert across.endswith(f"({cdmo.ctx.name})")
    for org in (sponsor, cdmo):
        assert (await verify_tenant(org.ctx.tenant_id, org.ctx.slug)).intact
    assert await partners.active_between(sponsor.ctx.tenant_id, cdmo.ctx.tenant_id) is not None
    assert await partners.active_between(cdmo.ctx.tenant_id, sponsor.ctx.tenant_id) is not None


async def test_declined_and_revoked_with_their_reasons(
    sponsor: Org, cdmo: Org, owner: asyncpg.Connection
) -> None:
    first = await partners.propose(cdmo.admin, sponsor.ctx.slug)
    declined = await partners.decline(sponsor.admin, first.row.id, "Not this year")
    assert (declined.row.status, declined.row.reason) == ("declined", "Not this year")
    again = await partners.propose(sponsor.admin, cdmo.ctx.slug)  # a new one may follow
    await partners.accept(cdmo.admin, again.row.id)
    ended = await partners.revoke(sponsor.admin, again.row.id, "Programme closed")
    assert ended.row.status == "revoked" and ended.row.closed_by_name
    assert (await partners.relationship(cdmo.admin, again.row.id)).row.status == "revoked"
    assert await partners.active_between(sponsor.ctx.tenant_id, cdmo.ctx.tenant_id) is None
    await audit.drain()
    reasons = await owner.fetch(
        "SELECT tenant_id, reason FROM audit_events WHERE entity_id = $1 "
        "AND action = 'partner.revoked'",
        str(again.row.id),
    )
    assert {(r["tenant_id"], r["reason"]) for r in reasons} == {
        (sponsor.ctx.tenant_id, "Programme closed"),
        (cdmo.ctx.tenant_id, "Programme closed"),
    }


async def _nothing_written(owner: asyncpg.Connection, *orgs: Org) -> None:
    for org in orgs:
        count = await owner.fetchval(
            "SELECT count(*) FROM partner_links WHERE tenant_id = $1", org.ctx.tenant_id
        )
        assert count == 0


async def test_bad_proposals_are_refused_with_a_clear_message_and_nothing_written(
    world: World, sponsor: Org, cdmo: Org, browser: Any, owner: asyncpg.Connection
) -> None:
    other_sponsor = await new_org("sponsor")
    client = await signed_in(browser, sponsor)
    cases = {
        "no-such-tenant-here": "There is no tenant 'no-such-tenant-here'",
        sponsor.ctx.slug: "cannot be its own partner",
        other_sponsor.ctx.slug: "a relationship joins a cdmo",
        "": "Name the partner by its slug",
    }
    for slug, message in cases.items():
        sent = await client.send("POST", sponsor.api, json={"partner": slug or " "})
        assert sent.status_code == 422, sent.text
        assert message in sent.json()["error"]["message"]
    for body in ({}, {"partner": 5}, {"partner": "x" * 65}, {"partner": "a", "extra": 1}):
        sent = await client.send("POST", sponsor.api, json=body)
        assert sent.status_code in (400, 422), sent.text
    form = await client.send(
        "POST",
        f"/t/{sponsor.ctx.slug}/settings/partners",
        data={"partner": "nobody-at-all", "_csrf_token": client.csrf},
    )
    assert form.status_code == 422 and "There is no tenant" in form.text
    await _nothing_written(owner, sponsor, cdmo, other_sponsor)


async def test_wrong_steps_are_409s_and_reasons_are_required(sponsor: Org, cdmo: Org) -> None:
    from opencdmo.errors import Conflict, ValidationFailed

    link = (await partners.propose(sponsor.admin, cdmo.ctx.slug)).row.id
    with pytest.raises(Conflict, match="You proposed this relationship"):
        await partners.accept(sponsor.admin, link)
    with pytest.raises(Conflict, match="proposed already"):
        await partners.propose(sponsor.admin, cdmo.ctx.slug)
    with pytest.raises(Conflict, match="has proposed a relationship to you already"):
        await partners.propose(cdmo.admin, sponsor.ctx.slug)
    with pytest.raises(ValidationFailed, match="Give a reason"):
        await partners.decline(cdmo.admin, link, "  ")
    with pytest.raises(Conflict, match="Only the CDMO"):
        await partners.set_sharing(sponsor.admin, link, False, "no")
    await partners.accept(cdmo.admin, link)
    with pytest.raises(Conflict, match="is active, not proposed"):
        await partners.decline(cdmo.admin, link, "too late")
    with pytest.raises(Conflict, match="became active a moment ago, after you saw it proposed"):
        await partners.revoke(sponsor.admin, link, "withdrawn", seen="proposed")
    assert (await partners.relationship(sponsor.admin, link)).row.status == "active"
    with pytest.raises(Conflict, match="is active already"):
        await partners.propose(sponsor.admin, cdmo.ctx.slug)


async def test_another_tenants_relationship_is_a_404(
    world: World, sponsor: Org, cdmo: Org, browser: Any
) -> None:
    link = (await partners.propose(sponsor.admin, cdmo.ctx.slug)).row.id
    third = await new_org("cdmo")
    client = await signed_in(browser, third)
    random = uuid.uuid4()
    for target in (link, random):
        assert (await client.get(f"{third.api}/{target}")).status_code == 404
        accepted = await client.send("POST", f"{third.api}/{target}/accept")
        assert accepted.status_code == 404, accepted.text
        revoked = await client.send("POST", f"{third.api}/{target}/revoke", json={"reason": "x"})
        assert revoked.status_code == 404
    assert (await client.get(third.api)).json() == []
    assert (await partners.relationship(cdmo.admin, link)).row.status == "proposed"


async def test_two_admins_proposing_to_each_other_at_once_make_one_relationship(
    sponsor: Org, cdmo: Org, browser: Any, owner: asyncpg.Connection
) -> None:
    one, other = await signed_in(browser, sponsor), await signed_in(browser, cdmo)
    answers = await asyncio.gather(
        one.send("POST", sponsor.api, json={"partner": cdmo.ctx.slug}),
        other.send("POST", cdmo.api, json={"partner": sponsor.ctx.slug}),
    )
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409).json()["error"]["message"]
    assert "open relationship already" in refused or "proposed a relationship" in refused
    for org in (sponsor, cdmo):
        count = await owner.fetchval(
            "SELECT count(*) FROM partner_links WHERE tenant_id = $1", org.ctx.tenant_id
        )
        assert count == 1


async def test_accept_and_revoke_at_once_one_wins_the_other_gets_409(
    sponsor: Org, cdmo: Org, browser: Any, owner: asyncpg.Connection
) -> None:
    """The proposer withdraws the proposal it sees while the partner accepts it: whichever
    commits first wins; the other is a 409 naming the status it found, nothing changed."""
    link = (await partners.propose(sponsor.admin, cdmo.ctx.slug)).row.id
    accepting, revoking = await signed_in(browser, cdmo), await signed_in(browser, sponsor)
    withdrawal = {"reason": "changed mind", "status": "proposed"}
    answers = await asyncio.gather(
        accepting.send("POST", f"{cdmo.api}/{link}/accept"),
        revoking.send("POST", f"{sponsor.api}/{link}/revoke", json=withdrawal),
    )
    codes = [a.status_code for a in answers]
    assert sorted(codes) == [200, 409], [a.text for a in answers]
    sides = await _rows(owner, link)
    if codes[0] == 409:  # withdrawn first: the acceptance is refused, naming the state
        assert "is revoked, not proposed" in answers[0].json()["error"]["message"]
        assert set(sides.values()) == {"revoked"}
    else:  # accepted first: the withdrawal of a proposal that is no longer one is refused
        assert "became active a moment ago" in answers[1].json()["error"]["message"]
        assert set(sides.values()) == {"active"}
    assert len(sides) == 2


async def test_revoke_twice_at_once_one_409(
    sponsor: Org, cdmo: Org, browser: Any, owner: asyncpg.Connection
) -> None:
    link = (await partners.propose(sponsor.admin, cdmo.ctx.slug)).row.id
    await partners.accept(cdmo.admin, link)
    one, other = await signed_in(browser, cdmo), await signed_in(browser, sponsor)
    answers = await asyncio.gather(
        one.send("POST", f"{cdmo.api}/{link}/revoke", json={"reason": "a"}),
        other.send("POST", f"{sponsor.api}/{link}/revoke", json={"reason": "b"}),
    )
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    assert "revoked already" in next(a for a in answers if a.status_code == 409).text
    await audit.drain()
    revoked = [e for e in await _events(owner, link) if e[1] == "partner.revoked"]
    assert len(revoked) == 2  # one step, one event in each trail


async def test_the_pages_propose_accept_and_revoke(sponsor: Org, cdmo: Org, browser: Any) -> None:
    them, us = await signed_in(browser, sponsor), await signed_in(browser, cdmo)
    base = f"/t/{sponsor.ctx.slug}/settings/partners"
    sent = await them.send(
        "POST", base, data={"partner": cdmo.ctx.slug, "message": "", "_csrf_token": them.csrf}
    )
    assert sent.status_code == 303, sent.text
    link = (await us.get(cdmo.api)).json()[0]["id"]
    ours = f"/t/{cdmo.ctx.slug}/settings/partners/{link}"
    accepted = await us.send("POST", ours + "/accept", data={"_csrf_token": us.csrf})
    assert accepted.status_code == 303
    again = await us.send("POST", ours + "/accept", data={"_csrf_token": us.csrf})
    assert again.status_code == 409 and "is active, not proposed" in again.text
    unshared = await us.send(
        "POST",
        ours + "/sharing",
        data={"share_batch_records": "false", "reason": "audit", "_csrf_token": us.csrf},
    )
    assert unshared.status_code == 303
    assert (await them.get(f"{sponsor.api}/{link}")).json()["share_batch_records"] is False
    page = await them.get(base)
    assert "Not shared" in page.text and "Revoke" in page.text
    no_reason = await them.send(
        "POST", f"{base}/{link}/revoke", data={"reason": "", "_csrf_token": them.csrf}
    )
    assert no_reason.status_code == 422 and "Give a reason" in no_reason.text
    assert (await them.get(f"{sponsor.api}/{link}")).json()["status"] == "active"


async def test_a_relationship_changed_behind_the_trail_is_named_by_audit_verify(
    sponsor: Org, cdmo: Org, owner: asyncpg.Connection
) -> None:
    """URS-PTN-01: each relationship row is vouched for by its events: a status or a sharing
    changed in the table without its event is a finding of ``audit verify``; the rows as the
    commands left them are not."""
    made = await partners.propose(sponsor.admin, cdmo.ctx.slug, "Hello")
    await partners.accept(cdmo.admin, made.row.id)
    await audit.drain()
    for org in (sponsor, cdmo):
        assert (await verify_tenant(org.ctx.tenant_id, org.ctx.slug)).intact
    await owner.execute(
        "UPDATE partner_links SET status = 'proposed', decided_by_name = NULL, decided_at = NULL "
        "WHERE id = $1 AND tenant_id = $2",
        made.row.id,
        sponsor.ctx.tenant_id,
    )
    await owner.execute(
        "UPDATE partner_links SET share_batch_records = false WHERE id = $1 AND tenant_id = $2",
        made.row.id,
        cdmo.ctx.tenant_id,
    )
    for org in (sponsor, cdmo):
        report = await verify_tenant(org.ctx.tenant_id, org.ctx.slug)
        found = [f.message for f in report.findings if "partner relationship" in f.message]
        assert not report.intact
        assert len(found) == 1, report.findings
        assert str(made.row.id) in found[0]
