"""Guards declare intent: ``opt=requires("members", "manage")`` on every tenant route; the
adapter gives each tenant route the tenant guard and scope
(``webapp.tenant_guard.protect_tenant_routes``)."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from opencdmo.errors import NotAuthenticated
from opencdmo.web.principal import principal_of

PERMISSION = "permission"


def requires(obj: str, act: str) -> dict[str, Any]:
    return {PERMISSION: (obj, act)}


async def signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """For routes outside a tenant that need a browser session (my account)."""
    principal = principal_of(connection.scope)
    if principal.actor is None:
        raise NotAuthenticated("Sign in to continue.")
