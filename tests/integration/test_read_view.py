"""A reading route's body runs in one read-only transaction of its tenant (ARCHITECTURE.md
section 4): every read of a page sees one snapshot, through one connection."""

from __future__ import annotations

from typing import Any

from litestar import Litestar

from opencdmo.db.tx import tenant_transaction
from opencdmo.scope import TenantContext
from opencdmo.web.guards import WRITES
from opencdmo.webapp.tenant_guard import TENANT_ROUTE, in_read_view
from tests.conftest import World


async def test_the_reads_of_a_reading_route_share_one_read_only_transaction(world: World) -> None:
    seen: list[Any] = []

    async def handler(ctx: TenantContext) -> None:
        for _ in range(2):
            async with tenant_transaction(ctx) as connection:
                seen.append(await connection.fetchval("SHOW transaction_read_only"))
                seen.append(await connection.fetchval("SELECT pg_current_snapshot()::text"))

    await in_read_view(handler)(ctx=world.alpha)
    assert seen[0] == seen[2] == "on"
    assert seen[1] == seen[3], "one snapshot for the whole page"


def test_every_reading_tenant_route_gets_the_read_view(app: Litestar) -> None:
    wrapped, writing = 0, []
    for route in app.routes:
        if not TENANT_ROUTE.match(route.path):
            continue
        for handler in getattr(route, "route_handlers", []):
            paths = route.path
            if set(handler.http_methods) == {"OPTIONS"}:
                continue  # the framework's own answer to OPTIONS
            if set(handler.http_methods) - {"GET", "HEAD", "OPTIONS"}:
                assert not getattr(handler.fn, "_read_view", False), paths
                continue
            if handler.opt.get(WRITES):
                writing.append(paths)
                continue
            assert getattr(handler.fn, "_read_view", False), paths
            wrapped += 1
    assert wrapped >= 20
    # A signer's re-authentication at the provider is a link (a form's redirect would meet
    # the page's form-action) that records the request it starts. Asking the API for an
    # export (the batch record, a shared batch record, the audit trail) is a command that
    # waits for the job worker; downloading an export records the download.
    assert sorted(writing) == sorted(
        [
            f"{prefix}/t/{{slug:str}}/{path}"
            for prefix in ("", "/api/v1")
            for path in ("exports/{export_id:uuid}/file",)
        ]
        + [
            "/api/v1/t/{slug:str}/audit/export",
            "/api/v1/t/{slug:str}/partners/batches/{batch_id:uuid}/record.xml",
            "/api/v1/t/{slug:str}/batches/{batch_id:uuid}/record.xml",
            "/t/{slug:str}/sso/reauthenticate",
        ]
    ), writing
