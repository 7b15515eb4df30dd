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
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, World, as_actor, member_as
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
    assert "recipe autologous-car-t 1.1.0" in installed
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
    installed = await library.install(world.beta, first.item_id)
    assert installed == [f"material {slug} 1.0.0"], "the latest not yanked"
    other = await fresh_tenant()
    with pytest.raises(Exception, match="No such HUB item"):
        await library.install(other, first.item_id)  # private to beta


async def test_library_over_http_and_hub_items_are_read_only(
    synced: Any, browser: Any, owner: asyncpg.Connection, world: World
) -> None:
    """In a tenant of its own, so that what other tests installed does not matter."""
    ctx = await fresh_tenant()
    await tenancy.add_member(ctx, world["author"].user_id, ["process_engineer"])
    await tenancy.add_member(ctx, world["viewer"].user_id, ["viewer"])
    api, pages = f"/api/v1/t/{ctx.slug}", f"/t/{ctx.slug}"
    client = await browser("author")
    item = await _item(owner, "t-cell-activation")
    response = await client.send(
        "POST", f"{api}/hub/items/{item}/install", json={"version": "1.0.0"}
    )
    assert response.status_code == 201, response.text
    again = await client.send("POST", f"{api}/hub/items/{item}/install", json={"version": "1.0.0"})
    assert again.status_code == 409
    entries = (await client.get(f"{api}/library")).json()
    entry = next(e for e in entries if e["slug"] == "t-cell-activation")
    preview = (await client.get(f"{api}/library/{entry['id']}/diff", params={"to": "1.1.0"})).json()
    assert preview["installed"] == "1.0.0" and preview["target"] == "1.1.0"
    page = await client.get(f"{pages}/library/{entry['id']}/diff", params={"to": "1.1.0"})
    assert page.status_code == 200 and "Upgrade to 1.1.0" in page.text
    listing = await client.get(f"{pages}/library")
    assert "available" in listing.text
    refused = await client.send("PUT", f"{api}/hub/items/{item}", json={"name": "mine"})
    assert refused.status_code == 403
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND "
            "action = 'hub.modify_refused'",
            ctx.tenant_id,
        )
        == 1
    )
    viewer = await browser("viewer")
    denied = await viewer.send("POST", f"{api}/hub/items/{item}/install", json={})
    assert denied.status_code == 403


async def _fork_as_author(
    client: Any, owner: asyncpg.Connection, tenant: str, slug: str = "t-cell-activation"
) -> str:
    item = await _item(owner, slug)
    response = await client.send("POST", f"/api/v1/t/{tenant}/hub/items/{item}/fork", json={})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_fork_edit_with_range_checks_and_revisions(
    synced: Any, browser: Any, owner: asyncpg.Connection, world: World, own_tenant: TenantContext
) -> None:
    slug = own_tenant.slug
    author = await browser("author")
    fork_id = await _fork_as_author(author, owner, slug)
    page = await author.get(f"/t/{slug}/library/{fork_id}")
    assert page.status_code == 200 and "Edit this fork" in page.text
    field = "p:seeding:seeding_density:"
    # A default outside the normal range is refused, with the parameter named; nothing changes.
    bad = await author.send(
        "POST",
        f"/t/{slug}/library/{fork_id}/edit",
        data={"_csrf_token": author.csrf, "revision": "1", field + "default": "5"},
    )
    assert bad.status_code == 422 and "seeding_density" in bad.text
    good = await author.send(
        "POST",
        f"/t/{slug}/library/{fork_id}/edit",
        data={
            "_csrf_token": author.csrf,
            "revision": "1",
            field + "default": "1.1",
            "name": "T-cell activation, Larkspur 1.1 x 10^6/mL",
        },
    )
    assert good.status_code == 200 and "Saved revision 2" in good.text
    stale = await author.send(
        "PUT", f"/api/v1/t/{slug}/library/{fork_id}/content", json={"revision": 1, "content": {}}
    )
    assert stale.status_code == 409 and "revision 2" in stale.json()["error"]["message"]
    edited = await owner.fetchrow(
        "SELECT new_values FROM audit_events WHERE action = 'library.fork_edited' "
        "AND entity_id = $1",
        fork_id,
    )
    assert "seeding_density].default" in edited["new_values"]
    # Installed copies are read-only.
    item = await _item(owner, "cell-count-viability")
    await library.install(as_actor(own_tenant, world["author"]), item)
    installed = next(
        e for e in await library.list_library(own_tenant) if e["slug"] == "cell-count-viability"
    )
    refused = await author.send(
        "PUT",
        f"/api/v1/t/{slug}/library/{installed['id']}/content",
        json={"revision": 1, "content": {}},
    )
    assert refused.status_code == 409


async def test_publish_a_fork_needs_an_approver_signature(
    synced: Any, browser: Any, owner: asyncpg.Connection, world: World, own_tenant: TenantContext
) -> None:
    slug = own_tenant.slug
    author = await browser("author")
    fork_id = await _fork_as_author(author, owner, slug, "cell-harvest-and-wash")
    body = {
        "version": "1.0.0",
        "changelog": "Larkspur site values.",
        "password": PASSWORD,
        "reason": "Approved for internal use",
        "visibility": "private",
    }
    # The author has no publication approval right.
    assert (
        await author.send("POST", f"/api/v1/t/{slug}/library/{fork_id}/publish", json=body)
    ).status_code == 403
    approver = await browser("approver")
    wrong = await approver.send(
        "POST",
        f"/api/v1/t/{slug}/library/{fork_id}/publish",
        json={**body, "password": "not-the-password-1"},
    )
    assert wrong.status_code == 401
    published = await approver.send(
        "POST", f"/api/v1/t/{slug}/library/{fork_id}/publish", json=body
    )
    assert published.status_code == 201, published.text
    item_id = published.json()["installed"][0]
    detail = await approver.get(f"/t/{slug}/hub/items/{item_id}")
    assert "Forked from" in detail.text
    origin = await _item(owner, "cell-harvest-and-wash")
    assert item_id in (await approver.get(f"/t/{slug}/hub/items/{origin}")).text
    signature = await owner.fetchrow(
        "SELECT signer_id, meaning, record_id FROM signatures WHERE record_id = $1", fork_id
    )
    assert signature["meaning"] == "approved for publication"
    assert signature["signer_id"] == world["approver"].user_id
    # Private: another tenant does not see it.
    outsider = await browser("outsider")
    assert (await outsider.get(f"/api/v1/t/beta/hub/items/{item_id}")).status_code == 404


async def test_the_author_cannot_approve_their_own_fork(
    synced: Any, owner: asyncpg.Connection, world: World, settings: Any
) -> None:
    from opencdmo.errors import Forbidden

    # A QA approver who is also a process engineer forks; as the fork's author they cannot
    # approve its publication.
    ctx = await fresh_tenant()
    await tenancy.add_member(ctx, world["approver"].user_id, ["qa_approver", "process_engineer"])
    approver = await member_as(ctx, world["approver"])
    item = await _item(owner, "msc-seeding")
    fork_id = await library.fork(approver, item)
    with pytest.raises(Forbidden, match="Separation of duties"):
        await library.publish_fork(
            settings,
            approver,
            fork_id,
            version="1.0.0",
            changelog="x",
            visibility="private",
            password=PASSWORD,
            reason="mine",
        )
