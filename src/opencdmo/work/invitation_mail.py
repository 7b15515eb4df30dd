"""An invitation e-mailed to the person invited: what the job ``tenancy.invitation_mail``
does (enqueued with the invitation, where a mail server is configured).

The mail carries the accept link, so it goes only while the invitation can still be
accepted: one revoked, accepted or expired before the worker gets to it is not mailed. The
mail and its ``invitation.mailed`` audit event are one unit of work with the invitation's
row locked, so two runs of one job mail once (a retry after the server took the mail but
before the commit mails again: at least once, as the digests). A refused mail is recorded on
the invitation (the members page shows it) and raised, so the job is retried with backoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from opencdmo.audit import service as audit
from opencdmo.db.tx import unit_of_work
from opencdmo.errors import ValidationFailed
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import invitations
from opencdmo.tenancy.queries import invitations as queries
from opencdmo.tenancy.queries.invitations import InvitationRow
from opencdmo.work import mail
from opencdmo.work.notify import base_url


@dataclass(frozen=True)
class Sent:
    mailed: bool  # False: nothing to send (no longer pending, or mailed already)


async def send(settings: Settings, ctx: TenantContext, invitation_id: UUID, sealed: str) -> Sent:
    """Mail the invitation (``ctx``: the system's scope in its tenant). A token this
    installation cannot open (its secret key changed) is recorded as the mail's failure and
    not retried: no retry could open it."""
    try:
        token = invitations.opened_token(settings, invitation_id, sealed)
    except ValidationFailed as exc:
        async with unit_of_work(ctx):
            await queries.set_mail(invitation_id, "failed", error=exc.message[:2000])
        return Sent(False)
    try:
        async with unit_of_work(ctx):
            found = await queries.invitation(invitation_id, lock=True)
            if found is None or found.status != "pending" or found.expired:
                return Sent(False)
            if found.mail_state == "sent":
                return Sent(False)
            await queries.set_mail(invitation_id, "sent", sent=True)
            await audit.record(
                ctx, "invitation.mailed", "invitation", invitation_id, new={"email": found.email}
            )
            await mail.send(settings, message(settings, ctx, found, token))
    except mail.MailFailed as exc:
        async with unit_of_work(ctx):
            await queries.set_mail(invitation_id, "failed", error=exc.message[:2000])
        raise
    return Sent(True)


def message(settings: Settings, ctx: TenantContext, found: InvitationRow, token: str) -> mail.Mail:
    subject = f"You are invited to {ctx.name} on OpenCDMO"
    values = {
        "tenant": ctx.name,
        "invited_by": found.invited_by_name,
        "roles": list(found.roles),
        "link": base_url(settings) + invitations.accept_path(token),
        "expires_at": found.expires_at,
        "zone": ctx.time_zone,
    }
    return mail.from_templates(found.email, subject, "tenancy/invitation_mail", values)
