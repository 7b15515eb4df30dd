"""API structs of the tenancy context."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from msgspec import Meta, Struct


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


class MemberAdd(Struct):
    email: str
    roles: list[str]
    full_name: str | None = None
    initial_password: str | None = None


class RolesUpdate(Struct):
    roles: list[str]
    reason: str | None = None


class MemberStatus(Struct):
    active: bool
    reason: str | None = None


class SiteRoleChange(Struct):
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
