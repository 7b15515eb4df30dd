"""The inventory's pages and their forms through the app client: the material master and a
material's settings, the receipt form, the lot page's QC decision, hold and move forms
(shown only to those who may use them), the storage pages, labels and the dashboard's
queues."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import PASSWORD, World
from tests.integration.test_inventory import Store as Depot
from tests.integration.test_inventory import material, receipt
from tests.integration.test_locations import new_depot, storage


@pytest.fixture
async def depot(world: World) -> Depot:
    return await new_depot(world, "pg")


def page(depot: Depot, rest: str) -> str:
    return f"/t/{depot.slug}{rest}"


async def post(client: Any, url: str, **data: Any) -> Any:
    return await client.http.post(url, data={**data, "_csrf_token": client.csrf})


async def test_the_material_master_and_a_materials_settings(depot: Depot, browser: Any) -> None:
    handler, viewer = await browser("operator"), await browser("author")
    listed = await handler.get(page(depot, "/materials"))
    assert listed.status_code == 200 and 'id="material-form"' in listed.text
    assert 'id="material-form"' not in (await viewer.get(page(depot, "/materials"))).text
    made = await post(
        handler,
        page(depot, "/materials"),
        code="PBS",
        name="PBS buffer",
        material_type="reagent",
        default_unit="mL",
        storage_condition="2-8 °C",
        shelf_life_days="365",
    )
    assert made.status_code == 303, made.text
    url = made.headers["location"]
    again = await post(
        handler,
        page(depot, "/materials"),
        code="PBS",
        name="x",
        material_type="reagent",
        default_unit="mL",
    )
    assert again.status_code == 409 and "exists already" in again.text
    assert 'value="x"' in again.text  # the form as sent
    bad = await post(
        handler,
        page(depot, "/materials"),
        code="X",
        name="x",
        material_type="reagent",
        default_unit="furlong",
    )
    assert bad.status_code == 422 and "not a unit" in bad.text

    level = await post(handler, url + "/reorder-level", reorder_level="5000")
    assert level.status_code == 303
    refused = await post(handler, url + "/reorder-level", reorder_level="lots")
    assert refused.status_code == 422 and "give a number" in refused.text
    suppliers = await post(handler, url + "/suppliers", suppliers="Gibco\nLonza\n")
    assert suppliers.status_code == 303
    shown = await handler.get(url)
    assert "Gibco, Lonza" in shown.text and "5000 mL" in shown.text
    assert "below reorder level" in shown.text
    assert 'class="reorder-form"' not in (await viewer.get(url)).text
    assert (await post(viewer, url + "/reorder-level", reorder_level="1")).status_code == 403


async def test_the_receipt_form_receives_a_lot_at_a_location(depot: Depot, browser: Any) -> None:
    handler = await browser("operator")
    made = await storage(handler, depot)
    pbs = await material(handler, depot)
    form = await handler.get(page(depot, "/lots/new"))
    assert form.status_code == 200
    assert 'enctype="multipart/form-data"' in form.text and "Box 7" in form.text
    fields = {
        "material_id": pbs,
        "lot_number": "L-77",
        "supplier": "Gibco",
        "supplier_lot": "S-1",
        "quantity": "2",
        "unit": "L",
        "expiry_date": "",
        "containers": "0.5, 1.5",
        "location_id": made["box"]["id"],
        "coa_note": "",
        "_csrf_token": handler.csrf,
    }
    sent = await handler.http.post(
        page(depot, "/lots"),
        data=fields,
        files={"coa": ("", b"", "application/octet-stream")},  # the file input left empty
    )
    assert sent.status_code == 303, sent.text
    lot = await handler.get(sent.headers["location"])
    assert (
        "Lot L-77" in lot.text and "Main site / Room 101 / Freezer F-2 / Rack 3 / Box 7" in lot.text
    )
    assert "PBS is stored at 2-8 °C" in lot.text  # the box keeps -80 °C
    refused = await post(handler, page(depot, "/lots"), **{**fields, "containers": "3"})
    assert refused.status_code in (409, 422) and 'id="receipt-refusal"' in refused.text
    assert 'value="L-77"' in refused.text
    # With its certificate of analysis: kept with the lot.
    pdf = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
    sent = await handler.http.post(
        page(depot, "/lots"),
        data={**fields, "lot_number": "L-78"},
        files={"coa": ("CoA L-78.pdf", pdf, "application/pdf")},
    )
    assert sent.status_code == 303, sent.text
    lot = await handler.get(sent.headers["location"])
    assert "CoA L-78.pdf" in lot.text
    bad = await handler.http.post(
        page(depot, "/lots"),
        data={**fields, "lot_number": "L-79"},
        files={"coa": ("coa.pdf", b"not a pdf at all", "application/pdf")},
    )
    assert bad.status_code == 422 and 'id="receipt-refusal"' in bad.text


async def test_the_lot_page_offers_each_person_their_forms(depot: Depot, browser: Any) -> None:
    handler, qc = await browser("operator"), await browser("author")
    made = await storage(handler, depot)
    pbs = await material(handler, depot)
    sent = await handler.send("POST", depot.url("/lots"), json=receipt(pbs, containers=2))
    lot = sent.json()
    url = page(depot, f"/lots/{lot['id']}")
    mine = (await handler.get(url)).text
    assert 'id="hold-lot"' in mine and 'id="move-form"' in mine and "sign-release" not in mine
    theirs = (await qc.get(url)).text
    assert 'id="sign-release"' in theirs and 'id="hold-lot"' not in theirs
    assert 'id="move-form"' not in theirs

    first, second = (c["id"] for c in lot["containers"])
    moved = await post(
        handler, url + "/move", container_ids=first, to_location=made["a1"]["id"], reason="put away"
    )
    assert moved.status_code == 303, moved.text
    full = await post(handler, url + "/move", container_ids=second, to_location=made["a1"]["id"])
    assert full.status_code == 409 and "holds a container already" in full.text
    none = await post(handler, url + "/move", to_location=made["a1"]["id"])
    assert none.status_code == 422 and "Choose the containers" in none.text

    held = await post(handler, url + "/hold", reason="supplier recall")
    assert held.status_code == 303
    assert "on hold" in (await handler.get(url)).text
    back = await post(handler, url + "/unhold", reason="cleared")
    assert back.status_code == 303
    wrong = await post(qc, url + "/release", password="wrong", reason="CoA fine")
    assert wrong.status_code == 401 and 'id="sign-release-refusal"' in wrong.text
    released = await post(qc, url + "/release", password=PASSWORD, reason="CoA fine")
    assert released.status_code == 303, released.text
    assert "released" in (await qc.get(url)).text
    assert (await post(qc, url + "/hold", reason="x")).status_code == 403


async def test_the_storage_pages_and_their_forms(depot: Depot, browser: Any) -> None:
    handler, qc = await browser("operator"), await browser("author")
    tree = await handler.get(page(depot, "/locations"))
    assert tree.status_code == 200 and 'id="site-location-form"' in tree.text
    site = await post(handler, page(depot, "/locations"), site="A1", name="", storage_condition="")
    assert site.status_code == 303, site.text
    site_url = site.headers["location"]
    room = await post(handler, site_url + "/children", kind="room", code="101")
    assert room.status_code == 303
    wrong = await post(handler, site_url + "/children", kind="rack", code="9")
    assert wrong.status_code == 422 and "A rack stands in" in wrong.text
    again = await post(handler, site_url + "/children", kind="room", code="101")
    assert again.status_code == 409 and 'id="child-refusal"' in again.text
    shown = await handler.get(site_url)
    found = re.search(r'href="(/t/[^"]+/locations/[0-9a-f-]{36})">Room 101<', shown.text)
    assert found, shown.text
    room_url = found.group(1)
    fridge = await post(
        handler, room_url + "/children", kind="freezer", code="F1", storage_condition="-80 °C"
    )
    assert fridge.status_code == 303
    pbs = await material(handler, depot)
    room_id = room_url.rsplit("/", 1)[1]
    lot = (
        await handler.send("POST", depot.url("/lots"), json=receipt(pbs, location_id=room_id))
    ).json()
    stored = await handler.get(room_url)
    assert "Container 1" in stored.text and 'id="move-out-form"' in stored.text
    assert 'id="move-out-form"' not in (await qc.get(room_url)).text
    tree = await handler.get(page(depot, "/locations"))
    assert "Freezer F1" in tree.text and "-80 °C" in tree.text
    freezer = re.search(r'href="(/t/[^"]+/locations/[0-9a-f-]{36})"[^>]*>Freezer F1<', tree.text)
    assert freezer
    moved = await post(
        handler,
        room_url + "/move",
        container_ids=lot["containers"][0]["id"],
        to_location=freezer.group(1).rsplit("/", 1)[1],
    )
    assert moved.status_code == 303
    there = await handler.get(freezer.group(1))
    assert "PBS is stored at 2-8 °C" in there.text
    busy = await post(handler, freezer.group(1) + "/retire", reason="defrost")
    assert busy.status_code == 409 and "holds 1 container" in busy.text
    empty = await post(handler, room_url + "/retire", reason="x")
    assert empty.status_code == 409 and "still has locations in use" in empty.text
    container = await handler.get(page(depot, f"/containers/{lot['containers'][0]['id']}"))
    assert container.status_code == 200
    assert "Main site / Room 101" in container.text and "Operator Person" in container.text


async def test_labels_print_one_per_page_and_leave_the_queue(depot: Depot, browser: Any) -> None:
    handler, qc = await browser("operator"), await browser("author")
    pbs = await material(handler, depot)
    lot = (await handler.send("POST", depot.url("/lots"), json=receipt(pbs, containers=4))).json()
    dashboard = await handler.get(page(depot, "/"))
    assert "Containers to label" in dashboard.text and "Container 1 of lot L-001" in dashboard.text
    sheet = await handler.get(page(depot, f"/lots/{lot['id']}/labels"))
    assert sheet.status_code == 200
    assert sheet.text.count('class="container-label"') == 4
    assert "/static/css/labels.css" in sheet.text and "<svg" in sheet.text
    assert (
        'class="labels-printed-form"'
        not in (await qc.get(page(depot, f"/lots/{lot['id']}/labels"))).text
    )
    one = lot["containers"][0]["id"]
    single = await handler.get(page(depot, f"/containers/{one}/label"))
    assert single.text.count('class="container-label"') == 1
    printed = await post(
        handler, page(depot, f"/lots/{lot['id']}/labels-printed"), container_ids=one
    )
    assert printed.status_code == 303
    left = (await handler.get(depot.url("/containers/to-label"))).json()
    assert [c["number"] for c in left] == [2, 3, 4]
    everything = await post(handler, page(depot, f"/lots/{lot['id']}/labels-printed"))
    assert everything.status_code == 303
    assert (await handler.get(depot.url("/containers/to-label"))).json() == []
    assert "Every container has its label" in (await handler.get(page(depot, "/"))).text
