"""Nothing a user can send produces a 500: malformed bodies, odd parameters, huge or binary
values, on every API route with a body and on the forms."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from litestar import Litestar

from tests.conftest import PASSWORD, World
from tests.integration.export_flow import no_export_wait
from tests.integration.test_routes_generic import FACTORIES, PARAM, tenant_routes

__all__ = ["no_export_wait"]

# Every route is called with no job worker: the export routes answer 202 at once.
pytestmark = pytest.mark.usefixtures("no_export_wait")

BODIES: list[tuple[str, bytes]] = [
    ("application/json", b""),
    ("application/json", b"null"),
    ("application/json", b"[]"),
    ("application/json", b"{not json"),
    ("application/json", b'{"roles": 5, "email": null, "name": ["x"], "active": "yes"}'),
    (
        "application/json",
        b'{"roles": ["viewer\\u0000"], "email": "a\\u0000@b.test", "name": "\\u0000"}',
    ),
    ("application/json", b'{"email": "' + b"a" * 100_000 + b'@b.test", "roles": ["viewer"]}'),
    ("application/json", json.dumps({"roles": [[[[[[]]]]]], "reason": 1e308}).encode()),
    ("application/json", b"\xff\xfe\xfa binary"),
    ("application/x-www-form-urlencoded", b"email=%00&roles=%00&name=%ff%fe&full_name=%00"),
    ("text/plain", b"hello"),
]
QUERIES = [
    "?limit=-1",
    "?limit=abc",
    "?before=abc",
    "?before=-5",
    "?since=9999-99-99",
    "?until=2026-13-01",
    "?since=2026-01-02&until=2026-01-01",
    "?format=xml",
    "?actor=%00",
    "?entity=%00:%00",
    "?action=" + "x" * 5000,
    "?since=2026-01-01T25:00",
]


async def _recipe_id(world: World) -> Any:
    from opencdmo.recipes import service as recipes
    from tests.conftest import as_actor

    return await recipes.create(as_actor(world.alpha, world["author"]), "Fuzz recipe")


async def _ids(world: World) -> dict[str, str]:
    """Objects of their own, so that a request that does get through harms no other test."""
    from opencdmo.identity import service as identity
    from opencdmo.tenancy import service as tenancy

    user = await identity.create_user(f"fuzz-{uuid.uuid4().hex[:8]}@alpha.test", "Fuzz", PASSWORD)
    membership = await tenancy.add_member(world.alpha, user.id, ["viewer"])
    _, token = await identity.create_token(world.alpha, user.id, "fuzz")
    from opencdmo.hub import library
    from tests.integration.test_hub import publish_private

    item = await publish_private(world.alpha)
    await library.install(world.alpha, item.item_id)
    entry = next(
        e for e in await library.list_library(world.alpha) if e.hub_item_id == item.item_id
    )
    from opencdmo.tenancy import invitations

    invitation, _ = await invitations.invite(
        world.alpha, f"fuzz-{uuid.uuid4().hex[:8]}@invited.test", ["viewer"], hours=1
    )
    ids = {
        "invitation_id": str(invitation.id),
        "member_id": str(membership),
        "token_id": str(token.id),
        "item_id": str(item.item_id),
        "library_id": str(entry.id),
        "version": "1.0.0",
        "action": "arrange",
        "recipe_id": str(await _recipe_id(world)),
        "import_id": await FACTORIES["import_id"](world, world.alpha),
        "batch_id": await FACTORIES["batch_id"](world, world.alpha),
        "command": "start",
        "exception_id": await FACTORIES["exception_id"](world, world.alpha),
        "deviation_id": await FACTORIES["deviation_id"](world, world.alpha),
        "material_id": await FACTORIES["material_id"](world, world.alpha),
        "lot_id": await FACTORIES["lot_id"](world, world.alpha),
        "location_id": await FACTORIES["location_id"](world, world.alpha),
        "container_id": await FACTORIES["container_id"](world, world.alpha),
        "start_id": await FACTORIES["start_id"](world, world.alpha),
        "code": await FACTORIES["code"](world, world.alpha),
        "certificate_id": await FACTORIES["certificate_id"](world, world.alpha),
        "trusted_key_id": await FACTORIES["trusted_key_id"](world, world.alpha),
        "package_id": await FACTORIES["package_id"](world, world.alpha),
        "link_id": await FACTORIES["link_id"](world, world.alpha),
        "document_id": await FACTORIES["document_id"](world, world.alpha),
        "job_id": await FACTORIES["job_id"](world, world.alpha),
        "export_id": await FACTORIES["export_id"](world, world.alpha),
        "step": "activate",
        "phase": "seeding",
    }
    assert set(ids) == set(FACTORIES) | {"version", "action", "command", "step", "phase"}, (
        "add the new id parameter here"
    )
    return ids


async def test_bodies_never_cause_a_500(app: Litestar, world: World, browser: Any) -> None:
    client = await browser("admin")
    ids = await _ids(world)
    failures = []
    for path, method, _ in tenant_routes(app):
        if method == "GET":
            continue
        url = PARAM.sub(lambda m: "alpha" if m.group(1) == "slug" else ids[m.group(1)], path)
        for content_type, body in BODIES:
            response = await client.send(
                method, url, content=body, headers={"content-type": content_type}
            )
            if response.status_code >= 500:
                failures.append(f"{method} {url} {body[:40]!r}: {response.status_code}")
    assert not failures, "\n".join(failures)


async def test_query_parameters_never_cause_a_500(
    app: Litestar, world: World, browser: Any
) -> None:
    client = await browser("admin")
    ids = await _ids(world)
    failures = []
    for path, method, _ in tenant_routes(app):
        if method != "GET":
            continue
        url = PARAM.sub(lambda m: "alpha" if m.group(1) == "slug" else ids[m.group(1)], path)
        for query in QUERIES:
            response = await client.get(url + query)
            if response.status_code >= 500:
                failures.append(f"GET {url}{query}: {response.status_code}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    ("email", "password", "expected"),
    [
        ("\x00", "x", 422),  # not storable: refused as input
        ("a@b.test", "\x00" * 20, 401),  # simply a wrong password
        ("a" * 50_000 + "@b.test", "p" * 100_000, 422),  # over the field limits
        ("", "", 401),
        ("ünïcødé@exämple.test", "pässwörd-lång-genug", 401),
    ],
)
async def test_login_with_odd_input(browser: Any, email: str, password: str, expected: int) -> None:
    client = await browser(address="10.9.9.9")
    response = await client.login(email, password)
    assert response.status_code == expected, response.text[:300]


async def test_odd_paths(browser: Any) -> None:
    client = await browser("admin")
    for path in [
        "/t/%00/",
        "/t/" + "x" * 3000 + "/",
        "/api/v1/t/alpha/members/%00",
        "/t/alpha/members/00000000-0000-0000-0000-00000000000g/roles",
        "/t/ALPHA/",
    ]:
        response = await client.get(path)
        assert response.status_code < 500, (path, response.status_code)
