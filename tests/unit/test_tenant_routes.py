"""Every tenant route gets the tenant guard and scope from the app, and must declare its
permission."""

from __future__ import annotations

import pytest
from litestar import get

from opencdmo.web.guards import requires
from opencdmo.webapp.tenant_guard import TENANT_GUARDS, protect_tenant_routes, tenant_member


def test_tenant_routes_get_the_guard_and_the_scope_once() -> None:
    @get("/api/v1/t/{slug:str}/things", opt=requires("things", "read"))
    async def things() -> None: ...

    @get("/healthz-like")
    async def outside() -> None: ...

    for _ in range(2):  # an app built twice in one process
        protect_tenant_routes([things, outside])
    assert things.guards == TENANT_GUARDS
    assert set(things.dependencies or {}) == {"ctx"}
    assert not outside.guards and not outside.dependencies


def test_a_tenant_route_without_a_permission_is_refused() -> None:
    @get("/t/{slug:str}/open")
    async def forgotten() -> None: ...

    with pytest.raises(RuntimeError, match="declares no permission"):
        protect_tenant_routes([forgotten])
    assert tenant_member not in (forgotten.guards or [])
