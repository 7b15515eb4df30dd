"""Storage locations and container moves: the tree's kind order and sibling codes, receipt
at a location, moves (audited, one container per position, two people filling one position
at once), storage condition warnings, retiring, and another tenant's locations and
containers, through the JSON API against the real database."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from opencdmo.audit import queries as audit_queries
from opencdmo.audit import sentences
from opencdmo.audit.queries import AuditFilter
from opencdmo.db.tx import read_view
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext
from opencdmo.tenancy import service as tenancy
from tests.conftest import World
from tests.integration.test_inventory import ROLES, material, receipt
from tests.integration.test_inventory import Store as Depot

STORAGE = ("Main site", "Room 101", "Freezer F-2", "Rack 3", "Box 7")


async def new_depot(world: World, prefix: str = "loc") -> Depot:
    ctx = await tenancy.create_tenant(
        f"{prefix}-{uuid.uuid4().hex[:8]}", "Storage Plant", "cdmo", SYSTEM, RequestMeta()
    )
    await tenancy.upsert_site(ctx, "A1", "Main site", "Europe/Berlin")
    for key, roles in ROLES.items():
        await tenancy.add_member(ctx, world[key].user_id, roles)
    return Depot(ctx, ctx.slug)


@pytest.fixture
async def depot(world: World) -> Depot:
    return await new_depot(world)


async def add(client: Any, depot: Depot, expect: int = 201, **body: Any) -> dict[str, Any]:
    made = await client.send("POST", depot.url("/locations"), json=body)
    assert made.status_code == expect, made.text
    found: dict[str, Any] = made.json()
    return found


async def storage(client: Any, depot: Depot) -> dict[str, dict[str, Any]]:
    """Main site / Room 101 / Freezer F-2 (-80 °C) / Rack 3 / Box 7 / A1, A2."""
    site = await add(client, depot, kind="site", site="A1")
    room = await add(client, depot, kind="room", code="101", parent_id=site["id"])
    freezer = await add(
        client,
        depot,
        kind="freezer",
        code="F-2",
        parent_id=room["id"],
        storage_condition="-80 °C",
    )
    rack = await add(client, depot, kind="rack", code="3", parent_id=freezer["id"])
    box = await add(client, depot, kind="box", code="7", parent_id=rack["id"])
    a1 = await add(client, depot, kind="position", code="A1", parent_id=box["id"])
    a2 = await add(client, depot, kind="position", code="A2", parent_id=box["id"])
    return {"site": site, "room": room, "freezer": freezer, "rack": rack, "box": box} | {
        "a1": a1,
        "a2": a2,
    }


async def receive(client: Any, depot: Depot, material_id: str, **more: Any) -> dict[str, Any]:
    made = await client.send("POST", depot.url("/lots"), json=receipt(material_id, **more))
    assert made.status_code == 201, made.text
    found: dict[str, Any] = made.json()
    return found


async def move(client: Any, depot: Depot, to: str, *ids: str, reason: str | None = None) -> Any:
    body: dict[str, Any] = {"container_ids": list(ids)}
    if reason is not None:
        body["reason"] = reason
    return await client.send("POST", depot.url(f"/locations/{to}/containers"), json=body)


async def said(ctx: TenantContext) -> list[str]:
    async with read_view(ctx):
        rows, _ = await audit_queries.page(ctx, AuditFilter(), limit=200, before=None)
        return [s.text for s in await sentences.describe(ctx, rows)]


async def test_the_tree_keeps_its_kind_order_and_paths(depot: Depot, browser: Any) -> None:
    handler = await browser("operator")
    made = await storage(handler, depot)
    assert made["a1"]["path"] == " / ".join((*STORAGE, "A1"))
    assert made["a1"]["kept_condition"] == "-80 °C" and made["a1"]["storage_condition"] == ""
    assert made["box"]["name"] == "Box 7" and made["a1"]["name"] == "A1"
    await add(handler, depot, kind="position", code="a10", parent_id=made["box"]["id"])
    await add(handler, depot, kind="box", code="8", parent_id=made["freezer"]["id"])
    tree = (await handler.get(depot.url("/locations"))).json()["items"]
    assert [(t["depth"], t["code"]) for t in tree] == [
        (0, "A1"),
        (1, "101"),
        (2, "F-2"),
        (3, "3"),
        (4, "7"),
        (5, "A1"),
        (5, "A2"),
        (5, "a10"),
        (3, "8"),
    ]
    detail = (await handler.get(depot.url(f"/locations/{made['box']['id']}"))).json()
    assert [c["code"] for c in detail["children"]] == ["A1", "A2", "a10"]
    assert {c["depth"] for c in detail["children"]} == {5}
    assert detail["children"][0]["path"] == made["a1"]["path"]


@pytest.mark.parametrize(
    ("kind", "parent", "words"),
    [
        ("rack", "room", "A rack stands in a freezer or fridge"),
        ("position", "rack", "A position stands in a box, not in a rack"),
        ("room", "box", "A room stands in a site"),
        ("freezer", "site", "not in a site"),
        ("room", None, "choose where"),
        ("box", "a1", "not in a position"),
    ],
)
async def test_a_location_stands_only_where_its_kind_may(
    depot: Depot, browser: Any, kind: str, parent: str | None, words: str
) -> None:
    handler = await browser("operator")
    made = await storage(handler, depot)
    body: dict[str, Any] = {"kind": kind, "code": "X1"}
    if parent:
        body["parent_id"] = made[parent]["id"]
    refused = await add(handler, depot, expect=422, **body)
    assert words in refused["error"]["message"], refused
    assert len((await handler.get(depot.url("/locations"))).json()["items"]) == 7


async def test_codes_are_unique_among_siblings_and_a_site_has_one_root(
    depot: Depot, browser: Any
) -> None:
    handler = await browser("operator")
    made = await storage(handler, depot)
    again = await add(
        handler, depot, expect=409, kind="position", code="a1", parent_id=made["box"]["id"]
    )
    assert "has a location a1 already" in again["error"]["message"]
    other_box = await add(handler, depot, kind="box", code="9", parent_id=made["rack"]["id"])
    await add(handler, depot, kind="position", code="A1", parent_id=other_box["id"])
    root = await add(handler, depot, expect=409, kind="site", site="A1")
    assert "has its storage location already" in root["error"]["message"]
    unknown = await add(handler, depot, expect=422, kind="site", site="ZZ")
    assert "sites" in unknown["error"]["message"]
    blank = await add(
        handler, depot, expect=422, kind="room", code=" ", parent_id=made["site"]["id"]
    )
    assert "code" in blank["error"]["message"].lower()


async def test_receipt_puts_the_containers_at_a_location_and_moves_are_audited(
    depot: Depot, browser: Any
) -> None:
    handler = await browser("operator")
    made = await storage(handler, depot)
    pbs = await material(handler, depot)
    lot = await receive(handler, depot, pbs, containers=2, location_id=made["box"]["id"])
    box_path = " / ".join(STORAGE)
    assert [c["location"] for c in lot["containers"]] == [box_path, box_path]
    first, second = (c["id"] for c in lot["containers"])

    moved = await move(handler, depot, made["a1"]["id"], first, reason="sorted into the box")
    assert moved.status_code == 200, moved.text
    item = moved.json()["items"][0]
    assert item["from_location"] == box_path
    assert item["container"]["location"] == box_path + " / A1"
    got = (await handler.get(depot.url(f"/containers/{first}"))).json()
    assert [(m["from_location"], m["to_location"], m["reason"]) for m in got["moves"]] == [
        (None, box_path, "received"),
        (box_path, box_path + " / A1", "sorted into the box"),
    ]

    there = await move(handler, depot, made["a1"]["id"], first)
    assert there.status_code == 409 and "is in" in there.json()["error"]["message"]
    full = await move(handler, depot, made["a1"]["id"], second)
    assert full.status_code == 409
    assert "holds a container already" in full.json()["error"]["message"]
    both = await move(handler, depot, made["a2"]["id"], first, second)
    assert both.status_code == 422 and "A position holds one container" in both.text
    at_site = await move(handler, depot, made["site"]["id"], second)
    assert at_site.status_code == 422 and "is a site" in at_site.text
    assert (await move(handler, depot, made["a2"]["id"])).status_code in (400, 422)

    text = await said(depot.ctx)
    assert (
        f"Operator Person moved container 1 of lot L-001 from {box_path} to {box_path} / A1" in text
    )
    async with read_view(depot.ctx):
        rows, _ = await audit_queries.page(
            depot.ctx, AuditFilter(action="container.moved"), limit=10, before=None
        )
    assert len(rows) == 1 and rows[0].reason == "sorted into the box"
    received = (await handler.get(depot.url(f"/lots/{lot['id']}"))).json()
    assert [c["location"] for c in received["containers"]] == [box_path + " / A1", box_path]


async def test_a_container_of_a_rejected_lot_still_moves(depot: Depot, browser: Any) -> None:
    from tests.integration.test_inventory import SIGN

    handler, qc = await browser("operator"), await browser("author")
    made = await storage(handler, depot)
    pbs = await material(handler, depot)
    lot = await receive(handler, depot, pbs)
    rejected = await qc.send("POST", depot.url(f"/lots/{lot['id']}/reject"), json=SIGN)
    assert rejected.status_code == 200
    waste = await add(
        handler, depot, kind="room", code="W", name="Waste", parent_id=made["site"]["id"]
    )
    moved = await move(handler, depot, waste["id"], lot["containers"][0]["id"], reason="destroy")
    assert moved.status_code == 200
    assert moved.json()["items"][0]["container"]["status"] == "rejected"


async def test_two_people_filling_one_position_at_once_one_wins(depot: Depot, browser: Any) -> None:
    one, two = await browser("operator"), await browser("supervisor")
    made = await storage(one, depot)
    pbs = await material(one, depot)
    lot = await receive(one, depot, pbs, containers=2, location_id=made["box"]["id"])
    first, second = (c["id"] for c in lot["containers"])
    answers = await asyncio.gather(
        move(one, depot, made["a1"]["id"], first), move(two, depot, made["a1"]["id"], second)
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    refused = next(a for a in answers if a.status_code == 409)
    assert "holds a container already" in refused.json()["error"]["message"]
    held = (await one.get(depot.url(f"/locations/{made['a1']['id']}"))).json()["stored"]
    assert len(held) == 1


async def test_two_people_adding_one_location_at_once_one_adds_it(
    depot: Depot, browser: Any
) -> None:
    one, two = await browser("operator"), await browser("supervisor")
    answers = await asyncio.gather(
        one.send("POST", depot.url("/locations"), json={"kind": "site", "site": "A1"}),
        two.send("POST", depot.url("/locations"), json={"kind": "site", "site": "A1"}),
    )
    assert sorted(a.status_code for a in answers) == [201, 409]
    site = next(a for a in answers if a.status_code == 201).json()
    room = {"kind": "room", "code": "101", "parent_id": site["id"]}
    answers = await asyncio.gather(
        one.send("POST", depot.url("/locations"), json=room),
        two.send("POST", depot.url("/locations"), json=room),
    )
    assert sorted(a.status_code for a in answers) == [201, 409]
    assert len((await one.get(depot.url("/locations"))).json()["items"]) == 2


async def test_a_location_keeping_another_condition_warns_and_does_not_refuse(
    depot: Depot, browser: Any
) -> None:
    handler = await browser("operator")
    made = await storage(handler, depot)
    pbs = await material(handler, depot)  # kept at 2-8 °C
    fridge = await add(
        handler,
        depot,
        kind="fridge",
        code="K-1",
        parent_id=made["room"]["id"],
        storage_condition="2–8°C",
    )
    lot = await receive(handler, depot, pbs, location_id=fridge["id"])
    stored = (await handler.get(depot.url(f"/locations/{fridge['id']}"))).json()["stored"]
    assert stored[0]["warning"] is None
    moved = await move(handler, depot, made["a1"]["id"], lot["containers"][0]["id"])
    assert moved.status_code == 200
    warning = moved.json()["items"][0]["container"]["warning"]
    assert warning == f"PBS is stored at 2-8 °C; {' / '.join(STORAGE)} / A1 keeps -80 °C."


async def test_retiring_a_location_needs_it_empty_and_says_why(depot: Depot, browser: Any) -> None:
    handler = await browser("operator")
    made = await storage(handler, depot)
    pbs = await material(handler, depot)
    lot = await receive(handler, depot, pbs, location_id=made["a1"]["id"])
    url = depot.url(f"/locations/{made['a1']['id']}/retire")
    full = await handler.send("POST", url, json={"reason": "box cracked"})
    assert full.status_code == 409 and "holds 1 container" in full.text
    parent = await handler.send(
        "POST", depot.url(f"/locations/{made['box']['id']}/retire"), json={"reason": "x"}
    )
    assert parent.status_code == 409 and "still has locations in use" in parent.text
    assert (
        await handler.send(
            "POST", url.replace(made["a1"]["id"], made["a2"]["id"]), json={"reason": " "}
        )
    ).status_code == 422
    answers = await asyncio.gather(
        handler.send(
            "POST", url.replace(made["a1"]["id"], made["a2"]["id"]), json={"reason": "cracked"}
        ),
        (await browser("supervisor")).send(
            "POST", url.replace(made["a1"]["id"], made["a2"]["id"]), json={"reason": "cracked"}
        ),
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    gone = await move(handler, depot, made["a2"]["id"], lot["containers"][0]["id"])
    assert gone.status_code == 409 and "is retired" in gone.text
    tree = (await handler.get(depot.url("/locations"))).json()["items"]
    assert "A2" not in [t["code"] for t in tree]
    again = await add(handler, depot, kind="position", code="A2", parent_id=made["box"]["id"])
    assert again["code"] == "A2"
    path = " / ".join((*STORAGE, "A2"))
    text = await said(depot.ctx)
    assert f"Operator Person retired the storage location {path}" in text
    assert f"Operator Person added the storage location {path}" in text


async def test_locations_and_moves_by_role(depot: Depot, browser: Any) -> None:
    handler, qc, viewer = (
        await browser("operator"),
        await browser("author"),
        await browser("viewer"),
    )
    made = await storage(handler, depot)
    pbs = await material(handler, depot)
    lot = await receive(handler, depot, pbs)
    container = lot["containers"][0]["id"]
    for person in (qc,):
        assert (await person.get(depot.url("/locations"))).status_code == 200
        assert await add(
            person, depot, expect=403, kind="room", code="9", parent_id=made["site"]["id"]
        )
        assert (await move(person, depot, made["a1"]["id"], container)).status_code == 403
    assert (await viewer.get(depot.url("/locations"))).status_code == 403
    assert (await move(viewer, depot, made["a1"]["id"], container)).status_code == 403


async def test_another_tenants_locations_and_containers_are_not_found(
    depot: Depot, world: World, browser: Any
) -> None:
    """The same person handles materials in two tenants: in the other one, this tenant's
    locations and containers are the same 404 as ids that do not exist."""
    handler = await browser("operator")
    made = await storage(handler, depot)
    pbs = await material(handler, depot)
    lot = await receive(handler, depot, pbs)
    container = lot["containers"][0]["id"]
    other = await new_depot(world, "oth")
    mine = await storage(handler, other)
    other_pbs = await material(handler, other)
    for ident in (made["box"]["id"], str(uuid.uuid4())):
        got = await handler.get(other.url(f"/locations/{ident}"))
        assert got.status_code == 404 and got.json()["error"]["message"] == "No such location."
        child = await add(handler, other, expect=404, kind="position", code="Z", parent_id=ident)
        assert child["error"]["message"] == "No such location."
        retired = await handler.send(
            "POST", other.url(f"/locations/{ident}/retire"), json={"reason": "x"}
        )
        assert retired.status_code == 404
        assert (await move(handler, other, ident, container)).status_code == 404
        placed = await handler.send(
            "POST", other.url("/lots"), json=receipt(other_pbs, location_id=ident)
        )
        assert placed.status_code == 404
    for ident in (container, str(uuid.uuid4())):
        stolen = await move(handler, other, mine["a1"]["id"], ident)
        assert (
            stolen.status_code == 404 and stolen.json()["error"]["message"] == "No such container."
        )
        assert (await handler.get(other.url(f"/containers/{ident}"))).status_code == 404
    assert (await handler.get(depot.url(f"/containers/{container}"))).json()["location"] is None
    assert (await handler.get(other.url(f"/locations/{mine['a1']['id']}"))).json()["stored"] == []
