"""The HUB catalogue: sync, immutability, dependencies, visibility and search."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.hub import service
from opencdmo.hub.content import ROOT, ContentError, validate
from opencdmo.hub.search import SearchQuery, search
from opencdmo.scope import TenantContext
from tests.conftest import World, as_actor


def material(slug: str, version: str = "1.0.0", name: str = "Test buffer") -> dict[str, Any]:
    return {
        "kind": "material",
        "slug": slug,
        "name": name,
        "version": version,
        "summary": "A buffer for tests.",
        "description": "Example default to adapt and validate.",
        "changelog": "Initial release.",
        "authors": ["Test"],
        "licence": "CC-BY-4.0",
        "tags": ["buffer"],
        "material_type": "reagent",
        "grade": "GMP",
        "storage": {"temperature_low": 2, "temperature_high": 8, "unit": "Cel"},
    }


async def publish_private(ctx: TenantContext, slug: str | None = None) -> Any:
    doc = validate(material(slug or f"private-{uuid.uuid4().hex[:8]}"), "test")
    return await service.publish(ctx, doc, visibility="private")


async def test_sync_publishes_the_library_then_nothing(
    synced: service.SyncReport, world: World, owner: asyncpg.Connection
) -> None:
    assert len(synced.published) >= 160
    again = await service.sync(ROOT, lambda _: None)
    assert again.published == [] and again.unchanged == len(synced.published) + synced.unchanged
    recipes = await owner.fetchval("SELECT count(*) FROM hub_items WHERE kind = 'recipe'")
    assert recipes >= 4
    multi = await owner.fetchval(
        "SELECT count(*) FROM (SELECT item_id FROM hub_versions GROUP BY item_id HAVING count(*) > 1) x"
    )
    assert multi >= 3


async def test_changed_content_under_a_published_version_is_refused(
    synced: Any, tmp_path: Path, owner: asyncpg.Connection
) -> None:
    copy = tmp_path / "hub_content"
    shutil.copytree(ROOT, copy)
    target = copy / "unit_operations" / "t-cell-activation" / "1.0.0.yaml"
    target.write_text(
        target.read_text().replace("T-cell activation", "T-cell activation (edited)", 1)
    )
    added = copy / "materials" / "brand-new-buffer" / "1.0.0.yaml"
    added.parent.mkdir()
    import yaml

    added.write_text(yaml.safe_dump(material("brand-new-buffer")))
    before = await owner.fetchval("SELECT count(*) FROM hub_versions")
    with pytest.raises(Conflict) as refused:
        await service.sync(copy, lambda _: None)
    assert "unit_operations/t-cell-activation/1.0.0.yaml" in refused.value.message
    assert "1.0.0" in refused.value.message and "immutable" in refused.value.message
    assert await owner.fetchval("SELECT count(*) FROM hub_versions") == before, "nothing published"


async def test_invalid_file_is_named(tmp_path: Path) -> None:
    root = tmp_path / "hub_content"
    path = root / "materials" / "bad" / "1.0.0.yaml"
    path.parent.mkdir(parents=True)
    data = material("bad")
    data["grade"] = "premium"
    import yaml

    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ContentError, match=r"materials/bad/1.0.0.yaml: grade: "):
        await service.sync(root, lambda _: None)


async def test_published_versions_are_immutable(
    synced: Any, owner: asyncpg.Connection, app_role: asyncpg.Connection
) -> None:
    version_id = await owner.fetchval("SELECT id FROM hub_versions LIMIT 1")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="immutable"):
        await owner.execute("UPDATE hub_versions SET content = '{}' WHERE id = $1", version_id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="immutable"):
        await owner.execute("DELETE FROM hub_versions WHERE id = $1", version_id)
    publisher = await owner.fetchval("SELECT id FROM tenants WHERE slug = 'opencdmo-hub'")
    await app_role.execute("SELECT set_config('app.tenant_id', $1, false)", str(publisher))
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await app_role.execute("UPDATE hub_versions SET content = '{}' WHERE id = $1", version_id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await app_role.execute("DELETE FROM hub_versions WHERE id = $1", version_id)
    # Deprecation is the one change a publisher may make.
    await app_role.execute(
        "UPDATE hub_versions SET deprecated_message = 'use 2.0' WHERE id = $1", version_id
    )
    await app_role.execute(
        "UPDATE hub_versions SET deprecated_message = NULL WHERE id = $1", version_id
    )


async def test_same_content_again_is_a_no_op_and_a_new_version_must_be_newer(world: World) -> None:
    ctx = as_actor(world.beta, world["outsider"])
    slug = f"buffer-{uuid.uuid4().hex[:6]}"
    first = await service.publish(ctx, validate(material(slug, "1.1.0"), "t"), visibility="private")
    again = await service.publish(ctx, validate(material(slug, "1.1.0"), "t"), visibility="private")
    assert first.created and not again.created and again.version_id == first.version_id
    with pytest.raises(ValidationFailed, match="must be newer"):
        await service.publish(ctx, validate(material(slug, "1.0.5"), "t"), visibility="private")


async def test_missing_dependencies_are_listed(synced: Any, world: World) -> None:
    import yaml

    recipe = yaml.safe_load((ROOT / "recipes" / "autologous-car-t" / "1.0.0.yaml").read_text())
    recipe["slug"] = f"car-t-{uuid.uuid4().hex[:6]}"
    recipe["unit_procedures"][0]["operations"][0]["version"] = "9.9.9"
    doc = validate(recipe, "test recipe")
    with pytest.raises(ValidationFailed) as refused:
        await service.publish(as_actor(world.alpha, world["author"]), doc)
    assert "9.9.9" in refused.value.message
    assert refused.value.details["missing"]


async def test_private_items_are_invisible_to_other_tenants(
    synced: Any, world: World, browser: Any
) -> None:
    beta = as_actor(world.beta, world["outsider"])
    slug = f"secret-buffer-{uuid.uuid4().hex[:6]}"
    published = await publish_private(beta, slug)
    alpha_hits = await search(world.alpha, SearchQuery(text=slug))
    assert alpha_hits.total == 0
    beta_hits = await search(beta, SearchQuery(text=slug))
    assert [i.slug for i in beta_hits.items] == [slug]
    client = await browser("viewer")
    response = await client.get(f"/api/v1/t/alpha/hub/items/{published.item_id}")
    assert response.status_code == 404
    random = await client.get(f"/api/v1/t/alpha/hub/items/{uuid.uuid4()}")
    assert response.json()["error"]["message"] == random.json()["error"]["message"]
    # Not counted in the facets either (searched by its own slug: beta's public items may match
    # a broader query).
    facets = (await client.get("/api/v1/t/alpha/hub/items", params={"q": slug})).json()
    assert facets["total"] == 0 and facets["facets"]["publisher"] == []


async def test_slug_parts_that_read_as_numbers_are_found(synced: Any, world: World) -> None:
    # Alone, "84e4d9" is parsed as the number 84e4 and the word d9; inside the slug as one
    # word. The search finds the slug either way.
    beta = as_actor(world.beta, world["outsider"])
    slug = f"secret-buffer-{uuid.uuid4().hex[:4]}-84e4d9"
    await publish_private(beta, slug)
    for text in (slug, "84e4d9", slug.replace("-", " ")):
        hits = await search(beta, SearchQuery(text=text))
        assert slug in [i.slug for i in hits.items], text


async def test_search_with_facets_and_sorting(synced: Any, browser: Any) -> None:
    client = await browser("viewer")
    hits = (
        await client.get("/api/v1/t/alpha/hub/items", params={"q": "lentiviral transduction"})
    ).json()
    assert hits["items"][0]["slug"] == "lentiviral-transduction"
    assert hits["items"][0]["latest_version"] == "2.0.0"
    assert hits["items"][0]["name"] == "Lentiviral transduction of activated T cells"
    kinds = {f["value"]: f["count"] for f in hits["facets"]["kind"]}
    assert kinds.get("unit_operation", 0) >= 1
    filtered = (
        await client.get("/api/v1/t/alpha/hub/items", params={"kind": "method", "per_page": 100})
    ).json()
    assert filtered["total"] >= 12 and {i["kind"] for i in filtered["items"]} == {"method"}
    car_t = (
        await client.get(
            "/api/v1/t/alpha/hub/items",
            params={"modality": "car-t", "kind": "unit_operation", "per_page": 100},
        )
    ).json()
    assert all("car-t" in i["modalities"] for i in car_t["items"]) and car_t["total"] >= 8
    by_name = (
        await client.get("/api/v1/t/alpha/hub/items", params={"sort": "name", "per_page": 5})
    ).json()
    names = [i["name"] for i in by_name["items"]]
    assert names == sorted(names)
    page_two = (
        await client.get(
            "/api/v1/t/alpha/hub/items", params={"sort": "name", "per_page": 5, "page": 2}
        )
    ).json()
    assert not {i["id"] for i in page_two["items"]} & {i["id"] for i in by_name["items"]}
    bad = await client.get("/api/v1/t/alpha/hub/items", params={"sort": "random"})
    assert bad.status_code == 422


async def test_item_detail_shows_versions_parameters_and_dependencies(
    synced: Any, browser: Any
) -> None:
    client = await browser("viewer")
    hits = (
        await client.get(
            "/api/v1/t/alpha/hub/items", params={"q": "autologous CAR-T", "kind": "recipe"}
        )
    ).json()
    recipe_id = hits["items"][0]["id"]
    detail = (await client.get(f"/api/v1/t/alpha/hub/items/{recipe_id}")).json()
    assert [v["version"] for v in detail["versions"]] == ["1.1.0", "1.0.0"]
    pinned = [d for d in detail["dependencies"] if d["pinned"]]
    assert {d["kind"] for d in pinned} >= {"unit_operation", "method"}
    assert any(d["depth"] == 2 for d in detail["dependencies"]), "the tree goes below the recipe"
    page = await client.get(f"/t/alpha/hub/items/{recipe_id}")
    assert page.status_code == 200 and "Dependencies" in page.text
    uo = (await client.get("/api/v1/t/alpha/hub/items", params={"q": "T-cell activation"})).json()[
        "items"
    ][0]
    html = (await client.get(f"/t/alpha/hub/items/{uo['id']}")).text
    assert "Proven acceptable range" in html and "CPP" in html


async def test_browse_page_and_live_search_fragment(synced: Any, browser: Any) -> None:
    client = await browser("viewer")
    page = await client.get("/t/alpha/hub", params={"q": "mycoplasma"})
    assert page.status_code == 200 and "Mycoplasma" in page.text
    fragment = await client.get(
        "/t/alpha/hub", params={"q": "mycoplasma"}, headers={"HX-Request": "true"}
    )
    assert fragment.text.lstrip().startswith('<div id="results"') and "<html" not in fragment.text


async def test_versions_cannot_be_changed_through_the_api(synced: Any, browser: Any) -> None:
    client = await browser("admin")
    hits = (await client.get("/api/v1/t/alpha/hub/items", params={"per_page": 1})).json()
    url = f"/api/v1/t/alpha/hub/items/{hits['items'][0]['id']}"
    for method in ("PUT", "PATCH", "DELETE"):
        response = await client.send(method, url, json={"name": "x"})
        assert response.status_code == 403
        assert "read-only" in response.json()["error"]["message"]


async def test_sharing_deprecating_and_yanking(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    publisher = as_actor(world.beta, world["outsider"])
    slug = f"shared-buffer-{uuid.uuid4().hex[:6]}"
    first = await service.publish(publisher, validate(material(slug), "t"), visibility="private")
    alpha = await browser("viewer")
    url = f"/api/v1/t/alpha/hub/items/{first.item_id}"
    assert (await alpha.get(url)).status_code == 404
    beta = await browser("outsider")
    shared = await beta.send(
        "PUT",
        f"/api/v1/t/beta/hub/publications/{first.item_id}/visibility",
        json={"visibility": "shared", "shared_with": ["alpha"]},
    )
    assert shared.status_code == 200, shared.text
    assert (await alpha.get(url)).status_code == 200
    unknown = await beta.send(
        "PUT",
        f"/api/v1/t/beta/hub/publications/{first.item_id}/visibility",
        json={"visibility": "shared", "shared_with": ["nobody-here"]},
    )
    assert unknown.status_code == 422
    # Only the publisher manages its publications: for alpha it is not one of its own.
    admin = await browser("admin")
    foreign = await admin.send(
        "PUT",
        f"/api/v1/t/alpha/hub/publications/{first.item_id}/visibility",
        json={"visibility": "public"},
    )
    assert foreign.status_code == 404, foreign.text
    mark = f"/api/v1/t/beta/hub/publications/{first.item_id}/versions/1.0.0/mark"
    assert (await beta.send("POST", mark, json={"deprecated_message": ""})).status_code == 422
    assert (
        await beta.send("POST", mark, json={"deprecated_message": "use 2.0"})
    ).status_code == 204
    yank = {"yank": True, "reason": "sterility failure in the field"}
    assert (await beta.send("POST", mark, json=yank)).status_code == 204
    assert (await beta.send("POST", mark, json={"yank": True})).status_code == 409
    assert (
        await owner.fetchval(
            "SELECT reason FROM audit_events WHERE tenant_id = $1 AND entity_id = $2 "
            "AND action = 'hub.version_yanked'",
            world.beta.tenant_id,
            str(first.item_id),
        )
        == "sterility failure in the field"
    )
    detail = (await alpha.get(url)).json()
    assert detail["versions"][0]["deprecated_message"] == "use 2.0"
    assert detail["versions"][0]["yanked"] is True
    actions = [
        r["action"]
        for r in await owner.fetch(
            "SELECT action FROM audit_events WHERE tenant_id = $1 AND entity_id = $2 ORDER BY seq",
            world.beta.tenant_id,
            str(first.item_id),
        )
    ]
    assert actions == [
        "hub.version_published",
        "hub.visibility_changed",
        "hub.version_deprecated",
        "hub.version_yanked",
    ]
    back = await beta.send(
        "PUT",
        f"/api/v1/t/beta/hub/publications/{first.item_id}/visibility",
        json={"visibility": "private"},
    )
    assert back.status_code == 200
    assert (await alpha.get(url)).status_code == 404


async def test_publication_forms(world: World, browser: Any) -> None:
    publisher = as_actor(world.beta, world["outsider"])
    slug = f"form-buffer-{uuid.uuid4().hex[:6]}"
    item = await service.publish(publisher, validate(material(slug), "t"), visibility="private")
    beta = await browser("outsider")
    page = (await beta.get(f"/t/beta/hub/items/{item.item_id}")).text
    assert "Change visibility" in page and "Deprecate" in page
    shared = await beta.send(
        "POST",
        f"/t/beta/hub/items/{item.item_id}/visibility",
        data={"_csrf_token": beta.csrf, "visibility": "shared", "shared_with": "alpha"},
    )
    assert shared.status_code == 303
    marked = await beta.send(
        "POST",
        f"/t/beta/hub/items/{item.item_id}/versions/1.0.0/mark",
        data={"_csrf_token": beta.csrf, "message": "superseded", "action": "deprecate"},
    )
    assert marked.status_code == 303
    alpha = await browser("viewer")
    seen = (await alpha.get(f"/t/alpha/hub/items/{item.item_id}")).text
    assert "deprecated: superseded" in seen
    assert "Change visibility" not in seen
