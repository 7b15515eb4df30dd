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
# A reading route (GET) that also writes (it records what it does): it opens its own unit of
# work instead of running in the read view the app gives reading routes.
WRITES = "writes"
# A permission that may be granted at a site only: the guard lets a member through who holds
# it at any site, and the service checks it at the site the request is about.
SITE_SCOPED = "site_scoped"
# A route that takes an uploaded file: the app lets its body be as large as the upload limit.
UPLOADS = "uploads"
# A route that takes a tech-transfer package: its body may be as large as the package limit.
PACKAGE_UPLOADS = "package_uploads"
# A route that reads its body itself (JSON, or multipart with a file): the type its JSON body
# is checked against before the handler runs, as a declared ``data`` body would be.
JSON_BODY = "json_body"
# The part of such a route's multipart body that holds that JSON (checked the same way).
JSON_PART = "json_part"


def requires(
    obj: str, act: str, *, writes: bool = False, site_scoped: bool = False, uploads: bool = False
) -> dict[str, Any]:
    return {
        PERMISSION: (obj, act),
        **({WRITES: True} if writes else {}),
        **({SITE_SCOPED: True} if site_scoped else {}),
        **({UPLOADS: True} if uploads else {}),
    }


async def signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """For routes outside a tenant that need a browser session (my account)."""
    principal = principal_of(connection.scope)
    if principal.actor is None:
        raise NotAuthenticated("Sign in to continue.")
