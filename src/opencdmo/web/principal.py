"""Who is asking, and in which tenant, as the adapter's middleware found it (``webapp``):
what routes read (``principal_of(request.scope)``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opencdmo.scope import Actor, ExpiredToken, RequestMeta, SessionUser, TenantContext

SESSION_COOKIE = "opencdmo_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Principal:
    actor: Actor | None = None
    session: SessionUser | None = None
    session_token: str | None = None
    bearer: str | None = None
    expired_token: ExpiredToken | None = None
    slug: str | None = None
    ctx: TenantContext | None = None
    meta: RequestMeta = field(default_factory=RequestMeta)


def principal_of(scope: Any) -> Principal:
    value = scope.get("state", {}).get("principal")
    return value if isinstance(value, Principal) else Principal()
