"""Invitations e-mailed by the job worker (``tenancy.invitation_mail``), against a real SMTP
server (aiosmtpd) on 127.0.0.1: the mail carries the accept link, which works; the job never
holds the token in the clear; an invitation is mailed once (the job run twice, or two runs
at once), not at all once it is revoked or without a mail server; a refused mail is shown
on the Members page and retried; everything mailed is audited. The invite form of a server
configured with a mail server says the link is being e-mailed."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, replace
from email.message import EmailMessage
from uuid import UUID

import asyncpg
import pytest
from litestar import Litestar

from opencdmo.audit import queries as audit_queries
from opencdmo.audit import sentences
from opencdmo.db.tx import read_view
from opencdmo.db.urls import DatabaseUrls
from opencdmo.errors import ValidationFailed
from opencdmo.jobs import tasks
from opencdmo.jobs.worker import Worker
from opencdmo.scope import SYSTEM, RequestMeta
from opencdmo.settings import Settings
from opencdmo.tenancy import invitations
from opencdmo.tenancy import service as tenancy
from opencdmo.tenancy.queries.invitations import InvitationRow
from opencdmo.work import invitation_mail
from tests.conftest import PASSWORD, Browser
from tests.integration.test_invitations import Org, new_org, signed_in
from tests.integration.test_jobs import job_row
from tests.integration.test_notifications import PUBLIC, Smtp, mailing, smtp
from tests.servers import served

__all__ = ["smtp"]  # the SMTP server fixture


@pytest.fixture(autouse=True)
def _bound(app: Litestar) -> None:
    """The app binds the database engine the services use."""


async def run_mail_jobs(settings: Settings) -> None:
    worker = Worker(settings, handlers={tasks.INVITATION_MAIL: tasks.invitation_email}, periodic=[])
    await asyncio.wait_for(worker.run(until_idle=True), 60)


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


async def _mail_job(owner: asyncpg.Connection, invitation_id: UUID) -> asyncpg.Record:
    row = await owner.fetchrow(
        "SELECT * FROM background_jobs WHERE kind = $1 AND args->>'invitation_id' = $2",
        tasks.INVITATION_MAIL,
        str(invitation_id),
    )
    assert row is not None
    return row


@dataclass(frozen=True)
class Invited:
    org: Org
    settings: Settings  # with the SMTP server
    invitation: InvitationRow
    token: str


async def invited(settings: Settings, smtp: Smtp, email: str, role: str = "viewer") -> Invited:
    """An invitation to a new organisation, made where the SMTP server is configured."""
    org = await new_org()
    configured = mailing(settings, smtp)
    made, token = await invitations.invite(org.ctx, email, [role], hours=24, mail_with=configured)
    return Invited(org, configured, made, token)


async def test_an_invitation_is_mailed_with_a_link_that_works_and_the_job_never_holds_it(
    app: Litestar, settings: Settings, smtp: Smtp, owner: asyncpg.Connection
) -> None:
    made_by = await invited(settings, smtp, "New.Person@Example.org", "process_engineer")
    org, configured, made = made_by.org, made_by.settings, made_by.invitation
    token = made_by.token
    assert made.mail_state == "queued"
    job = await _mail_job(owner, made.id)
    carried = json.dumps(_args(job))
    assert token.split(".", 1)[1] not in carried and "token" in _args(job)
    assert smtp.inbox.messages == []  # the request sent nothing: the worker does

    await run_mail_jobs(configured)
    [message] = smtp.inbox.to("new.person@example.org")
    assert "invited to Org" in message["Subject"]
    text = _text(message)
    [link] = re.findall(r"https://cdmo\.example/invitations/accept\?token=\S+", text)
    assert link == PUBLIC + invitations.accept_path(token)
    assert "Process engineer" in text or "process engineer" in text.lower()
    html = message.get_body(("html",))
    assert html is not None and f'href="{link}"' in str(html.get_content())
    offered = await invitations.offer(link.split("token=", 1)[1], RequestMeta())
    assert offered.invitation.id == made.id
    row = await owner.fetchrow(
        "SELECT mail_state, mailed_at, mail_error FROM invitations WHERE id = $1", made.id
    )
    assert row["mail_state"] == "sent" and row["mailed_at"] is not None
    assert row["mail_error"] is None
    events = await owner.fetch(
        "SELECT actor_id, new_values FROM audit_events WHERE tenant_id = $1 "
        "AND action = 'invitation.mailed' AND entity_id = $2",
        org.ctx.tenant_id,
        str(made.id),
    )
    assert len(events) == 1 and json.loads(events[0]["new_values"]) == {"email": made.email}
    async with read_view(org.ctx):
        asked = audit_queries.parse_filter(org.ctx, None, None, "invitation.mailed", None, None)
        rows, _ = await audit_queries.page(org.ctx, asked, limit=5, before=None)
        [said] = await sentences.describe(org.ctx, rows)
    assert said.text == "OpenCDMO system e-mailed the invitation to new.person@example.org"

    # The job run again (a worker killed before it marked the job done) mails nothing.
    assert not (await _run_again(configured, org, job)).mailed
    assert len(smtp.inbox.messages) == 1

    admin = await signed_in(app, org.admin_email)
    page = (await admin.get(f"/t/{org.ctx.slug}/members")).text
    assert "Sent " in page.split(f'id="invitation-{made.id}"', 1)[1].split("</tr>", 1)[0]
    listed = (await admin.get(f"/api/v1/t/{org.ctx.slug}/invitations")).json()
    [out] = [i for i in listed if i["id"] == str(made.id)]
    assert out["mail"] == "sent" and out["mailed_at"] is not None


async def test_the_invite_form_of_a_server_with_a_mail_server_says_the_link_is_being_mailed(
    database: DatabaseUrls, settings: Settings, smtp: Smtp, owner: asyncpg.Connection
) -> None:
    """The Members page's invite form on a server as deployed with a mail server (the
    in-process app has none): the page says the link is being e-mailed, the invitation is
    listed as being sent, and the worker mails the very link the page showed."""
    org = await new_org()
    configured = mailing(settings, smtp)
    assert configured.smtp_url and configured.public_url and configured.mail_from
    mail_settings = {
        "OPENCDMO_SMTP_URL": configured.smtp_url,
        "OPENCDMO_PUBLIC_URL": configured.public_url,
        "OPENCDMO_MAIL_FROM": configured.mail_from,
    }
    async with served(database, settings, **mail_settings) as base:
        admin = Browser(None, base_url=base)
        try:
            assert (await admin.login(org.admin_email, PASSWORD)).status_code == 303
            form = await admin.send(
                "POST",
                f"/t/{org.ctx.slug}/invitations",
                data={"email": "by.form@example.org", "roles": "viewer"},
            )
            assert form.status_code == 200, form.text
            assert "Invitation for by.form@example.org created: it is being e-mailed." in form.text
            assert "It is being e-mailed to the person you invited" in form.text
            [shown] = re.findall(r'<code class="token">([^<]+)</code>', form.text)
            made = await owner.fetchrow(
                "SELECT id, mail_state FROM invitations WHERE email = $1", "by.form@example.org"
            )
            assert made["mail_state"] == "queued"
            row = form.text.split(f'id="invitation-{made["id"]}"', 1)[1].split("</tr>", 1)[0]
            assert "Being sent" in row
        finally:
            await admin.close()
    assert smtp.inbox.messages == []  # the request sent nothing: the worker does
    await run_mail_jobs(configured)
    [message] = smtp.inbox.to("by.form@example.org")
    assert shown.startswith(PUBLIC) and shown in _text(message)


def _args(job: asyncpg.Record) -> dict[str, str]:
    args = job["args"]
    return dict(json.loads(args) if isinstance(args, str) else args)


async def _run_again(settings: Settings, org: Org, job: asyncpg.Record) -> invitation_mail.Sent:
    """What the job does, once more, as the worker runs it (the system's scope)."""
    system = await tenancy.internal_context(org.ctx.tenant_id, SYSTEM, RequestMeta())
    assert system is not None
    args = _args(job)
    return await invitation_mail.send(settings, system, UUID(args["invitation_id"]), args["token"])


async def test_two_runs_at_once_mail_once(
    settings: Settings, smtp: Smtp, owner: asyncpg.Connection
) -> None:
    made_by = await invited(settings, smtp, "twice@example.org")
    org, configured, made = made_by.org, made_by.settings, made_by.invitation
    job = await _mail_job(owner, made.id)
    done = await asyncio.gather(*(_run_again(configured, org, job) for _ in range(2)))
    assert sorted(d.mailed for d in done) == [False, True]
    assert len(smtp.inbox.to("twice@example.org")) == 1
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM audit_events WHERE action = 'invitation.mailed' "
            "AND entity_id = $1",
            str(made.id),
        )
        == 1
    )


async def test_a_revoked_invitation_is_not_mailed(
    settings: Settings, smtp: Smtp, owner: asyncpg.Connection
) -> None:
    made_by = await invited(settings, smtp, "withdrawn@example.org")
    org, configured, made = made_by.org, made_by.settings, made_by.invitation
    await invitations.revoke(org.ctx, made.id)
    await run_mail_jobs(configured)
    assert smtp.inbox.messages == []
    assert (await job_row(owner, (await _mail_job(owner, made.id))["id"]))["state"] == "done"


async def test_a_refused_mail_shows_on_the_members_page_and_is_retried(
    app: Litestar, settings: Settings, smtp: Smtp, owner: asyncpg.Connection
) -> None:
    made_by = await invited(settings, smtp, "later@example.org")
    org, configured, made = made_by.org, made_by.settings, made_by.invitation
    smtp.inbox.refuse = True
    await run_mail_jobs(configured)
    job = await job_row(owner, (await _mail_job(owner, made.id))["id"])
    assert job["state"] == "queued" and job["attempts"] == 1  # to be retried, with backoff
    row = await owner.fetchrow(
        "SELECT mail_state, mail_error FROM invitations WHERE id = $1", made.id
    )
    assert row["mail_state"] == "failed" and "did not take the mail" in row["mail_error"]
    assert "it answered 451 4.3.0 Try again later" in row["mail_error"]
    assert "b'" not in row["mail_error"]  # the server's words, not a repr of its bytes
    admin = await signed_in(app, org.admin_email)
    shown = (await admin.get(f"/t/{org.ctx.slug}/members")).text
    line = shown.split(f'id="invitation-{made.id}"', 1)[1].split("</tr>", 1)[0]
    assert "Not sent" in line and "did not take the mail" in line

    smtp.inbox.refuse = False
    await owner.execute("UPDATE background_jobs SET run_after = now() WHERE id = $1", job["id"])
    await run_mail_jobs(configured)
    assert len(smtp.inbox.to("later@example.org")) == 1
    row = await owner.fetchrow(
        "SELECT mail_state, mail_error FROM invitations WHERE id = $1", made.id
    )
    assert row["mail_state"] == "sent" and row["mail_error"] is None


async def test_without_a_mail_server_nothing_is_enqueued(
    settings: Settings, owner: asyncpg.Connection
) -> None:
    assert settings.smtp_url is None
    org = await new_org()
    made, _ = await invitations.invite(
        org.ctx, "unmailed@example.org", ["viewer"], hours=24, mail_with=settings
    )
    assert made.mail_state is None
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM background_jobs WHERE kind = $1 AND args->>'invitation_id' = $2",
            tasks.INVITATION_MAIL,
            str(made.id),
        )
        == 0
    )


async def test_a_token_sealed_for_another_invitation_or_key_is_refused(
    settings: Settings,
) -> None:
    one, other = UUID(int=1), UUID(int=2)
    sealed = invitations.sealed_token(settings, one, "tenant.secret-token")
    assert invitations.opened_token(settings, one, sealed) == "tenant.secret-token"
    for wrong_id, wrong_sealed in ((other, sealed), (one, sealed[:-4] + "AAAA"), (one, "%%")):
        with pytest.raises(ValidationFailed, match="sealed for it"):
            invitations.opened_token(settings, wrong_id, wrong_sealed)
    rekeyed = replace(settings, secret_key="another installation")
    with pytest.raises(ValidationFailed):
        invitations.opened_token(rekeyed, one, sealed)


async def test_a_token_this_installation_cannot_open_fails_the_mail_once(
    settings: Settings, smtp: Smtp, owner: asyncpg.Connection
) -> None:
    """The secret key changed between the invitation and its mail: the mail is marked not
    sent, with why, and the job is not retried (no retry could open the token)."""
    made_by = await invited(settings, smtp, "rekeyed@example.org")
    rekeyed = replace(made_by.settings, secret_key="a new secret key")
    await run_mail_jobs(rekeyed)
    assert smtp.inbox.messages == []
    job = await job_row(owner, (await _mail_job(owner, made_by.invitation.id))["id"])
    assert job["state"] == "done" and job["attempts"] == 1
    row = await owner.fetchrow(
        "SELECT mail_state, mail_error FROM invitations WHERE id = $1", made_by.invitation.id
    )
    assert row["mail_state"] == "failed" and "secret key changed" in row["mail_error"]
