"""E-mail notifications of work awaiting a person (the ``work.notify`` job), against a real
SMTP server (aiosmtpd) on 127.0.0.1: one digest per member and tenant with the new items,
never twice (a second sweep, two sweeps at once), nothing for a member who switched it off,
lost the permission or belongs to another tenant, audited, retried when the server refuses,
and nothing at all when no mail server is configured. Also the choice on the account page."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from opencdmo.db import jobs as queue
from opencdmo.db.tx import unit_of_work
from opencdmo.identity import service as identity
from opencdmo.jobs import tasks
from opencdmo.jobs.worker import Worker, periodic_jobs
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from opencdmo.work import notify
from tests.conftest import PASSWORD, Browser, World, as_actor
from tests.integration.test_jobs import fast, job_row, until
from tests.integration.test_work import Team, _person, _submitted, team
from tests.servers import free_port

__all__ = ["team"]  # the work queues' tenant fixture, used here too

PUBLIC = "https://cdmo.example"


@dataclass
class Inbox:
    """What the SMTP server received; ``refuse``: answer the mail with a temporary failure."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    refuse: bool = False
    signed_in_only: bool = False  # mail only from a client that authenticated

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 4.3.0 Try again later"
        if self.signed_in_only and not session.authenticated:
            return "530 5.7.0 Authentication required"
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"

    def to(self, email: str) -> list[EmailMessage]:
        return [m for rcpt, m in self.messages if email in rcpt]


@dataclass(frozen=True)
class Smtp:
    inbox: Inbox
    url: str


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield Smtp(inbox, f"smtp://127.0.0.1:{port}")
    finally:
        controller.stop()


def _relay_login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    good = isinstance(data, LoginPassword) and (data.login, data.password) == (b"relay", b"pw-1")
    return AuthResult(success=good, handled=False)


@pytest.fixture
def smtp_auth() -> Iterator[Smtp]:
    """A server that takes mail only from the user ``relay`` with the password ``pw-1``
    (over plain text: it is on the loopback address)."""
    inbox = Inbox(signed_in_only=True)
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=_relay_login,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield Smtp(inbox, f"smtp://relay@127.0.0.1:{port}")
    finally:
        controller.stop()


def mailing(settings: Settings, smtp: Smtp) -> Settings:
    return fast(settings, smtp_url=smtp.url, public_url=PUBLIC, mail_from="qa@cdmo.example")


async def sweep(settings: Settings, *tenants: TenantContext) -> list[UUID | None]:
    """One ``work.notify`` job per tenant, run to the end by a worker."""
    jobs = []
    for ctx in tenants:
        async with unit_of_work(ctx):
            jobs.append(await queue.enqueue_for(ctx, tasks.WORK_NOTIFY))
    worker = Worker(settings, handlers={tasks.WORK_NOTIFY: tasks.work_notify}, periodic=[])
    await asyncio.wait_for(worker.run(until_idle=True), 60)
    return jobs


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def _links(text: str) -> list[str]:
    return re.findall(r"https://cdmo\.example/t/[^\s\"<]+/recipes/[0-9a-f-]+", text)


async def test_a_submitted_recipe_mails_each_approver_one_digest_with_its_link(
    settings: Settings, team: Team, smtp: Smtp, owner: asyncpg.Connection
) -> None:
    configured = mailing(settings, smtp)
    recipe = await _submitted(configured, team, 'IL-2 <fed> & "boosted"')
    await sweep(configured, team.ctx)
    link = f"{PUBLIC}/t/{team.ctx.slug}/recipes/{recipe}"
    approvers = [team[k].actor for k in ("approver", "qa2", "dual")]
    for person in approvers:
        got = smtp.inbox.to(person.email)
        assert len(got) == 1, person.email
        text, html = _parts(got[0])
        assert got[0]["From"] == "qa@cdmo.example"
        assert "1 new item awaits your action" in got[0]["Subject"]
        assert _links(text) == [link]
        assert 'IL-2 <fed> & "boosted", revision 2: Needs your approval' in text
        assert f'href="{link}"' in html
        assert "IL-2 &lt;fed&gt; &amp; &#34;boosted&#34;" in html and "<fed>" not in html
    # The author has nothing awaiting their action; the operator no queue of it.
    assert smtp.inbox.to(team["author"].actor.email) == []
    assert smtp.inbox.to(team["operator"].actor.email) == []
    # One audit event per digest, by the system, naming the recipient and the item count.
    events = await owner.fetch(
        "SELECT actor_id, entity_id, new_values FROM audit_events "
        "WHERE tenant_id = $1 AND action = 'notification.sent'",
        team.ctx.tenant_id,
    )
    by_person = {e["entity_id"]: json.loads(e["new_values"]) for e in events}
    assert all(e["actor_id"] is None for e in events)
    for person in approvers:
        assert by_person[str(person.id)]["items"] == 1
        assert by_person[str(person.id)]["email"] == person.email
    recorded = await owner.fetchval(
        "SELECT count(*) FROM notifications_sent WHERE tenant_id = $1", team.ctx.tenant_id
    )
    assert recorded == len(events)

    # A second sweep mails nothing new; a new item is mailed alone.
    before = len(smtp.inbox.messages)
    await sweep(configured, team.ctx)
    assert len(smtp.inbox.messages) == before
    second = await _submitted(configured, team, "Second recipe")
    await sweep(configured, team.ctx)
    for person in approvers:
        got = smtp.inbox.to(person.email)
        assert len(got) == 2, person.email
        assert _links(_parts(got[1])[0]) == [f"{PUBLIC}/t/{team.ctx.slug}/recipes/{second}"]


async def test_no_mail_for_who_switched_it_off_lost_the_role_or_left(
    settings: Settings, world: World, team: Team, smtp: Smtp
) -> None:
    configured = mailing(settings, smtp)
    left = await _person(team.ctx, "left", ["qa_approver"])
    admin = as_actor(team.ctx, world["admin"])
    qa2, dual = team["qa2"].actor, team["dual"].actor
    await identity.set_notify_by_email(qa2.id, False, RequestMeta())  # type: ignore[arg-type]
    dual_membership = await tenancy.membership_of(team.ctx, dual.id)  # type: ignore[arg-type]
    assert dual_membership is not None
    await tenancy.set_roles(admin, dual_membership, ["process_engineer"], "no longer QA")
    left_membership = await tenancy.membership_of(team.ctx, left.user_id)
    assert left_membership is not None
    await tenancy.set_member_active(admin, left_membership, False, "left the company")
    await _submitted(configured, team, "Quiet recipe")
    await sweep(configured, team.ctx)
    assert len(smtp.inbox.to(team["approver"].actor.email)) == 1
    for email in (qa2.email, dual.email, left.email):
        assert smtp.inbox.to(email) == [], email


async def test_a_member_of_another_tenant_gets_nothing_of_this_one(
    settings: Settings, world: World, team: Team, smtp: Smtp
) -> None:
    configured = mailing(settings, smtp)
    slug = f"nt-{uuid.uuid4().hex[:8]}"
    other = await tenancy.create_tenant(slug, "Other Org", "cdmo", SYSTEM, RequestMeta())
    stranger = await _person(other, "stranger", ["qa_approver"])
    await _submitted(configured, team, "Not for strangers")
    await sweep(configured, team.ctx, other)
    assert smtp.inbox.to(stranger.email) == []
    for _, message in smtp.inbox.messages:
        assert {link.split("/t/")[1].split("/")[0] for link in _links(_parts(message)[0])} == {
            team.ctx.slug
        }


async def test_two_sweeps_at_once_mail_each_item_once(
    settings: Settings, team: Team, smtp: Smtp, owner: asyncpg.Connection
) -> None:
    configured = mailing(settings, smtp)
    await _submitted(configured, team, "Raced recipe")
    sent = await asyncio.gather(
        notify.notify_tenant(configured, team.ctx), notify.notify_tenant(configured, team.ctx)
    )
    approvers = [team[k].actor.email for k in ("approver", "qa2", "dual")]
    assert sum(sent) == len(smtp.inbox.messages) >= len(approvers)
    for email in approvers:
        assert len(smtp.inbox.to(email)) == 1, email
    events = await owner.fetchval(
        "SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND action = 'notification.sent'",
        team.ctx.tenant_id,
    )
    assert events == sum(sent)


async def test_a_refused_mail_is_retried_and_nothing_is_recorded_until_it_goes(
    settings: Settings, team: Team, smtp: Smtp, owner: asyncpg.Connection
) -> None:
    configured = mailing(settings, smtp)
    await _submitted(configured, team, "Retried recipe")
    smtp.inbox.refuse = True
    [job_id] = await sweep(configured, team.ctx)
    row = await job_row(owner, job_id)
    assert row["state"] == "queued" and row["attempts"] == 1
    assert "did not take the mail" in row["error"]
    for query in (
        "SELECT count(*) FROM notifications_sent WHERE tenant_id = $1",
        "SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND action = 'notification.sent'",
    ):
        assert await owner.fetchval(query, team.ctx.tenant_id) == 0, query
    smtp.inbox.refuse = False
    worker = Worker(configured, handlers={tasks.WORK_NOTIFY: tasks.work_notify}, periodic=[])
    running = asyncio.create_task(worker.run())

    async def done() -> bool:
        return bool((await job_row(owner, job_id))["state"] == "done")

    try:
        await until(done, 30)
    finally:
        worker.stop()
        await asyncio.wait_for(running, 30)
    assert len(smtp.inbox.to(team["approver"].actor.email)) == 1


async def test_without_a_mail_server_nothing_is_enqueued_or_sent(
    settings: Settings, team: Team, smtp: Smtp, owner: asyncpg.Connection
) -> None:
    assert settings.smtp_url is None
    assert tasks.WORK_NOTIFY not in {p.kind for p in periodic_jobs(settings)}
    assert tasks.WORK_NOTIFY not in {
        p.kind for p in periodic_jobs(replace(settings, smtp_url=smtp.url, notify_seconds=0))
    }
    on = periodic_jobs(replace(settings, smtp_url=smtp.url))
    assert [p.seconds for p in on if p.kind == tasks.WORK_NOTIFY] == [300]
    # A worker of an installation without mail enqueues no sweep ...
    worker = Worker(fast(settings), handlers={}, periodic=None)
    await asyncio.wait_for(worker.run(until_idle=True), 30)
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM background_jobs WHERE dedupe_key LIKE 'work.notify:%'"
        )
        == 0
    )
    # ... and a sweep asked for anyway sends nothing and records nothing.
    await _submitted(settings, team, "Unmailed recipe")
    [job_id] = await sweep(fast(settings), team.ctx)
    assert (await job_row(owner, job_id))["state"] == "done"
    assert smtp.inbox.messages == []
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM notifications_sent WHERE tenant_id = $1", team.ctx.tenant_id
        )
        == 0
    )


async def test_the_account_page_switches_the_mails_off_and_on_audited(
    app: Any, team: Team, owner: asyncpg.Connection
) -> None:
    qa2 = team["qa2"].actor
    client, anonymous = Browser(app), Browser(app)
    try:
        # Not signed in: sent to sign in, nothing changed.
        nobody = await anonymous.send("POST", "/account/notifications", data={})
        assert nobody.status_code in (303, 401)
        assert (await client.login(qa2.email, PASSWORD)).status_code == 303
        page = (await client.get("/account")).text
        assert re.search(r'name="notify_by_email" value="on"[^>]*checked', page)
        assert "This installation sends no e-mail yet" in page
        # No CSRF token: refused, nothing changed.
        refused = await client.http.post("/account/notifications", data={})
        assert refused.status_code == 403
        assert await identity.notify_by_email(qa2.id) is True  # type: ignore[arg-type]
        bad = await client.send("POST", "/account/notifications", data={"notify_by_email": "x"})
        assert bad.status_code == 422 and "on or off" in bad.text
        off = await client.send("POST", "/account/notifications", data={})
        assert off.status_code == 200 and "will not be e-mailed" in off.text
        assert await identity.notify_by_email(qa2.id) is False  # type: ignore[arg-type]
        on = await client.send(
            "POST",
            "/account/notifications",
            data={"notify_by_email": "on"},
            headers={"hx-request": "true"},
        )
        assert on.status_code == 200 and 'id="notifications-form"' in on.text
        assert "<html" not in on.text
        assert await identity.notify_by_email(qa2.id) is True  # type: ignore[arg-type]
    finally:
        await client.close()
        await anonymous.close()
    from opencdmo.audit import service as audit

    await audit.drain()
    events = await owner.fetch(
        "SELECT detail FROM security_events WHERE action = 'user.notifications_changed' "
        "AND detail->>'email' = $1 ORDER BY seq",
        qa2.email,
    )
    assert [json.loads(e["detail"])["notify_by_email"] for e in events] == [False, True]


async def test_two_changes_at_once_are_one_change(team: Team, owner: asyncpg.Connection) -> None:
    qa2 = team["qa2"].actor
    assert qa2.id is not None
    changed = await asyncio.gather(
        identity.set_notify_by_email(qa2.id, False, RequestMeta()),
        identity.set_notify_by_email(qa2.id, False, RequestMeta()),
    )
    assert sorted(changed) == [False, True]
    from opencdmo.audit import service as audit

    await audit.drain()
    events = await owner.fetchval(
        "SELECT count(*) FROM security_events WHERE action = 'user.notifications_changed' "
        "AND detail->>'email' = $1",
        qa2.email,
    )
    assert events == 1


async def test_the_password_comes_from_the_named_variable_and_a_wrong_one_is_retried(
    settings: Settings,
    team: Team,
    smtp_auth: Smtp,
    owner: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configured = replace(mailing(settings, smtp_auth), smtp_password_env="TEST_SMTP_PASSWORD")
    await _submitted(configured, team, "Authenticated recipe")
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    [refused] = await sweep(configured, team.ctx)
    row = await job_row(owner, refused)
    assert row["state"] == "queued" and "did not take the mail" in row["error"]
    assert smtp_auth.inbox.messages == []
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "pw-1")
    await notify.notify_tenant(configured, team.ctx)
    assert len(smtp_auth.inbox.to(team["approver"].actor.email)) == 1
    await owner.execute("UPDATE background_jobs SET state = 'done' WHERE id = $1", refused)
