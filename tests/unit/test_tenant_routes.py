"""Every tenant route sits in a tenant router that gets the tenant guard and scope from the
app once, and must declare its permission."""

from __future__ import annotations

import pytest
from litestar import Router, get

from opencdmo.web.guards import requires
from opencdmo.webapp.tenant_guard import (
    TENANT_API,
    TENANT_GUARDS,
    TENANT_PAGES,
    protect_tenant_routes,
    tenant_member,
)


def test_tenant_routers_get_the_guard_and_the_scope_once() -> None:
    @get("/things", opt=requires("things", "read"))
    async def things() -> None: ...

    @get("/healthz-like")
    async def outside() -> None: ...

    router = Router(path=TENANT_API, route_handlers=[things])
    for _ in range(2):  # an app built twice in one process
        protect_tenant_routes([router, outside])
    assert router.guards == TENANT_GUARDS
    assert set(router.dependencies or {}) == {"ctx"}
    assert not outside.guards and not outside.dependencies


def test_a_tenant_route_without_a_permission_is_refused() -> None:
    @get("/open")
    async def forgotten() -> None: ...

    router = Router(path=TENANT_PAGES, route_handlers=[forgotten])
    with pytest.raises(RuntimeError, match="declares no permission"):
        protect_tenant_routes([router])
    assert tenant_member not in (router.guards or [])


def test_a_tenant_route_outside_a_tenant_router_is_refused() -> None:
    @get("/t/{slug:str}/stray", opt=requires("things", "read"))
    async def stray() -> None: ...

    with pytest.raises(RuntimeError, match="not in a tenant router"):
        protect_tenant_routes([stray])
