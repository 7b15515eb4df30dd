"""Stock: approved suppliers (a receipt from another is refused), reorder levels, what is on
hand, and the materials handler's queues (containers to label, lots expiring within 30
days, materials below their reorder level), through the JSON API and the work registry."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta
from typing import Any

import pytest

from opencdmo.work import registry
from tests.conftest import World, member_as
from tests.integration.test_inventory import SIGN, material, receipt
from tests.integration.test_inventory import Store as Depot
from tests.integration.test_locations import new_depot, said


@pytest.fixture
async def depot(world: World) -> Depot:
    return await new_depot(world, "stk")


async def test_a_receipt_from_a_supplier_not_approved_is_refused_naming_the_approved(
    depot: Depot, browser: Any
) -> None:
    handler = await browser("operator")
    pbs = await material(handler, depot)
    url = depot.url(f"/materials/{pbs}/suppliers")
    set_ = await handler.send("POST", url, json={"suppliers": ["Gibco ", "Lonza", "gibco"]})
    assert set_.status_code == 200, set_.text
    assert set_.json()["approved_suppliers"] == ["Gibco", "Lonza"]
    refused = await handler.send("POST", depot.url("/lots"), json=receipt(pbs, supplier="Acme Bio"))
    assert refused.status_code == 422
    assert refused.json()["error"]["message"] == (
        "Acme Bio is not an approved supplier of PBS; approved: Gibco, Lonza."
    )
    assert (await handler.get(depot.url("/lots"))).json()["items"] == []
    taken = await handler.send("POST", depot.url("/lots"), json=receipt(pbs, supplier="LONZA"))
    assert taken.status_code == 201, taken.text
    cleared = await handler.send("POST", url, json={"suppliers": []})
    assert cleared.json()["approved_suppliers"] == []
    anyone = await handler.send(
        "POST", depot.url("/lots"), json=receipt(pbs, lot="L-2", supplier="Acme Bio")
    )
    assert anyone.status_code == 201
    text = await said(depot.ctx)
    assert "Operator Person set the approved suppliers of material PBS to Gibco, Lonza" in text
    assert "Operator Person set the approved suppliers of material PBS to any supplier" in text


async def test_reorder_levels_and_what_is_on_hand(depot: Depot, browser: Any) -> None:
    handler, qa = await browser("operator"), await browser("approver")
    pbs = await material(handler, depot)  # default unit mL
    url = depot.url(f"/materials/{pbs}/reorder-level")
    set_ = await handler.send("POST", url, json={"reorder_level": "3000"})
    assert set_.status_code == 200 and set_.json()["reorder_level"] == "3000"
    stock = depot.url(f"/materials/{pbs}/stock")
    assert (await handler.get(stock)).json()["on_hand"] == "0"
    lot = await handler.send("POST", depot.url("/lots"), json=receipt(pbs))  # 2 L, quarantine
    assert lot.status_code == 201
    now = (await handler.get(stock)).json()
    assert now["on_hand"] == "2000" and now["below_reorder_level"] is True
    below = (await handler.get(depot.url("/stock/below-reorder-level"))).json()
    assert [b["code"] for b in below] == ["PBS"]
    await qa.send("POST", depot.url(f"/lots/{lot.json()['id']}/reject"), json=SIGN)
    assert (await handler.get(stock)).json()["on_hand"] == "0"
    await handler.send("POST", depot.url("/lots"), json=receipt(pbs, lot="L-2", quantity="3"))
    past = (date.today() - timedelta(days=1)).isoformat()
    await handler.send("POST", depot.url("/lots"), json=receipt(pbs, lot="OLD", expiry_date=past))
    assert (await handler.get(stock)).json()["on_hand"] == "3000"
    assert (await handler.get(depot.url("/stock/below-reorder-level"))).json() == []
    for bad in ("-1", "NaN", "1e400"):
        refused = await handler.send("POST", url, json={"reorder_level": bad})
        assert refused.status_code in (400, 422), bad
    removed = await handler.send("POST", url, json={"reorder_level": None})
    assert removed.json()["reorder_level"] is None
    text = await said(depot.ctx)
    assert "Operator Person set the reorder level of material PBS to 3000 mL" in text
    assert "Operator Person removed the reorder level of material PBS" in text


async def test_stock_settings_by_role_and_in_another_tenant(
    depot: Depot, world: World, browser: Any
) -> None:
    handler, qc, viewer = (
        await browser("operator"),
        await browser("author"),
        await browser("viewer"),
    )
    pbs = await material(handler, depot)
    for person in (qc, viewer):
        for path, body in (
            ("reorder-level", {"reorder_level": "1"}),
            ("suppliers", {"suppliers": []}),
        ):
            answer = await person.send("POST", depot.url(f"/materials/{pbs}/{path}"), json=body)
            assert answer.status_code == 403
    other = await new_depot(world, "oth")
    for ident in (pbs, str(uuid.uuid4())):
        for path, body in (
            ("reorder-level", {"reorder_level": "1"}),
            ("suppliers", {"suppliers": []}),
        ):
            answer = await handler.send("POST", other.url(f"/materials/{ident}/{path}"), json=body)
            assert answer.status_code == 404
            assert answer.json()["error"]["message"] == "No such material."
        assert (await handler.get(other.url(f"/materials/{ident}/stock"))).status_code == 404


async def test_two_people_setting_a_reorder_level_at_once_both_apply_in_turn(
    depot: Depot, browser: Any
) -> None:
    one, two = await browser("operator"), await browser("supervisor")
    pbs = await material(one, depot)
    url = depot.url(f"/materials/{pbs}/reorder-level")
    answers = await asyncio.gather(
        one.send("POST", url, json={"reorder_level": "10"}),
        two.send("POST", url, json={"reorder_level": "20"}),
    )
    assert [a.status_code for a in answers] == [200, 200]
    final = (await one.get(depot.url(f"/materials/{pbs}"))).json()["reorder_level"]
    text = await said(depot.ctx)
    levels = [s for s in text if "set the reorder level" in s]
    assert len(levels) == 2 and final in ("10", "20")


async def test_the_handlers_queues(depot: Depot, world: World, browser: Any) -> None:
    handler = await browser("operator")
    pbs = await material(handler, depot)
    await handler.send(
        "POST", depot.url(f"/materials/{pbs}/reorder-level"), json={"reorder_level": "5000"}
    )
    soon = (date.today() + timedelta(days=10)).isoformat()
    later = (date.today() + timedelta(days=40)).isoformat()
    past = (date.today() - timedelta(days=1)).isoformat()
    near = (
        await handler.send(
            "POST",
            depot.url("/lots"),
            json=receipt(pbs, lot="SOON", expiry_date=soon, containers=2),
        )
    ).json()
    await handler.send(
        "POST", depot.url("/lots"), json=receipt(pbs, lot="LATER", expiry_date=later)
    )
    await handler.send("POST", depot.url("/lots"), json=receipt(pbs, lot="GONE", expiry_date=past))
    me = await member_as(depot.ctx, world["operator"])

    async def queues() -> dict[str, registry.Queue]:
        return {q.key: q for q in await registry.queues_for(me)}

    found = await queues()
    assert found["containers_to_label"].count == 4
    assert [i.label for i in found["lots_expiring_soon"].items] == ["Lot SOON of PBS"]
    assert [i.label for i in found["materials_below_reorder_level"].items] == ["PBS PBS buffer"]
    assert "On hand 4000 mL" in (found["materials_below_reorder_level"].items[0].note or "")
    expiring = (await handler.get(depot.url("/lots/expiring"))).json()
    assert [e["lot_number"] for e in expiring] == ["SOON"]
    to_label = (await handler.get(depot.url("/containers/to-label"))).json()
    assert [(c["lot_number"], c["number"]) for c in to_label][:2] == [("SOON", 1), ("SOON", 2)]

    first = near["containers"][0]["id"]
    printed = await handler.send(
        "POST", depot.url(f"/lots/{near['id']}/labels-printed"), json={"container_ids": [first]}
    )
    assert printed.status_code == 200 and printed.json() == {"containers": [1]}
    assert (await queues())["containers_to_label"].count == 3
    both = await asyncio.gather(
        handler.send("POST", depot.url(f"/lots/{near['id']}/labels-printed"), json={}),
        (await browser("supervisor")).send(
            "POST", depot.url(f"/lots/{near['id']}/labels-printed"), json={}
        ),
    )
    assert [b.status_code for b in both] == [200, 200]
    assert (await queues())["containers_to_label"].count == 2
    work = (await handler.get(depot.url("/work"))).json()
    keys = {q["key"]: q for q in work["queues"]}
    assert keys["containers_to_label"]["count"] == 2
    assert keys["lots_expiring_soon"]["awaits_action"] is False
    text = await said(depot.ctx)
    assert "Operator Person printed the labels of lot SOON (containers 1)" in text
    qc = await member_as(depot.ctx, world["author"])
    assert "containers_to_label" not in {q.key for q in await registry.queues_for(qc)}


async def test_labels_printed_by_role_and_of_another_lot(
    depot: Depot, world: World, browser: Any
) -> None:
    handler, qc = await browser("operator"), await browser("author")
    pbs = await material(handler, depot)
    one = (await handler.send("POST", depot.url("/lots"), json=receipt(pbs))).json()
    two = (await handler.send("POST", depot.url("/lots"), json=receipt(pbs, lot="L-2"))).json()
    url = depot.url(f"/lots/{one['id']}/labels-printed")
    assert (await qc.send("POST", url, json={})).status_code == 403
    wrong = await handler.send("POST", url, json={"container_ids": [two["containers"][0]["id"]]})
    assert wrong.status_code == 404
    other = await new_depot(world, "oth")
    stolen = await handler.send("POST", other.url(f"/lots/{one['id']}/labels-printed"), json={})
    assert stolen.status_code == 404
    assert (await handler.get(depot.url("/containers/to-label"))).json()[0][
        "label_printed_at"
    ] is None
