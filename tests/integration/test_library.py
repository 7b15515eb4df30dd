"""Installing from the HUB, updates with a structural diff, explicit and audited upgrades."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.hub import library, service
from opencdmo.hub.content import validate
from opencdmo.tenancy import service as tenancy
from opencdmo.tenancy.context import SYSTEM, RequestMeta, TenantContext
from tests.conftest import World, as_actor
from tests.integration.test_hub import material


async def fresh_tenant() -> TenantContext:
    slug = f"lib-{uuid.uuid4().hex[:8]}"
    return await tenancy.create_tenant(slug, "Library Test", "cdmo", SYSTEM, RequestMeta())


async def _item(owner: asyncpg.Connection, slug: str) -> Any:
    return await owner.fetchval(
        "SELECT i.id FROM hub_items i JOIN tenants t ON t.id = i.publisher_id "
        "WHERE i.slug = $1 AND t.slug = 'opencdmo-hub'",
        slug,
    )


async def test_install_copies_the_version_and_its_closure(
    synced: Any, owner: asyncpg.Connection
) -> None:
    ctx = await fresh_tenant()
    recipe = await _item(owner, "autologous-car-t")
    count_before = await owner.fetchval("SELECT install_count FROM hub_items WHERE id = $1", recipe)
    installed = await library.install(ctx, recipe)
    assert installed[0].startswith("recipe autologous-car-t 1.1.0") or any(
        line.startswith("recipe autologous-car-t 1.1.0") for line in installed
    )
    rows = await owner.fetch(
        "SELECT kind, slug, version, content, content_hash FROM library_items WHERE tenant_id = $1",
        ctx.tenant_id,
    )
    kinds = {r["kind"] for r in rows}
    assert {"recipe", "unit_operation", "method", "material", "equipment_class"} <= kinds
    transduction = next(r for r in rows if r["slug"] == "lentiviral-transduction")
    assert transduction["version"] == "1.1.0", "the pinned version, not the latest"
    hub = await owner.fetchrow(
        "SELECT v.content_hash FROM hub_versions v JOIN hub_items i ON i.id = v.item_id "
        "WHERE i.slug = 'lentiviral-transduction' AND v.version = '1.1.0'"
    )
    assert transduction["content_hash"] == hub["content_hash"]
    assert (
        await owner.fetchval("SELECT install_count FROM hub_items WHERE id = $1", recipe)
        == count_before + 1
    )
    audited = await owner.fetchval(
        "SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND action = 'library.installed'",
        ctx.tenant_id,
    )
    assert audited == len(rows)
    with pytest.raises(Conflict, match="already installed"):
        await library.install(ctx, recipe)


async def test_update_is_seen_diffed_and_applied_only_on_request(
    synced: Any, owner: asyncpg.Connection, world: World
) -> None:
    ctx = await fresh_tenant()
    item = await _item(owner, "lentiviral-transduction")
    await library.install(ctx, item, "1.0.0")
    entry = next(
        e for e in await library.list_library(ctx) if e["slug"] == "lentiviral-transduction"
    )
    assert (
        entry["version"] == "1.0.0" and entry["update_available"] and entry["available"] == "2.0.0"
    )
    _, target, changes = await library.preview_upgrade(ctx, entry["id"], None)
    assert target["version"] == "2.0.0"
    added_phases = [
        c
        for c in changes
        if c.op == "added" and c.path.startswith("phases[") and c.path.count("[") == 1
    ]
    assert len(added_phases) == 1
    # Nothing changed by looking.
    assert (await library.get_library_item(ctx, entry["id"]))["version"] == "1.0.0"
    with pytest.raises(ValidationFailed, match="not newer"):
        await library.upgrade(ctx, entry["id"], "1.0.0")
    applied = await library.upgrade(ctx, entry["id"], "2.0.0", "adopt the wash step")
    assert applied == changes
    after = await library.get_library_item(ctx, entry["id"])
    assert after["version"] == "2.0.0" and not after["update_available"]
    event = await owner.fetchrow(
        "SELECT old_values, new_values, reason FROM audit_events "
        "WHERE tenant_id = $1 AND action = 'library.upgraded'",
        ctx.tenant_id,
    )
    assert json.loads(event["old_values"])["version"] == "1.0.0"
    assert json.loads(event["new_values"])["version"] == "2.0.0"
    assert event["reason"] == "adopt the wash step"


async def test_yanked_versions_are_hidden_from_new_installs(
    world: World, owner: asyncpg.Connection
) -> None:
    publisher = as_actor(world.beta, world["outsider"])
    slug = f"yank-{uuid.uuid4().hex[:6]}"
    first = await service.publish(
        publisher, validate(material(slug, "1.0.0"), "t"), visibility="private"
    )
    await service.publish(publisher, validate(material(slug, "1.1.0"), "t"), visibility="private")
    await owner.execute(
        "UPDATE hub_versions SET yanked_at = now() WHERE item_id = $1 AND version = '1.1.0'",
        first.item_id,
    )
    installed = await library.install(publisher, first.item_id)
    assert installed == [f"material {slug} 1.0.0"], "the latest not yanked"
    other = await fresh_tenant()
    with pytest.raises(Exception, match="No such HUB item"):
        await library.install(other, first.item_id)  # private to beta


async def test_library_over_http_and_hub_items_are_read_only(
    synced: Any, browser: Any, owner: asyncpg.Connection, world: World
) -> None:
    client = await browser("author")
    item = await _item(owner, "t-cell-activation")
    response = await client.send(
        "POST", f"/api/v1/t/alpha/hub/items/{item}/install", json={"version": "1.0.0"}
    )
    assert response.status_code in (201, 409), response.text
    entries = (await client.get("/api/v1/t/alpha/library")).json()
    entry = next(e for e in entries if e["slug"] == "t-cell-activation")
    preview = (
        await client.get(f"/api/v1/t/alpha/library/{entry['id']}/diff", params={"to": "1.1.0"})
    ).json()
    assert preview["installed"] == entry["version"] and preview["target"] == "1.1.0"
    page = await client.get(f"/t/alpha/library/{entry['id']}/diff", params={"to": "1.1.0"})
    assert page.status_code == 200 and "Upgrade to 1.1.0" in page.text
    listing = await client.get("/t/alpha/library")
    assert "available" in listing.text
    refused = await client.send("PUT", f"/api/v1/t/alpha/hub/items/{item}", json={"name": "mine"})
    assert refused.status_code == 403
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND "
            "action = 'hub.modify_refused'",
            world.alpha.tenant_id,
        )
        >= 1
    )
    viewer = await browser("viewer")
    denied = await viewer.send("POST", f"/api/v1/t/alpha/hub/items/{item}/install", json={})
    assert denied.status_code == 403
