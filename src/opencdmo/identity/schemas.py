"""API structs of the identity context."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from msgspec import Meta, Struct

from opencdmo.fields import Name, Secret

Days = Annotated[int, Meta(ge=1, le=3650, description="Days the token is valid (tenant limits)")]


class TenantRef(Struct):
    slug: str
    name: str
    kind: str


class Me(Struct):
    id: UUID
    email: str
    full_name: str
    tenants: list[TenantRef]


class TokenCreate(Struct, forbid_unknown_fields=True):
    name: Name = "API token"
    days: Days | None = None  # the tenant's default when left out


class TokenOut(Struct):
    id: UUID
    name: str
    prefix: str
    user_id: UUID
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    user_name: str | None = None


class TokenCreated(Struct):
    token: str
    details: TokenOut


class PasswordChange(Struct, forbid_unknown_fields=True):
    current_password: Secret
    new_password: Secret
