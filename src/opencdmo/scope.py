"""The typed tenant scope. Only the resolver (and provisioning code) mints one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True)
class Actor:
    """Who acts: a signed-in user, an API token's user, or the system (CLI provisioning)."""

    id: UUID | None
    email: str
    full_name: str

    @property
    def is_system(self) -> bool:
        return self.id is None


SYSTEM = Actor(id=None, email="system", full_name="OpenCDMO system")


@dataclass(frozen=True)
class RequestMeta:
    """Where a request came from. ``request_id`` is always the server's own; a well-formed id
    the client sent is kept apart as ``client_request_id``. ``credential`` names what
    authenticated it (``session:<id>`` or ``token:<id>``): password re-entry is throttled per
    credential."""

    request_id: str | None = None
    address: str | None = None
    client_request_id: str | None = None
    credential: str | None = None


@dataclass(frozen=True)
class TenantContext:
    tenant_id: UUID
    slug: str
    name: str
    kind: str
    actor: Actor
    membership_id: UUID | None
    roles: tuple[str, ...]
    policy_version: int
    time_zone: str = "UTC"
    meta: RequestMeta = field(default_factory=RequestMeta)

    @property
    def user_id(self) -> UUID | None:
        return self.actor.id


@dataclass(frozen=True)
class SessionUser:
    session_id: UUID
    user_id: UUID
    email: str
    full_name: str
    member_of: tuple[UUID, ...] = ()
    tenants_entered: tuple[UUID, ...] = ()  # the tenants this session's sign-in is recorded in


@dataclass(frozen=True)
class ExpiredToken:
    """A bearer token that would be valid here but for its expiry."""

    tenant_id: UUID
    token_id: UUID
    actor: Actor
    expired_at: datetime
