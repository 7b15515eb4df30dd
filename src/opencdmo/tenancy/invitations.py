"""Invitations: how a person joins a tenant (a tenant admin never creates or changes accounts).

A tenant admin invites an email address with the roles offered. The answer is the same whether
or not the platform knows the address, and nothing about an existing account (its name, its
other tenants) is read into the tenant until the person accepts. The link carries a single-use
token (only its hash is stored) that expires; the person accepts by signing in with their
account, or, for an address without one, by choosing their printed name and password.

Where a mail server is configured, the invitation is also e-mailed by the job worker
(``MAIL_JOB``, enqueued in the invitation's unit of work; ``opencdmo.work.invitation_mail``
sends it). The job carries the token sealed with AES-GCM under a key derived from the secret
key and bound to the invitation's id, so the database never holds it in the clear.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import uuid
from dataclasses import dataclass, replace
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db import jobs
from opencdmo.db.tx import tenant_transaction
from opencdmo.errors import Conflict, Gone, NotFound, ValidationFailed
from opencdmo.identity import service as identity
from opencdmo.scope import Actor, RequestMeta, TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import service
from opencdmo.tenancy.queries import invitations as queries
from opencdmo.tenancy.queries import members
from opencdmo.tenancy.queries.invitations import InvitationRow

INVALID = "This invitation link is not valid. Ask the person who invited you for a new one."
MAIL_JOB = "tenancy.invitation_mail"
_TOKEN = re.compile(r"^([a-z0-9][a-z0-9-]{0,48}[a-z0-9])\.([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class Offer:
    """What the person holding a valid link is shown: the tenant and the invitation."""

    ctx: TenantContext
    invitation: InvitationRow


@dataclass(frozen=True)
class Accepted:
    slug: str
    tenant_name: str
    email: str
    already_member: bool


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def accept_path(token: str) -> str:
    return f"/invitations/accept?token={token}"


def _token_key(settings: Settings) -> AESGCM:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"opencdmo", info=b"invitation token"
    ).derive(settings.resolved_secret_key().encode())
    return AESGCM(derived)


def sealed_token(settings: Settings, invitation_id: UUID, token: str) -> str:
    """The token as the mail job carries it: nonce and AES-GCM ciphertext, bound to the
    invitation (base64)."""
    nonce = os.urandom(12)
    sealed = _token_key(settings).encrypt(nonce, token.encode(), invitation_id.bytes)
    return base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def opened_token(settings: Settings, invitation_id: UUID, sealed: str) -> str:
    """The token a mail job carries; ``ValidationFailed`` when it was not sealed for this
    invitation with this installation's secret key."""
    try:
        raw = base64.urlsafe_b64decode(sealed.encode("ascii"))
        token = _token_key(settings).decrypt(raw[:12], raw[12:], invitation_id.bytes)
    except (ValueError, InvalidTag):
        raise ValidationFailed(
            "The invitation's mail job does not carry a token sealed for it by this "
            "installation (was the secret key changed?)."
        ) from None
    return token.decode()


# --- the tenant admin's side ------------------------------------------------------------------


async def invite(
    ctx: TenantContext,
    email: str,
    roles: list[str],
    *,
    hours: int,
    mail_with: Settings | None = None,
) -> tuple[InvitationRow, str]:
    """A pending invitation and its token (shown once). One pending invitation per address:
    a second, also a concurrent one, is a 409. With ``mail_with`` naming a mail server, it is
    e-mailed too: its mail job is enqueued in the same unit of work."""
    await authorize(ctx, "members", "manage")
    email = identity.normalise_email(email)
    wanted = service.check_roles(roles)
    if not wanted:
        raise ValidationFailed("Choose at least one role to offer.", details={"field": "roles"})
    if hours < 1:
        raise ValidationFailed("Invitations must stay valid for at least an hour.")
    token = f"{ctx.slug}.{secrets.token_urlsafe(32)}"
    async with tenant_transaction(ctx):
        await _refuse_members(email)
        await _close_expired(ctx, email)
        invitation = await queries.insert_invitation(
            ctx.tenant_id, email, wanted, _hash(token), ctx.actor.id, ctx.actor.full_name, hours
        )
        if invitation is None:
            raise Conflict(
                f"An invitation to {email} is already pending: revoke it to send a new one."
            )
        await audit.record(
            ctx,
            "invitation.created",
            "invitation",
            invitation.id,
            new={"email": email, "roles": wanted, "expires_at": invitation.expires_at.isoformat()},
        )
        if mail_with is not None and mail_with.smtp_url:
            sealed = sealed_token(mail_with, invitation.id, token)
            await jobs.enqueue_for(
                ctx, MAIL_JOB, {"invitation_id": str(invitation.id), "token": sealed}
            )
            await queries.set_mail(invitation.id, "queued")
            invitation = replace(invitation, mail_state="queued")
    return invitation, token


async def _refuse_members(email: str) -> None:
    """Only this tenant's own members are looked up: nothing about other tenants shows."""
    active = await members.membership_active_by_email(email)
    if active is True:
        raise Conflict(f"{email} is already a member of this tenant.")
    if active is False:
        raise Conflict(
            f"{email} is a deactivated member of this tenant: reactivate the membership instead."
        )


async def _close_expired(ctx: TenantContext, email: str) -> None:
    for invitation_id in await queries.expire_pending(email):
        await audit.record(
            ctx,
            "invitation.expired",
            "invitation",
            invitation_id,
            old={"status": "pending"},
            new={"status": "expired"},
        )


async def pending(ctx: TenantContext) -> list[InvitationRow]:
    """Invitations not yet accepted or revoked (expired ones show as such)."""
    async with tenant_transaction(ctx):
        return await queries.pending()


async def get(ctx: TenantContext, invitation_id: UUID) -> InvitationRow:
    async with tenant_transaction(ctx):
        invitation = await queries.invitation(invitation_id)
    if invitation is None:
        raise NotFound("No such invitation.")
    return invitation


async def revoke(ctx: TenantContext, invitation_id: UUID) -> InvitationRow:
    await authorize(ctx, "members", "manage")
    async with tenant_transaction(ctx):
        invitation = await queries.invitation(invitation_id, lock=True)
        if invitation is None:
            raise NotFound("No such invitation.")
        if invitation.status != "pending":
            raise Conflict(f"This invitation is already {invitation.status}.")
        await queries.close(invitation_id, "revoked")
        await audit.record(
            ctx,
            "invitation.revoked",
            "invitation",
            invitation_id,
            old={"status": "pending"},
            new={"status": "revoked", "email": invitation.email},
        )
    return invitation


# --- the invited person's side ----------------------------------------------------------------


async def _scope(token: str, actor: Actor, meta: RequestMeta) -> tuple[TenantContext, str]:
    match = _TOKEN.match(token or "")
    tenant = await service.tenant_by_slug(match.group(1)) if match else None
    ctx = await service.internal_context(tenant.id, actor, meta) if tenant else None
    if ctx is None:
        raise NotFound(INVALID)
    return ctx, _hash(token)


def _usable(invitation: InvitationRow | None) -> InvitationRow:
    """The invitation, if it can still be accepted; otherwise a clear refusal."""
    if invitation is None:
        raise NotFound(INVALID)
    if invitation.status == "accepted":
        raise Conflict("This invitation has already been accepted; it can be used only once.")
    if invitation.status == "revoked":
        raise Gone("This invitation was withdrawn. Ask the person who invited you for a new one.")
    if invitation.status == "expired" or invitation.expired:
        raise Gone("This invitation has expired. Ask the person who invited you for a new one.")
    return invitation


async def offer(token: str, meta: RequestMeta) -> Offer:
    """What a valid link offers (404, 409 or 410 otherwise); reads, changes nothing."""
    ctx, digest = await _scope(token, Actor(None, "invitee", "invited person"), meta)
    async with tenant_transaction(ctx):
        invitation = await queries.invitation_by_token(digest)
    return Offer(ctx, _usable(invitation))


async def accept(token: str, actor: Actor, meta: RequestMeta) -> Accepted:
    """Accept as an existing account whose owner has just proved it (signed in)."""
    if actor.id is None:
        raise ValidationFailed("Sign in to accept the invitation.")
    ctx, digest = await _scope(token, actor, meta)
    async with tenant_transaction(ctx):
        invitation = _usable(await queries.invitation_by_token(digest, lock=True))
        if invitation.email != actor.email:
            raise Conflict(
                f"This invitation is for {invitation.email}, and you are signed in as "
                f"{actor.email}: sign out, then open the link again."
            )
        return await _join(ctx, invitation, actor.id)


async def accept_as_new(token: str, full_name: str, password: str, meta: RequestMeta) -> Accepted:
    """Accept by creating the account for the invited address, with the person's own printed
    name and password. An address that already has an account must sign in instead."""
    found = await offer(token, meta)
    email = found.invitation.email
    name = identity.printed_name(full_name)
    password_hash = await identity.prepare_password(password, email)  # slow: no lock held
    user_id = uuid.uuid4()
    actor = Actor(user_id, email, name)
    ctx, digest = replace(found.ctx, actor=actor), _hash(token)
    async with tenant_transaction(ctx):
        invitation = _usable(await queries.invitation_by_token(digest, lock=True))
        if not await identity.insert_user(user_id, email, name, password_hash):
            raise Conflict(
                "This address already has an account: sign in with its password to accept."
            )
        accepted = await _join(ctx, invitation, user_id)
    await identity.record_created(actor, email, meta)
    return accepted


async def _join(ctx: TenantContext, invitation: InvitationRow, user_id: UUID) -> Accepted:
    already = await members.membership_of(user_id)
    if already is None:
        await service.enrol(ctx, user_id, invitation.roles)
    await queries.accepted(invitation.id, user_id)
    await audit.record(
        ctx,
        "invitation.accepted",
        "invitation",
        invitation.id,
        old={"status": "pending"},
        new={
            "status": "accepted",
            "user_id": user_id,
            "email": invitation.email,
            "already_member": already is not None,
        },
    )
    return Accepted(ctx.slug, ctx.name, invitation.email, already is not None)
