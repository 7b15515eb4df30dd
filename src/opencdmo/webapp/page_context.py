"""What every page gets besides its own context: who asks, the menu their roles open, their
tenants (for the switcher) and, signed in to a tenant, how many items await their action
(the top bar's notification count) and how they sign (the signature dialogs ask for it).
Installed as the kit's page context by the app."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar import Request

from opencdmo.access.service import can_somewhere
from opencdmo.identity.sso.service import signing_method
from opencdmo.tenancy.service import user_tenants
from opencdmo.web.principal import principal_of
from opencdmo.work.notifications import count_for

# The menu shows only what the member's roles open (pages also read these to offer actions).
NAVIGATION = (
    ("hub", "read"),
    ("hub", "install"),
    ("hub", "fork"),
    ("hub", "approve_publication"),
    ("hub", "publish"),
    ("recipes", "read"),
    ("recipes", "edit"),
    ("recipes", "submit"),
    ("recipes", "approve"),
    ("batches", "read"),
    ("batches", "create"),
    ("batches", "execute"),
    ("batches", "verify"),
    ("batches", "review"),
    ("batches", "deviate"),
    ("batches", "release"),
    ("materials", "read"),
    ("materials", "manage"),
    ("equipment", "read"),
    ("members", "read"),
    ("partners", "read"),
    ("audit", "read"),
    ("tokens", "use"),
    ("transfer", "export"),
    ("transfer", "import"),
    ("transfer", "trust"),
)


async def page_context(request: Request[Any, Any, Any]) -> dict[str, Any]:
    principal = principal_of(request.scope)
    member_of = principal.session.member_of if principal.session else ()
    allowed: set[str] = set()
    notifications: int | None = None
    signing: dict[str, str] | None = None
    if principal.ctx is not None:
        for obj, act in NAVIGATION:
            # Held in the whole tenant or at one site at least (a site role opens its menu;
            # the service checks the site of each record).
            if await can_somewhere(principal.ctx, obj, act):
                allowed.add(f"{obj}:{act}")
        if principal.session is not None:
            notifications = await count_for(request, principal.ctx)
        method = await signing_method(principal.ctx)
        signing = {
            "method": method.method,
            "provider": method.provider,
            "slug": principal.ctx.slug,
            "back": _this_page(request),
        }
    return {
        "allowed": allowed,
        "principal": principal,
        "actor": principal.actor,
        "ctx": principal.ctx,
        "tenants": await user_tenants(member_of),
        "notifications": notifications,
        "signing": signing,
        "request": request,
    }


def _this_page(request: Request[Any, Any, Any]) -> str:
    """The page the person is on (for htmx, the page that asked, not the fragment's address):
    where a re-authentication for a signature leads back to."""
    current = request.headers.get("hx-current-url")
    if current:
        parts = urlsplit(current)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")
