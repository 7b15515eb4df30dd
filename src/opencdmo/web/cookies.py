"""Cookies that routes set besides the session's: the pre-login CSRF binding (the adapter's
CSRF check reads it)."""

from __future__ import annotations

import secrets

from litestar.datastructures import Cookie

from opencdmo.settings import Settings

CSRF_COOKIE = "opencdmo_csrf"


def anonymous_cookie(
    settings: Settings, value: str | None = None, max_age: int | None = None
) -> Cookie:
    """The pre-login binding cookie: a new random value by default (rotation)."""
    return Cookie(
        key=CSRF_COOKIE,
        value=secrets.token_urlsafe(32) if value is None else value,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
        max_age=max_age,
    )
