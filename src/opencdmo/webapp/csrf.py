"""CSRF on every unsafe method (forms and htmx alike), except bearer-token API calls.

Two checks, both needed:

1. **Origin.** A browser names the page that sent an unsafe request in ``Origin`` (or, when it
   leaves that out, in ``Referer``). Anything but this host (or an origin listed in
   ``OPENCDMO_TRUSTED_ORIGINS``) is refused. With neither header the token check decides.
2. **A token bound to the session.** ``token = nonce || HMAC(secret, binding || nonce)``, where
   the binding is the signed-in session's id, or, before sign-in, the value of a random
   HttpOnly cookie (``opencdmo_csrf``) that the sign-in form needs. A token minted for one
   session is refused with any other session's cookie, and the pre-login cookie is replaced at
   sign-in and sign-out, so a token planted before sign-in is worthless afterwards. Every page
   gets a fresh nonce (the token differs per response, the binding does not).

A bearer token is never sent by a browser on its own, so a request that carries one cannot be
forged cross-site; the principal middleware then ignores any session cookie on it.

A refusal is an ordinary 403 of the application (JSON, htmx fragment or page), rendered here so
that it passes the principal middleware: it is logged with the request id and its status.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from litestar import Request
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.utils.scope.state import ScopeState

from opencdmo.errors import Forbidden
from opencdmo.settings import Settings
from opencdmo.web.cookies import CSRF_COOKIE, anonymous_cookie
from opencdmo.web.principal import SAFE_METHODS, principal_of
from opencdmo.webapp.errors import handle

log = logging.getLogger("opencdmo.csrf")

CSRF_HEADER = "x-csrftoken"
CSRF_FIELD = "_csrf_token"
EXEMPT_PREFIXES = ("/static/", "/healthz", "/readyz")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
TOKEN = re.compile(r"[0-9a-f]{128}")
COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{43}")


class CsrfRefused(Forbidden):
    """The request failed the CSRF check (foreign origin, or no token for this session)."""


def mint(secret: bytes, binding: str) -> str:
    nonce = secrets.token_hex(32)
    return nonce + _mac(secret, binding, nonce)


def matches(secret: bytes, binding: str, token: str) -> bool:
    if not TOKEN.fullmatch(token):
        return False
    nonce, mac = token[:64], token[64:]
    return hmac.compare_digest(mac, _mac(secret, binding, nonce))


def _mac(secret: bytes, binding: str, nonce: str) -> str:
    return hmac.new(secret, f"csrf|{binding}|{nonce}".encode(), hashlib.sha256).hexdigest()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            cookie, _, text = part.strip().partition("=")
            if cookie == name and text:
                return text
    return None


def origin_problem(scope: Scope, trusted: frozenset[str]) -> str | None:
    """Why the request's Origin (or Referer) is not this site, or None when it is (or absent)."""
    origin = _header(scope, b"origin")
    source = origin or _header(scope, b"referer")
    if not source:
        return None
    if source == "null":
        return "the request came from an opaque origin (Origin: null)"
    parts = urlsplit(source)
    claimed = f"{parts.scheme}://{parts.netloc}".lower()
    if claimed in trusted:
        return None
    host = (_header(scope, b"host") or "").lower()
    scheme = str(scope.get("scheme", "http"))
    # Behind a TLS-terminating proxy the app sees http while the browser says https.
    if host and parts.netloc.lower() == host and parts.scheme in {scheme, "https"}:
        return None
    header = "Origin" if origin else "Referer"
    return f"the request came from another site ({header}: {claimed})"


class SessionCSRF:
    """Pure ASGI middleware; runs inside the principal middleware (it needs the session)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.secret = settings.resolved_secret_key().encode()
        self.trusted = frozenset(
            o.strip().rstrip("/").lower() for o in settings.trusted_origins.split(",") if o.strip()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        principal = principal_of(scope)
        if principal.bearer:
            await self.app(scope, receive, send)
            return
        new_cookie: str | None = None
        if principal.session is not None:
            binding = f"session:{principal.session.session_id}"
        else:
            cookie = _cookie(scope, CSRF_COOKIE)
            if cookie is None or not COOKIE_VALUE.fullmatch(cookie):
                cookie = new_cookie = secrets.token_urlsafe(32)
            binding = f"anonymous:{cookie}"
        state = ScopeState.from_scope(scope)
        if scope["method"] not in SAFE_METHODS:
            problem = origin_problem(scope, self.trusted) or await self._token_problem(
                scope, receive, binding
            )
            if problem:
                state.csrf_token = mint(self.secret, binding)
                await self._refuse(scope, receive, self._with_cookie(send, new_cookie), problem)
                return
        state.csrf_token = mint(self.secret, binding)
        await self.app(scope, receive, self._with_cookie(send, new_cookie))

    async def _token_problem(self, scope: Scope, receive: Receive, binding: str) -> str | None:
        token = _header(scope, CSRF_HEADER.encode())
        if token is None and (_header(scope, b"content-type") or "").startswith(FORM_TYPES):
            # The parsed form is kept in the scope: the handler reads it from there.
            request: Request[Any, Any, Any] = Request(scope, receive)
            form = await request.form()
            value = form.get(CSRF_FIELD)
            token = value if isinstance(value, str) else None
        if not token:
            return "no CSRF token was sent"
        if not matches(self.secret, binding, token):
            return "the CSRF token does not belong to this session"
        return None

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, problem: str) -> None:
        log.warning(
            "CSRF check failed: %s",
            problem,
            extra={
                "path": scope["path"],
                "method": scope.get("method"),
                "request_id": principal_of(scope).meta.request_id,
            },
        )
        request: Request[Any, Any, Any] = Request(scope, receive)
        response = handle(
            request,
            CsrfRefused(
                "The form expired or was sent from another site (CSRF check failed: "
                f"{problem}). Reload the page and try again."
            ),
        )
        await response.to_asgi_response(app=None, request=request)(scope, receive, send)

    def _with_cookie(self, send: Send, value: str | None) -> Send:
        if value is None:
            return send
        name, header = anonymous_cookie(self.settings, value).to_encoded_header()

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (name, header)]
            await send(message)

        return wrapped
