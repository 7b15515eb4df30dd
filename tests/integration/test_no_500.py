"""Every request that once answered 500 (a traceback in the log) replayed: each is now a 4xx
with a message a person understands, and changes nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
from litestar import Litestar
from litestar.routes import HTTPRoute

from opencdmo.access.policy import roles_with
from opencdmo.recipes import service as recipes
from opencdmo.web.guards import PERMISSION
from tests.conftest import PERSONAS, World
from tests.integration.test_routes_generic import PARAM

DEEP = b"[" * 1000 + b"]" * 1000  # 2 KB


def _error(response: Any) -> dict[str, Any]:
    body = response.json()["error"]
    assert body["status"] == response.status_code
    assert "Traceback" not in body["message"] and "ParamType" not in body["message"]
    return dict(body)


def json_routes(app: Litestar) -> list[tuple[str, str, Any]]:
    """Every API route whose handler reads a JSON body: (path, method, handler)."""
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/api/"):
            continue
        for handler in route.route_handlers:
            if "data" not in handler.parsed_fn_signature.parameters:
                continue
            found += [(route.path, m, handler) for m in sorted(handler.http_methods)]
    return found


def _persona(handler: Any) -> str:
    """An alpha member allowed to call the handler (its guards pass, so the body is read)."""
    permission = handler.opt.get(PERMISSION)
    if permission is None:
        return "admin"
    allowed = set(roles_with(*permission))
    return next(p for p, (t, roles) in PERSONAS.items() if t == "alpha" and set(roles) & allowed)


def _url(path: str) -> str:
    return PARAM.sub(lambda m: "alpha" if m.group(1) == "slug" else str(uuid.uuid4()), path)


async def test_audit_dates_past_the_calendar_are_refused(browser: Any) -> None:
    client = await browser("admin")
    for url in (
        "/api/v1/t/alpha/audit",
        "/api/v1/t/alpha/audit/export",
        "/t/alpha/audit",
    ):
        response = await client.get(url + "?until=9999-12-31")
        assert response.status_code == 422, (url, response.text)
        assert "until" in response.text and "9999-12-31" in response.text
        early = await client.get(url + "?since=0001-01-01T00:00%2B14:00")
        assert early.status_code == 422, (url, early.text)


async def test_deeply_nested_json_is_refused_on_every_json_route(
    app: Litestar, browser: Any
) -> None:
    routes = json_routes(app)
    assert len(routes) >= 15
    for path, method, handler in routes:
        client = await browser(_persona(handler))
        response = await client.send(
            method, _url(path), content=DEEP, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, (method, path, response.text)
        assert "nested more than 32 levels" in _error(response)["message"]


async def test_duplicate_keys_and_lenient_types_are_refused(
    browser: Any, world: World, owner: asyncpg.Connection
) -> None:
    client = await browser("admin")
    member = await owner.fetchval(
        "SELECT m.id FROM memberships m JOIN tenants t ON t.id = m.tenant_id "
        "WHERE t.slug = 'alpha' AND m.user_id = $1",
        world["viewer"].user_id,
    )
    url = f"/api/v1/t/alpha/members/{member}/status"
    twice = await client.send(
        "PUT",
        url,
        content=b'{"active": true, "active": false}',
        headers={"content-type": "application/json"},
    )
    assert twice.status_code == 400, twice.text
    assert "'active' twice" in _error(twice)["message"]
    zero = await client.send("PUT", url, json={"active": 0})
    assert zero.status_code == 422, zero.text
    assert "active: must be true or false, not a whole number" in _error(zero)["message"]
    assert await owner.fetchval("SELECT is_active FROM memberships WHERE id = $1", member)
    email = await client.send(
        "POST", "/api/v1/t/alpha/invitations", json={"email": "x@y@z", "roles": ["viewer"]}
    )
    assert email.status_code == 422, email.text
    assert "not an email address" in _error(email)["message"]


async def test_names_must_show_something_and_have_a_limit(
    browser: Any, owner: asyncpg.Connection
) -> None:
    client = await browser("author")
    before = await owner.fetchval("SELECT count(*) FROM master_recipes")
    for name, expected in [
        ("\u200b\u200b\u200d", "name: must contain visible characters"),
        ("\x01\x02\x7f", "name: must contain visible characters"),
        ("  ", "name: must contain visible characters"),
        ("x" * 600, "name: must be at most 200 characters long"),
        ("x" * 1_500_000, "name: a text of more than 100000 characters is not accepted"),
    ]:
        response = await client.send("POST", "/api/v1/t/alpha/recipes", json={"name": name})
        assert response.status_code == 422, response.text[:200]
        assert expected in _error(response)["message"]
    assert await owner.fetchval("SELECT count(*) FROM master_recipes") == before
    admin = await browser("admin")
    huge = {"email": "huge@alpha.test" + "y" * 1_500_000, "roles": ["viewer"]}
    response = await admin.send("POST", "/api/v1/t/alpha/invitations", json=huge)
    assert response.status_code == 422
    assert "email" in _error(response)["message"]
    assert not await owner.fetchval(
        "SELECT count(*) FROM invitations WHERE email LIKE 'huge@alpha.test%'"
    )


async def _recipe(lab: dict[str, Any], browser: Any) -> tuple[Any, str, Any]:
    recipe = await recipes.create(lab["author"], "Refusals")
    content = {
        "unit_procedures": [
            {
                "key": "up1",
                "name": "Cell processing",
                "operations": [{"key": "activate", "library_item_id": lab["uo"]}],
            }
        ]
    }
    await recipes.save(lab["author"], recipe, content, 1)
    client = await browser("author")
    return client, f"/api/v1/t/{lab['ctx'].slug}/recipes/{recipe}", recipe


async def test_recipe_content_that_would_break_pages_is_refused(
    lab: dict[str, Any], browser: Any
) -> None:
    client, url, recipe = await _recipe(lab, browser)
    good = (await client.get(url)).json()["content"]
    step = good["unit_procedures"][0]["operations"][0]
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "sampling_points": None}, "content.sampling_points: must be a list"),
        ({**good, "release_specifications": None}, "content.release_specifications: must be"),
        (
            {**good, "unit_procedures": [{"key": "up1", "name": "No steps"}]},
            "content.unit_procedures[0].operations: is required",
        ),
        (
            {**good, "formulas": [{"name": "1 L"}]},
            "content.formulas[0].overrides: is required",
        ),
        ({**good, "colour": "blue"}, "content.colour: is not a known field"),
    ]
    for wrong in ([1], {}):
        bad_step = {**step, "content_hash": wrong}
        cases.append(
            (
                {
                    **good,
                    "unit_procedures": [{**good["unit_procedures"][0], "operations": [bad_step]}],
                },
                "content.unit_procedures[0].operations[0].content_hash: must be text or nothing",
            )
        )
    for content, expected in cases:
        response = await client.send(
            "PUT", url + "/content", json={"base_revision": 2, "content": content}
        )
        assert response.status_code == 422, response.text
        assert expected in _error(response)["message"], response.text
    typed = await client.send("PUT", url + "/content", json={"base_revision": "2", "content": good})
    assert typed.status_code == 422
    assert "base_revision: must be a whole number, not text" in _error(typed)["message"]
    assert (await recipes.get(lab["author"], recipe)).current_revision == 2
    page = f"/t/{lab['ctx'].slug}/recipes/{recipe}"
    for view in (page, page + "/design", page + "/compare?left=1&right=2", page + "/print"):
        assert (await client.get(view)).status_code == 200, view
    assert (await client.get(url + "/diff")).status_code == 200


async def test_designer_positions_and_layouts_are_checked(
    lab: dict[str, Any], browser: Any
) -> None:
    client, _, recipe = await _recipe(lab, browser)
    base = f"/t/{lab['ctx'].slug}/recipes/{recipe}/design"

    async def post(action: str, **fields: str) -> Any:
        data = {"_csrf_token": client.csrf, "base_revision": "2", **fields}
        return await client.send("POST", f"{base}/{action}", data=data)

    for position in ("²", "9" * 5000, "-1"):
        response = await post("step", library_item_id=lab["uo"], procedure="up1", position=position)
        assert response.status_code == 422, position
        assert "is not a step number" in response.text
    deep = "[" * 1000 + "]" * 1000
    for layout in ('{"up1": 5}', '{"up1": null}', deep, '{"up1": [[["activate"]]]}', "nope"):
        response = await post("arrange", layout=layout)
        assert response.status_code == 422, layout[:20]
        assert "The arrangement is not readable" in response.text
    assert (await recipes.get(lab["author"], recipe)).current_revision == 2


async def test_concurrent_installs_of_one_item_give_one_install(
    lab: dict[str, Any], browser: Any, owner: asyncpg.Connection
) -> None:
    item = await owner.fetchval(
        "SELECT i.id FROM hub_items i JOIN tenants t ON t.id = i.publisher_id "
        "WHERE t.slug = 'opencdmo-hub' AND i.kind = 'method' ORDER BY i.slug LIMIT 1"
    )
    client = await browser("author")
    url = f"/api/v1/t/{lab['ctx'].slug}/hub/items/{item}/install"
    responses = await asyncio.gather(*(client.send("POST", url, json={}) for _ in range(50)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 49, codes
    conflicts = [r for r in responses if r.status_code == 409]
    assert all("already installed" in _error(r)["message"] for r in conflicts)
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM library_items WHERE tenant_id = $1 AND hub_item_id = $2",
            lab["ctx"].tenant_id,
            item,
        )
        == 1
    )
    events = await owner.fetch(
        "SELECT new_values FROM audit_events WHERE tenant_id = $1 AND action = 'library.installed'",
        lab["ctx"].tenant_id,
    )
    installed = [json.loads(e["new_values"])["hub_item_id"] for e in events]
    assert installed.count(str(item)) == 1


async def test_odd_static_paths(browser: Any) -> None:
    client = await browser()
    for path in ("/static/%00", "/static/css/%00app.css", "/static/../pyproject.toml"):
        response = await client.get(path)
        assert response.status_code == 404, (path, response.status_code)


async def test_big_form_values_are_refused(lab: dict[str, Any], browser: Any) -> None:
    client, _, recipe = await _recipe(lab, browser)
    response = await client.send(
        "POST",
        f"/t/{lab['ctx'].slug}/recipes/{recipe}/design/procedure",
        data={"_csrf_token": client.csrf, "base_revision": "2", "name": "x" * 150_000},
    )
    assert response.status_code == 422
    assert "The field &#39;name&#39; is 150000 characters long" in response.text


async def test_openapi_documents_the_recipe_content_and_its_limits(browser: Any) -> None:
    schema = (await (await browser()).get("/schema/openapi.json")).json()
    components = schema["components"]["schemas"]
    save = components["RevisionSave"]["properties"]
    assert save["content"] == {"$ref": "#/components/schemas/RecipeContent"}
    assert save["base_revision"]["minimum"] == 1
    assert components["RecipeCreate"]["properties"]["name"]["maxLength"] == 200
    procedure = components["UnitProcedure"]
    assert set(procedure["required"]) == {"key", "name", "operations"}


async def test_pages_read_content_stored_with_null_sections(
    lab: dict[str, Any], browser: Any, owner: asyncpg.Connection
) -> None:
    """Revisions stored before the checks existed, with sections saved as null."""
    client, url, recipe = await _recipe(lab, browser)
    await owner.execute(
        "INSERT INTO recipe_revisions (tenant_id, recipe_id, revision, content, content_hash, "
        'message, saved_by) SELECT tenant_id, recipe_id, 3, content || \'{"sampling_points": '
        'null, "release_specifications": null, "formulas": null, "specification": '
        "null}'::jsonb, content_hash, 'stored long ago', saved_by FROM recipe_revisions "
        "WHERE recipe_id = $1 AND revision = 2",
        recipe,
    )
    await owner.execute("UPDATE master_recipes SET current_revision = 3 WHERE id = $1", recipe)
    page = f"/t/{lab['ctx'].slug}/recipes/{recipe}"
    for view in (page, page + "/design", page + "/compare?left=2&right=3", page + "/print"):
        response = await client.get(view)
        assert response.status_code == 200, (view, response.text[-300:])
    diff = await client.get(url + "/diff")
    assert diff.status_code == 200
    assert all("sampling_points" not in change["path"] for change in diff.json())


async def test_bodies_over_two_megabytes_are_refused(browser: Any) -> None:
    client = await browser("author")
    big = b'{"name": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    response = await client.send(
        "POST", "/api/v1/t/alpha/recipes", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert _error(response)["title"] == "Request too large"
    form = await client.send(
        "POST", "/t/alpha/recipes", data={"_csrf_token": client.csrf, "name": "x" * 3_000_000}
    )
    assert form.status_code == 413


async def test_member_token_and_password_fields_have_their_own_limits(
    browser: Any, world: Any, owner: asyncpg.Connection
) -> None:
    """Each text field of the member, invitation, token and password bodies has a limit of its
    own (not only the 100,000-character backstop), and nothing changes."""
    admin = await browser("admin")
    member = await owner.fetchval(
        "SELECT id FROM memberships WHERE user_id = $1", world["viewer"].user_id
    )
    cases = [
        ("POST", "/api/v1/t/alpha/tokens", {"name": "t" * 201}, "name"),
        ("POST", "/api/v1/t/alpha/tokens", {"name": "\u200b"}, "name"),
        (
            "POST",
            "/api/v1/t/alpha/invitations",
            {"email": "a@" + "b" * 400, "roles": ["viewer"]},
            "email",
        ),
        (
            "POST",
            "/api/v1/t/alpha/invitations",
            {"email": "a@b.test", "roles": ["viewer"] * 21},
            "roles",
        ),
        (
            "PUT",
            f"/api/v1/t/alpha/members/{member}/roles",
            {"roles": ["viewer"], "reason": "r" * 10_001},
            "reason",
        ),
        (
            "POST",
            "/api/v1/account/password",
            {"current_password": "x" * 1025, "new_password": "y"},
            "current_password",
        ),
    ]
    tokens_before = await owner.fetchval("SELECT count(*) FROM api_tokens")
    for method, url, body, field in cases:
        response = await admin.send(method, url, json=body)
        assert response.status_code == 422, (url, response.text[:200])
        assert field in _error(response)["message"], (url, _error(response)["message"])
    assert await owner.fetchval("SELECT count(*) FROM api_tokens") == tokens_before
