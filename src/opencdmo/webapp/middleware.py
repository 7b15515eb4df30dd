"""Who is asking, and in which tenant: a pure ASGI middleware that runs before every handler.

It reads the session cookie or the bearer token and, for tenant paths (``/t/{slug}/...`` and
``/api/v1/t/{slug}/...``), resolves the tenant. Handlers never see a raw tenant id: guards turn
the result into 401, 403 or 404 (``webapp.tenant_guard``). A session's first request into a
tenant is recorded there as its sign-in (``identity.service.enter_tenant``).
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import replace
from typing import Any

from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from opencdmo.identity import service as identity
from opencdmo.identity import sessions
from opencdmo.scope import Actor, ExpiredToken, RequestMeta
from opencdmo.settings import Settings
from opencdmo.web.principal import SAFE_METHODS, SESSION_COOKIE, Principal
from opencdmo.webapp import authcache, resolver
from opencdmo.webapp.logs import client_request_id_var, request_id_var

access_log = logging.getLogger("opencdmo.access")

TENANT_PATH = re.compile(r"^(?:/api/v1)?/t/([^/]+)(?:/|$)")
# What a client may send as its own request id (kept apart from the server's id, never
# stored verbatim otherwise): up to 64 characters of letters, digits, dot, underscore, dash.
CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def client_request_id(raw: str) -> str | None:
    return raw if CLIENT_REQUEST_ID.fullmatch(raw) else None


class _Headers:
    """The few request headers this middleware reads, found in one pass over the raw ones."""

    WANTED = frozenset({b"authorization", b"cookie", b"x-request-id"})

    def __init__(self, scope: Scope) -> None:
        self._values: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            name = name.lower()
            if name in self.WANTED:
                key, text = name.decode(), value.decode("latin-1")
                if key not in self._values:
                    self._values[key] = text
                elif key == "cookie":  # repeated cookie headers are one list of cookies
                    self._values[key] = f"{self._values[key]}; {text}"

    def get(self, name: str, default: str = "") -> str:
        return self._values.get(name, default)


def _cookie(headers: _Headers, name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


class PrincipalMiddleware(ASGIMiddleware):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        headers = _Headers(scope)
        request_id = os.urandom(16).hex()
        client_id = client_request_id(headers.get("x-request-id"))
        request_id_var.set(request_id)
        client_request_id_var.set(client_id)
        client = scope.get("client")
        meta = RequestMeta(
            request_id=request_id,
            address=client[0] if client else None,
            client_request_id=client_id,
        )
        principal = Principal(meta=meta)
        scope.setdefault("state", {})["principal"] = principal
        await self._authenticate(principal, headers)
        match = TENANT_PATH.match(scope["path"])
        if match:
            principal.slug = match.group(1)
            await self._resolve(principal)
        status: list[int] = []
        try:
            await next_app(scope, receive, _with_request_id(send, request_id, status))
        finally:
            if scope.get("method") not in SAFE_METHODS and _may_change_access(scope):
                # What this request changed is committed: no cached token lookup outlives it
                # here (other processes hear of it from the database).
                authcache.tokens.invalidate()
            if access_log.isEnabledFor(logging.INFO):
                self._log(scope, principal, status, started)

    @staticmethod
    def _log(scope: Scope, principal: Principal, status: list[int], started: float) -> None:
        access_log.info(
            "%s %s %s",
            scope.get("method"),
            scope["path"],
            status[0] if status else 500,
            extra={
                "status": status[0] if status else 500,
                "request_id": principal.meta.request_id,
                "client_request_id": principal.meta.client_request_id,
                "user": str(principal.actor.id) if principal.actor else None,
                "tenant": principal.slug,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )

    async def _authenticate(self, principal: Principal, headers: _Headers) -> None:
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            principal.bearer = authorization[7:].strip() or None
            return
        token = _cookie(headers, SESSION_COOKIE)
        if token:
            session = await sessions.load(self.settings, token)
            if session is not None:
                principal.session, principal.session_token = session, token
                principal.actor = Actor(session.user_id, session.email, session.full_name)
                principal.meta = replace(principal.meta, credential=f"session:{session.session_id}")

    async def _resolve(self, principal: Principal) -> None:
        assert principal.slug is not None
        if principal.bearer:
            found = await resolver.for_token(principal.bearer, principal.slug, principal.meta)
            if isinstance(found, ExpiredToken):
                principal.expired_token = found
            elif found is not None:
                principal.ctx, principal.actor = found, found.actor
        elif principal.actor is not None:
            principal.ctx = await resolver.for_user(principal.actor, principal.slug, principal.meta)
            session = principal.session
            if principal.ctx and session and principal.ctx.tenant_id not in session.tenants_entered:
                await identity.enter_tenant(principal.ctx, session.session_id)


def _with_request_id(send: Send, request_id: str, status: list[int]) -> Send:
    async def wrapped(message: Any) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
            message.setdefault("headers", [])
            message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
        await send(message)

    return wrapped


# Contexts whose commands never write what a token lookup reads (tokens, users, memberships,
# role assignments, tenants, sites): a batch entry or a recipe edit keeps the cache. Any other
# unsafe request drops it; the database's notifications drop it in any case.
KEEPS_ACCESS = frozenset({"batches", "recipes"})


def _may_change_access(scope: Scope) -> bool:
    handler = scope.get("route_handler")
    context = getattr(handler, "opt", {}).get("context") if handler is not None else None
    return context not in KEEPS_ACCESS
