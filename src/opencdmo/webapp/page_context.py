"""What every page gets besides its own context: who asks, the menu their roles open, their
tenants (for the switcher) and, signed in to a tenant, how many items await their action
(the top bar's notification count). Installed as the kit's page context by the app."""

from __future__ import annotations

from typing import Any

from litestar import Request

from opencdmo.access.service import can_somewhere
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
    if principal.ctx is not None:
        for obj, act in NAVIGATION:
            # Held in the whole tenant or at one site at least (a site role opens its menu;
            # the service checks the site of each record).
            if await can_somewhere(principal.ctx, obj, act):
                allowed.add(f"{obj}:{act}")
        if principal.session is not None:
            notifications = await count_for(request, principal.ctx)
    return {
        "allowed": allowed,
        "principal": principal,
        "actor": principal.actor,
        "ctx": principal.ctx,
        "tenants": await user_tenants(member_of),
        "notifications": notifications,
        "request": request,
    }
