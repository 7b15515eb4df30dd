"""The tenant guard every tenant route gets from the app (``protect_tenant_routes``): the
membership and permission check, and the request's tenant scope as the ``ctx`` dependency."""

from __future__ import annotations

import functools
import re
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from opencdmo.access.service import can
from opencdmo.audit.service import record_security
from opencdmo.db.tx import read_view
from opencdmo.errors import Forbidden, NotAuthenticated, NotFound
from opencdmo.scope import ExpiredToken, RequestMeta, TenantContext
from opencdmo.web.guards import PERMISSION, WRITES
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
    if not await can(ctx, *permission):
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
            f"Your roles in {ctx.name} do not allow this ({permission[1]} {permission[0]})."
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


def protect_tenant_routes(handlers: list[Any]) -> None:
    """Give every route under ``/t/{slug}`` and ``/api/v1/t/{slug}`` the tenant guard and
    scope, so that none can be mounted without them; a tenant route that declares no
    permission (``opt=requires(...)``) is a configuration error."""
    for handler in handlers:
        if not any(TENANT_ROUTE.match(path) for path in getattr(handler, "paths", ())):
            continue
        if PERMISSION not in (handler.opt or {}):
            raise RuntimeError(f"tenant route {handler.paths} declares no permission")
        guards = list(handler.guards or [])
        handler.guards = [*TENANT_GUARDS, *(g for g in guards if g not in TENANT_GUARDS)]
        handler.dependencies = {**(handler.dependencies or {}), **TENANT_DEPS}
        if set(handler.http_methods) <= SAFE_METHODS and not handler.opt.get(WRITES):
            handler._fn = in_read_view(handler.fn)


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
