"""CSRF on every unsafe method (forms and htmx alike), except bearer-token API calls.

A bearer token is never sent by a browser on its own, so a request that carries one cannot be
forged cross-site; the principal middleware then ignores any session cookie on it.
"""

from __future__ import annotations

from litestar.config.csrf import CSRFConfig
from litestar.enums import ScopeType
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from opencdmo.settings import Settings

CSRF_COOKIE = "opencdmo_csrf"
CSRF_HEADER = "x-csrftoken"


def csrf_config(settings: Settings) -> CSRFConfig:
    return CSRFConfig(
        secret=settings.resolved_secret_key(),
        cookie_name=CSRF_COOKIE,
        header_name=CSRF_HEADER,
        cookie_secure=settings.cookie_secure,
        cookie_httponly=True,
        cookie_samesite="lax",
        exclude=["/static", "/healthz", "/readyz"],
    )


def _has_bearer(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value[:7].lower() == b"bearer "
    return False


class BearerAwareCSRF:
    def __init__(self, app: ASGIApp, config: CSRFConfig) -> None:
        self.app = app
        self.csrf = CSRFMiddleware(app, config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and _has_bearer(scope):
            await self.app(scope, receive, send)
            return
        await self.csrf(scope, receive, send)
