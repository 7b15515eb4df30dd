"""The tenant guard every tenant route gets from the app (``protect_tenant_routes``): the
membership and permission check, and the request's tenant scope as the ``ctx`` dependency."""

from __future__ import annotations

import functools
import re
from typing import Any

from litestar import Request, Router
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from opencdmo.access.service import can, can_somewhere, permission_text
from opencdmo.audit.service import record_security
from opencdmo.db.tx import read_view
from opencdmo.errors import Forbidden, NotAuthenticated, NotFound
from opencdmo.scope import ExpiredToken, RequestMeta, TenantContext
from opencdmo.web.guards import PERMISSION, SITE_SCOPED, WRITES
from opencdmo.web.principal import SAFE_METHODS, principal_of


async def tenant_member(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """401 without credentials, 404 for an unknown tenant or a non-member, 403 without the role."""
    principal = principal_of(connection.scope)
    permission = handler.opt.get(PERMISSION)
    if permission is None:
        raise RuntimeError(f"tenant route {handler} declares no permission")
    if principal.ctx is None:
        if principal.expired_token is not None:
            await _refuse_expired(principal.expired_token, principal.meta, connection.url.path)
        if principal.bearer:
            raise NotAuthenticated(
                "The API token is not valid here: unknown, revoked, or issued for another tenant.",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if principal.actor is None:
            raise NotAuthenticated("Sign in to continue.")
        await record_security(
            "access.tenant_not_found",
            actor=principal.actor,
            meta=principal.meta,
            detail={"tenant": principal.slug, "path": connection.url.path},
        )
        raise NotFound("No such tenant, or you are not a member of it.")
    ctx = principal.ctx
    check = can_somewhere if handler.opt.get(SITE_SCOPED) else can
    if not await check(ctx, *permission):
        await record_security(
            "access.denied",
            actor=ctx.actor,
            meta=ctx.meta,
            tenant_id=ctx.tenant_id,
            detail={
                "path": connection.url.path,
                "method": connection.scope.get("method"),
                "permission": list(permission),
            },
        )
        raise Forbidden(
            f"Your roles in {ctx.name} do not allow this ({permission_text(*permission)})."
        )


async def _refuse_expired(expired: ExpiredToken, meta: RequestMeta, path: str) -> None:
    await record_security(
        "token.expired_used",
        actor=expired.actor,
        meta=meta,
        tenant_id=expired.tenant_id,
        detail={"token_id": str(expired.token_id), "path": path},
    )
    raise NotAuthenticated(
        f"The API token expired on {expired.expired_at:%Y-%m-%d %H:%M} UTC; create a new one.",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token", error_description="expired"'},
    )


def tenant_context(request: Request[Any, Any, Any]) -> TenantContext:
    """Dependency: the request's tenant scope (the guard has already checked it exists)."""
    ctx = principal_of(request.scope).ctx
    if ctx is None:
        raise NotFound("No such tenant, or you are not a member of it.")
    return ctx


# What every tenant route gets (``protect_tenant_routes``): the membership and permission
# guard, and its tenant scope as the ``ctx`` dependency.
TENANT_GUARDS: list[Guard] = [tenant_member]
TENANT_DEPS: dict[str, Provide] = {"ctx": Provide(tenant_context, sync_to_thread=False)}
TENANT_ROUTE = re.compile(r"^(?:/api/v1)?/t/\{slug")
TENANT_PAGES = "/t/{slug:str}"
TENANT_API = "/api/v1/t/{slug:str}"


def handlers_of(item: Any) -> list[tuple[str, Any]]:
    """(full path, handler) of a route handler or of every handler of a router."""
    if isinstance(item, Router):
        return [
            (route.path, handler)
            for route in item.routes
            for handler in getattr(route, "route_handlers", ())
        ]
    return [(path, item) for path in getattr(item, "paths", ())]


def protect_tenant_routes(items: list[Any]) -> None:
    """Give every tenant router (a context's pages under ``/t/{slug}``, its API under
    ``/api/v1/t/{slug}``: ``app.context_routers``) the tenant guard and scope, once; a
    tenant route outside such a router, or one that declares no permission
    (``opt=requires(...)``), is a configuration error. Reading handlers run in one read view
    of their tenant."""
    for item in items:
        tenant_router = isinstance(item, Router) and TENANT_ROUTE.match(item.path) is not None
        for path, handler in handlers_of(item):
            if not TENANT_ROUTE.match(path) or set(handler.http_methods) == {"OPTIONS"}:
                continue  # not a tenant route, or the framework's own answer to OPTIONS
            if not tenant_router:
                raise RuntimeError(f"tenant route {path} is not in a tenant router")
            if PERMISSION not in (handler.opt or {}):
                raise RuntimeError(f"tenant route {path} declares no permission")
            if set(handler.http_methods) <= SAFE_METHODS and not handler.opt.get(WRITES):
                # Litestar has no public setter for a handler's function; its signature is
                # parsed from the wrapped one (functools.wraps).
                handler._fn = in_read_view(handler.fn)
        if tenant_router:
            guards = list(item.guards or [])
            item.guards = [*TENANT_GUARDS, *(g for g in guards if g not in TENANT_GUARDS)]
            item.dependencies = {**(item.dependencies or {}), **TENANT_DEPS}


def in_read_view(fn: Any) -> Any:
    """A reading handler's body in one read-only transaction of its tenant: every read of the
    page or answer sees the same snapshot, in one connection (ARCHITECTURE.md section 4)."""
    if getattr(fn, "_read_view", False):
        return fn

    @functools.wraps(fn)
    async def reading(*args: Any, **kwargs: Any) -> Any:
        ctx = kwargs.get("ctx")
        if not isinstance(ctx, TenantContext):
            return await fn(*args, **kwargs)
        async with read_view(ctx):
            return await fn(*args, **kwargs)

    reading._read_view = True  # type: ignore[attr-defined]
    return reading
