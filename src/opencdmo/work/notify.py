"""E-mail digests of work awaiting people (the ``work.notify`` job).

For each active member of a tenant who wants mail (``users.notify_by_email``, an active
account), the queues awaiting their own action (``action=True``) that their roles let them
see, read as that member: the items not mailed to them before go out in one digest per
member and tenant, plain text and HTML (both from templates, escaped).

Once only, with two sweeps at once: in one unit of work per member, the items are recorded
in ``notifications_sent`` first (``INSERT ... ON CONFLICT DO NOTHING``, unique per tenant,
person and item), then the ``notification.sent`` audit event is written, then the mail is
handed to the server, then the unit commits. A second sweep inserting the same items waits on
the first's uncommitted rows and, once those commit, inserts nothing: it mails nothing. A
mail the server refuses rolls the unit back (nothing recorded) and the job is retried. The
one gap is at-least-once: the server took the mail and the commit then failed (the database
lost), and the next sweep mails those items again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from uuid import UUID

from opencdmo.audit import service as audit
from opencdmo.db.tx import unit_of_work
from opencdmo.identity import service as identity
from opencdmo.scope import Actor, TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from opencdmo.work import mail, registry, sent
from opencdmo.work.registry import QueueItem

log = logging.getLogger("opencdmo.work.notify")

JOB = "work.notify"
PER_QUEUE = registry.MAX_SHOWN  # the items of each queue one sweep looks at


@dataclass(frozen=True)
class Recipient:
    user_id: UUID
    membership_id: UUID
    email: str
    full_name: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class DigestItem:
    label: str
    note: str | None
    url: str


async def recipients(ctx: TenantContext) -> list[Recipient]:
    """The tenant's active members whose accounts are active and who want mail."""
    members = [m for m in await tenancy.list_members(ctx) if m.is_active and m.user_active]
    wanting = await identity.wanting_mail([m.user_id for m in members])
    return [
        Recipient(m.user_id, m.id, m.email, m.full_name, m.roles)
        for m in members
        if m.user_id in wanting
    ]


def as_member(ctx: TenantContext, person: Recipient) -> TenantContext:
    """The member's scope in the tenant, as the resolver mints it for them."""
    actor = Actor(person.user_id, person.email, person.full_name)
    return replace(ctx, actor=actor, membership_id=person.membership_id, roles=person.roles)


async def notify_tenant(settings: Settings, ctx: TenantContext) -> int:
    """Mail each member of the tenant their new items (``ctx``: the system's scope in it);
    the digests sent. A member whose mail fails does not stop the others; the failure is
    raised once all were tried, so the job is retried (those mailed are not mailed again)."""
    count, failed = 0, None
    for person in await recipients(ctx):
        try:
            count += await notify_member(settings, ctx, person)
        except mail.MailFailed as exc:
            log.warning("notification to %s in %s failed: %s", person.email, ctx.slug, exc)
            failed = exc
    if failed is not None:
        raise failed
    return count


async def awaiting(member: TenantContext) -> list[QueueItem]:
    """The items of every queue awaiting the member's own action that they may see."""
    providers = [p for p in await registry.visible(member) if p.action]
    items: list[QueueItem] = []
    for provider in providers:
        items += (await provider.fetch(member, PER_QUEUE)).items
    return items


async def notify_member(settings: Settings, ctx: TenantContext, person: Recipient) -> int:
    """One digest of the member's items not mailed before (1), or nothing to send (0)."""
    member = as_member(ctx, person)
    async with unit_of_work(ctx):
        items = {sent.key(i): i for i in await awaiting(member)}
        new = await sent.claim(ctx, person.user_id, {k: i.link for k, i in items.items()})
        if not new:
            return 0
        fresh = [items[k] for k in items if k in new]
        await audit.record(
            ctx,
            "notification.sent",
            "user",
            person.user_id,
            new={"email": person.email, "items": len(fresh), "links": [i.link for i in fresh]},
        )
        await mail.send(settings, digest(settings, ctx, person, fresh))
    return 1


def base_url(settings: Settings) -> str:
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def digest(
    settings: Settings, ctx: TenantContext, person: Recipient, items: list[QueueItem]
) -> mail.Mail:
    base = base_url(settings)
    shown = [DigestItem(i.label, i.note, base + i.link) for i in items]
    many = "item awaits" if len(shown) == 1 else "items await"
    subject = f"{len(shown)} new {many} your action in {ctx.name}"
    values = {
        "name": person.full_name,
        "tenant": ctx.name,
        "items": shown,
        "dashboard": f"{base}/t/{ctx.slug}/",
        "account": f"{base}/account",
    }
    return mail.from_templates(person.email, subject, "work/digest", values)
