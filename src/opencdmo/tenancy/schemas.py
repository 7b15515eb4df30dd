"""API structs of the tenancy context."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from msgspec import Meta, Struct

from opencdmo.fields import Email, Key, Text


class SiteOut(Struct):
    code: str
    name: str
    time_zone: str


class TenantOut(Struct):
    slug: str
    name: str
    kind: str
    sites: list[SiteOut]
    my_roles: list[str]


class MemberOut(Struct):
    id: UUID
    user_id: UUID
    email: str
    full_name: str
    is_active: bool
    roles: list[str]
    created_at: datetime


Roles = Annotated[list[Key], Meta(max_length=20)]


class RolesUpdate(Struct, forbid_unknown_fields=True):
    roles: Roles
    reason: Text = ""  # required when the roles change (422 otherwise)


class MemberStatus(Struct, forbid_unknown_fields=True):
    active: bool
    reason: Text = ""  # required when the status changes (422 otherwise)


class InvitationCreate(Struct, forbid_unknown_fields=True):
    """Only an address and roles: an invitation sets nothing on an account."""

    email: Email
    roles: Roles


class InvitationOut(Struct):
    id: UUID
    email: str
    roles: list[str]
    invited_by: str
    created_at: datetime
    expires_at: datetime
    status: str  # pending or expired (accepted and revoked ones are no longer listed)
    # E-mailed by the job worker where a mail server is configured: queued, sent or failed
    # (None: not e-mailed); when it was sent, and why it failed.
    mail: str | None = None
    mailed_at: datetime | None = None
    mail_error: str | None = None


class InvitationCreated(Struct):
    """The link works once; this response is the only place it is shown."""

    invitation: InvitationOut
    accept_url: str
    token: str


class SiteRoleChange(Struct, forbid_unknown_fields=True):
    """Grant or revoke one role at one site (by the site's code), with the reason."""

    site: Annotated[str, Meta(min_length=1, max_length=64)]
    role: Annotated[str, Meta(min_length=1, max_length=64)]
    reason: Annotated[str, Meta(max_length=2000)]


class SiteRoleOut(Struct):
    site: str
    role: str


class SiteRoleResult(Struct):
    changed: bool
    site_roles: list[SiteRoleOut]
