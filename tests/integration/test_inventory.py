"""Inventory: the material master, receipt into quarantine with containers, units that must
measure what the material's unit does, QC's signed release or rejection, hold and unhold,
expiry, separation of duties and concurrent releases, through the JSON API against the real
database."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest

from opencdmo.audit import queries as audit_queries
from opencdmo.audit import sentences
from opencdmo.audit.queries import AuditFilter
from opencdmo.db.tx import read_view
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, World

SIGN = {"password": PASSWORD, "reason": "CoA checked against the specification"}
# Who plays what in the inventory tenant (world personas given other roles here).
ROLES = {
    "operator": ["materials_handler"],  # receives lots
    "approver": ["qa_approver"],  # QA: may release
    "author": ["qc_analyst"],  # QC: may release
    "supervisor": ["materials_handler", "qc_analyst"],  # receives and is QC
    "admin": ["production_operator"],  # no materials permission
    "viewer": ["viewer"],
}


@dataclass(frozen=True)
class Store:
    ctx: TenantContext
    slug: str

    def url(self, rest: str) -> str:
        return f"/api/v1/t/{self.slug}{rest}"


@pytest.fixture
async def store(world: World, owner: asyncpg.Connection) -> Store:
    ctx = await tenancy.create_tenant(
        f"inv-{uuid.uuid4().hex[:8]}", "Inventory Plant", "cdmo", SYSTEM, RequestMeta()
    )
    for key, roles in ROLES.items():
        await tenancy.add_member(ctx, world[key].user_id, roles)
    return Store(ctx, ctx.slug)


async def material(client: Any, store: Store, code: str = "PBS", unit: str = "mL") -> str:
    made = await client.send(
        "POST",
        store.url("/materials"),
        json={
            "code": code,
            "name": f"{code} buffer",
            "material_type": "reagent",
            "default_unit": unit,
            "storage_condition": "2-8 °C",
            "shelf_life_days": 365,
        },
    )
    assert made.status_code == 201, made.text
    found: str = made.json()["id"]
    return found


def receipt(material_id: str, lot: str = "L-001", **more: Any) -> dict[str, Any]:
    return {
        "material_id": material_id,
        "lot_number": lot,
        "supplier": "Gibco",
        "supplier_lot": "2411-07",
        "quantity": "2",
        "unit": "L",
        "expiry_date": (date.today() + timedelta(days=200)).isoformat(),
        **more,
    }


async def received(client: Any, store: Store, material_id: str, **more: Any) -> dict[str, Any]:
    made = await client.send("POST", store.url("/lots"), json=receipt(material_id, **more))
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


async def test_receipt_goes_into_quarantine_split_into_containers(
    store: Store, browser: Any
) -> None:
    handler = await browser("operator")
    pbs = await material(handler, store)
    lot = await received(handler, store, pbs, containers=4)
    assert lot["status"] == "quarantine" and lot["material_code"] == "PBS"
    assert lot["quantity"] == "2" and lot["unit"] == "L"
    assert [(c["number"], c["quantity"], c["unit"]) for c in lot["containers"]] == [
        (n, "0.5", "L") for n in range(1, 5)
    ]
    assert [(h["from_status"], h["to_status"]) for h in lot["history"]] == [(None, "quarantine")]
    explicit = await received(
        handler,
        store,
        pbs,
        lot="L-002",
        containers=[{"quantity": "1.5"}, {"quantity": "500", "unit": "mL"}],
    )
    assert [(c["quantity"], c["unit"]) for c in explicit["containers"]] == [
        ("1.5", "L"),
        ("500", "mL"),
    ]
    one = await received(handler, store, pbs, lot="L-003")
    assert [(c["quantity"], c["unit"]) for c in one["containers"]] == [("2", "L")]
    got = await handler.get(store.url(f"/lots/{lot['id']}"))
    assert got.status_code == 200 and len(got.json()["containers"]) == 4
    listed = await handler.get(store.url("/lots"), params={"status": "quarantine"})
    assert {i["lot_number"] for i in listed.json()["items"]} == {"L-001", "L-002", "L-003"}
    assert (await handler.get(store.url("/lots"), params={"status": "released"})).json()[
        "items"
    ] == []


async def test_the_unit_must_measure_what_the_materials_unit_does(
    store: Store, browser: Any
) -> None:
    handler = await browser("operator")
    pbs = await material(handler, store)
    assert (await received(handler, store, pbs))["unit"] == "L"
    refused = await handler.send(
        "POST", store.url("/lots"), json=receipt(pbs, lot="L-G", unit="g", quantity="10")
    )
    assert refused.status_code == 422, refused.text
    message = refused.json()["error"]["message"]
    assert "cannot be given in" in message and "a mass" in message and "a volume" in message
    unknown = await handler.send(
        "POST", store.url("/lots"), json=receipt(pbs, lot="L-X", unit="xx")
    )
    assert unknown.status_code == 422
    assert "not a unit this application knows" in unknown.json()["error"]["message"]
    listed = await handler.get(store.url("/lots"))
    assert [i["lot_number"] for i in listed.json()["items"]] == ["L-001"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"quantity": "-1"}, "cannot be negative"),
        ({"quantity": "0"}, "more than nothing"),
        ({"containers": 3}, "does not split into 3 equal containers"),
        ({"containers": [{"quantity": "1"}, {"quantity": "0.5"}]}, "add up to"),
        ({"containers": [{"quantity": "1", "unit": "g"}]}, "cannot be given in"),
        ({"containers": 0}, ""),
        ({"quantity": "1e400"}, "not a quantity this application keeps"),
        ({"quantity": "NaN"}, ""),
        ({"containers": [{"quantity": "0"}, {"quantity": "2"}]}, "more than nothing"),
        ({"supplier": " "}, ""),
        ({"material_id": str(uuid.uuid4())}, "No such material"),
        ({"extra": 1}, ""),
    ],
)
async def test_bad_receipts_are_refused_with_a_message_and_nothing_is_stored(
    store: Store, browser: Any, change: dict[str, Any], words: str
) -> None:
    handler = await browser("operator")
    pbs = await material(handler, store)
    refused = await handler.send("POST", store.url("/lots"), json={**receipt(pbs), **change})
    assert 400 <= refused.status_code < 500, refused.text
    assert words in refused.json()["error"]["message"]
    assert (await handler.get(store.url("/lots"))).json()["items"] == []


async def test_bad_materials_are_refused(store: Store, browser: Any) -> None:
    handler = await browser("operator")
    await material(handler, store)
    again = await handler.send(
        "POST",
        store.url("/materials"),
        json={"code": "PBS", "name": "x", "material_type": "reagent", "default_unit": "mL"},
    )
    assert again.status_code == 409 and "exists already" in again.json()["error"]["message"]
    for bad in (
        {"default_unit": "furlong"},
        {"material_type": "gadget"},
        {"shelf_life_days": 0},
        {"library_item_id": str(uuid.uuid4())},
    ):
        body = {"code": "X1", "name": "x", "material_type": "reagent", "default_unit": "mL", **bad}
        refused = await handler.send("POST", store.url("/materials"), json=body)
        assert refused.status_code in (400, 422), (bad, refused.text)
        assert refused.json()["error"]["message"]
    codes = [m["code"] for m in (await handler.get(store.url("/materials"))).json()["items"]]
    assert codes == ["PBS"]
    lot = await received(
        handler, store, (await handler.get(store.url("/materials"))).json()["items"][0]["id"]
    )
    duplicate = await handler.send(
        "POST", store.url("/lots"), json=receipt(lot["material_id"], lot=lot["lot_number"])
    )
    assert duplicate.status_code == 409 and "already" in duplicate.json()["error"]["message"]


async def test_release_reject_hold_and_unhold_by_role_and_by_state(
    store: Store, browser: Any
) -> None:
    handler, qa, qc = await browser("operator"), await browser("approver"), await browser("author")
    production, viewer = await browser("admin"), await browser("viewer")
    pbs = await material(handler, store)
    first = await received(handler, store, pbs, lot="L-1")
    second = await received(handler, store, pbs, lot="L-2")

    def url(lot: dict[str, Any], command: str) -> str:
        return store.url(f"/lots/{lot['id']}/{command}")

    reason = {"reason": "investigation of the supplier"}
    # By role: the handler does not release, QC does not hold, others do neither.
    assert (await handler.send("POST", url(first, "release"), json=SIGN)).status_code == 403
    assert (await qc.send("POST", url(first, "hold"), json=reason)).status_code == 403
    assert (await qc.send("POST", store.url("/lots"), json=receipt(pbs))).status_code == 403
    for other in (production, viewer):
        assert (await other.send("POST", url(first, "release"), json=SIGN)).status_code == 403
        assert (await other.send("POST", url(first, "hold"), json=reason)).status_code == 403
        assert (await other.get(store.url("/lots"))).status_code == 403

    # quarantine -> on hold -> quarantine -> released -> on hold -> released
    held = await handler.send("POST", url(first, "hold"), json=reason)
    assert held.status_code == 200 and held.json()["status"] == "on_hold"
    refused = await qa.send("POST", url(first, "release"), json=SIGN)
    assert refused.status_code == 409
    assert "is on hold" in refused.json()["error"]["message"]
    assert refused.json()["error"]["details"]["status"] == "on_hold"
    again = await handler.send("POST", url(first, "hold"), json=reason)
    assert again.status_code == 409 and "on hold" in again.json()["error"]["message"]
    back = await handler.send("POST", url(first, "unhold"), json={"reason": "cleared"})
    assert back.status_code == 200 and back.json()["status"] == "quarantine"
    assert (await handler.send("POST", url(first, "unhold"), json=reason)).status_code == 409
    released = await qa.send("POST", url(first, "release"), json=SIGN)
    assert released.status_code == 200, released.text
    assert released.json()["status"] == "released"
    assert released.json()["history"][-1]["signature_id"]
    assert (await qc.send("POST", url(first, "release"), json=SIGN)).status_code == 409
    assert (await qc.send("POST", url(first, "reject"), json=SIGN)).status_code == 409
    held = await handler.send("POST", url(first, "hold"), json=reason)
    assert held.json()["status"] == "on_hold"
    back = await handler.send("POST", url(first, "unhold"), json={"reason": "cleared"})
    assert back.json()["status"] == "released"
    assert [(h["from_status"], h["to_status"]) for h in back.json()["history"]] == [
        (None, "quarantine"),
        ("quarantine", "on_hold"),
        ("on_hold", "quarantine"),
        ("quarantine", "released"),
        ("released", "on_hold"),
        ("on_hold", "released"),
    ]

    # quarantine -> rejected, and nothing after.
    rejected = await qc.send("POST", url(second, "reject"), json=SIGN)
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    for command, person, body in (
        ("release", qa, SIGN),
        ("reject", qa, SIGN),
        ("hold", handler, reason),
        ("unhold", handler, reason),
    ):
        answer = await person.send("POST", url(second, command), json=body)
        assert answer.status_code == 409, command
        assert "is rejected" in answer.json()["error"]["message"]
    blank = await handler.send("POST", url(first, "hold"), json={"reason": " "})
    assert blank.status_code == 422
    listed = await qa.get(store.url("/lots"), params={"status": "rejected"})
    assert [i["lot_number"] for i in listed.json()["items"]] == ["L-2"]
    bad = await qa.get(store.url("/lots"), params={"status": "lost"})
    assert bad.status_code == 422


async def test_the_receiver_may_not_release_and_a_signature_needs_the_password(
    store: Store, browser: Any
) -> None:
    both, qa = await browser("supervisor"), await browser("approver")
    pbs = await material(both, store)
    lot = await received(both, store, pbs)
    release = store.url(f"/lots/{lot['id']}/release")
    refused = await both.send("POST", release, json=SIGN)
    assert refused.status_code == 403
    assert "Separation of duties" in refused.json()["error"]["message"]
    wrong = await qa.send("POST", release, json={**SIGN, "password": "wrong"})
    assert wrong.status_code == 401
    wrong = await qa.send(
        "POST", store.url(f"/lots/{lot['id']}/reject"), json={**SIGN, "password": "no"}
    )
    assert wrong.status_code == 401
    assert (await qa.get(store.url(f"/lots/{lot['id']}"))).json()["status"] == "quarantine"
    released = await qa.send("POST", release, json=SIGN)
    assert released.status_code == 200


async def test_two_qc_people_releasing_at_once_one_signs(store: Store, browser: Any) -> None:
    handler = await browser("operator")
    lot = await received(handler, store, await material(handler, store))
    qa, qc = await browser("approver"), await browser("author")
    release = store.url(f"/lots/{lot['id']}/release")
    responses = await asyncio.gather(
        qa.send("POST", release, json=SIGN), qc.send("POST", release, json=SIGN)
    )
    assert sorted(r.status_code for r in responses) == [200, 409]
    found = (await qa.get(store.url(f"/lots/{lot['id']}"))).json()
    assert [h["to_status"] for h in found["history"]] == ["quarantine", "released"]


async def test_two_people_adding_one_material_or_one_lot_at_once_one_adds_it(
    store: Store, browser: Any
) -> None:
    first, second = await browser("operator"), await browser("supervisor")
    body = {
        "code": "HSA",
        "name": "Human serum albumin",
        "material_type": "reagent",
        "default_unit": "mL",
    }
    made = await asyncio.gather(
        first.send("POST", store.url("/materials"), json=body),
        second.send("POST", store.url("/materials"), json=body),
    )
    assert sorted(r.status_code for r in made) == [201, 409], [r.text for r in made]
    refused = next(r for r in made if r.status_code == 409)
    assert "HSA exists already" in refused.json()["error"]["message"]
    hsa = next(r for r in made if r.status_code == 201).json()["id"]
    lots = await asyncio.gather(
        first.send("POST", store.url("/lots"), json=receipt(hsa, "L-9", unit="mL")),
        second.send("POST", store.url("/lots"), json=receipt(hsa, "L-9", unit="mL")),
    )
    assert sorted(r.status_code for r in lots) == [201, 409], [r.text for r in lots]
    listed = (await first.get(store.url("/lots"))).json()["items"]
    assert [lot["lot_number"] for lot in listed if lot["material_id"] == hsa] == ["L-9"]


async def test_an_expired_lot_reads_as_expired_and_is_never_released(
    store: Store, browser: Any
) -> None:
    handler, qa = await browser("operator"), await browser("approver")
    pbs = await material(handler, store)
    past = (date.today() - timedelta(days=3)).isoformat()
    lot = await received(handler, store, pbs, lot="OLD", expiry_date=past)
    assert lot["status"] == "expired" and lot["stored_status"] == "quarantine"
    await received(handler, store, pbs, lot="NEW")
    refused = await qa.send("POST", store.url(f"/lots/{lot['id']}/release"), json=SIGN)
    assert refused.status_code == 409 and "is expired" in refused.json()["error"]["message"]
    expired = await qa.get(store.url("/lots"), params={"status": "expired"})
    assert [i["lot_number"] for i in expired.json()["items"]] == ["OLD"]
    quarantine = await qa.get(store.url("/lots"), params={"status": "quarantine"})
    assert [i["lot_number"] for i in quarantine.json()["items"]] == ["NEW"]


async def test_the_audit_trail_reads_inventory_events_as_sentences(
    store: Store, browser: Any
) -> None:
    handler, qa = await browser("operator"), await browser("approver")
    pbs = await material(handler, store)
    lot = await received(handler, store, pbs, containers=2)
    await handler.send("POST", store.url(f"/lots/{lot['id']}/hold"), json={"reason": "check"})
    await handler.send("POST", store.url(f"/lots/{lot['id']}/unhold"), json={"reason": "ok"})
    await qa.send("POST", store.url(f"/lots/{lot['id']}/release"), json=SIGN)
    async with read_view(store.ctx):
        rows, _ = await audit_queries.page(store.ctx, AuditFilter(), limit=100, before=None)
        said = [s.text for s in await sentences.describe(store.ctx, rows)]
    assert "Operator Person added material PBS (PBS buffer, in mL)" in said
    assert (
        "Operator Person received 2 L of PBS as lot L-001 (supplier lot 2411-07) into quarantine"
        in said
    )
    assert "Operator Person put lot L-001 on hold" in said
    assert "Operator Person took lot L-001 off hold (Quarantine)" in said
    assert "Approver Person released lot L-001 for use" in said


async def test_another_tenants_lot_and_material_are_not_found(
    store: Store, world: World, browser: Any
) -> None:
    """The same person handles materials in two tenants: in the other one, this tenant's lot
    and material are the same 404 as ids that do not exist."""
    handler = await browser("operator")
    pbs = await material(handler, store)
    lot = await received(handler, store, pbs)
    other = await tenancy.create_tenant(
        f"inv-{uuid.uuid4().hex[:8]}", "Other Plant", "cdmo", SYSTEM, RequestMeta()
    )
    await tenancy.add_member(other, world["operator"].user_id, ["materials_handler"])
    base = f"/api/v1/t/{other.slug}"
    for ident in (lot["id"], str(uuid.uuid4())):
        got = await handler.get(f"{base}/lots/{ident}")
        assert got.status_code == 404 and got.json()["error"]["message"] == "No such lot."
        held = await handler.send("POST", f"{base}/lots/{ident}/hold", json={"reason": "x"})
        assert held.status_code == 404
    assert (await handler.get(f"{base}/materials/{pbs}")).status_code == 404
    stolen = await handler.send("POST", f"{base}/lots", json=receipt(pbs, lot="L-9"))
    assert stolen.status_code == 404
    assert (await handler.get(f"{base}/lots")).json()["items"] == []
    assert (await handler.get(store.url(f"/lots/{lot['id']}"))).json()["status"] == "quarantine"


async def test_the_lots_pages_show_status_containers_and_history(
    store: Store, browser: Any
) -> None:
    handler = await browser("operator")
    pbs = await material(handler, store)
    lot = await received(handler, store, pbs, containers=2)
    past = (date.today() - timedelta(days=1)).isoformat()
    await received(handler, store, pbs, lot="OLD-7", expiry_date=past)
    listed = await handler.get(f"/t/{store.slug}/lots")
    assert listed.status_code == 200
    assert "L-001" in listed.text and "OLD-7" in listed.text and "expired" in listed.text
    only = await handler.get(f"/t/{store.slug}/lots", params={"status": "expired"})
    assert "OLD-7" in only.text and "L-001" not in only.text
    shown = await handler.get(f"/t/{store.slug}/lots/{lot['id']}")
    assert shown.status_code == 200
    assert "Lot L-001" in shown.text and "in quarantine" in shown.text
    assert "1 L" in shown.text and "received" in shown.text
    missing = await handler.get(f"/t/{store.slug}/lots/{uuid.uuid4()}")
    assert missing.status_code == 404


async def test_a_quarantined_lot_waits_in_qcs_queue_until_it_is_released(
    store: Store, browser: Any, world: World
) -> None:
    from opencdmo.work import registry
    from tests.conftest import member_as

    handler = await browser("operator")
    lot = await received(handler, store, await material(handler, store))
    qc = await member_as(store.ctx, world["author"])

    async def waiting() -> list[str]:
        queues = {q.key: q for q in await registry.queues_for(qc)}
        return [i.link for i in queues["lots_awaiting_qc"].items]

    assert await waiting() == [f"/t/{store.slug}/lots/{lot['id']}"]
    client = await browser("author")
    released = await client.send("POST", store.url(f"/lots/{lot['id']}/release"), json=SIGN)
    assert released.status_code == 200, released.text
    assert await waiting() == []


# --- certificates of analysis on the lot page (the API and both backends: test_storage.py) ----


def _pdf() -> bytes:
    return b"%PDF-1.7\n%" + uuid.uuid4().hex.encode() + b"\n%%EOF\n"


async def test_the_lot_page_shows_the_coa_and_lets_the_handler_attach_one(
    store: Store, browser: Any
) -> None:
    handler, qc = await browser("operator"), await browser("author")
    lot = await received(handler, store, await material(handler, store))
    url = f"/t/{store.slug}/lots/{lot['id']}"
    empty = (await handler.get(url)).text
    assert "No certificate of analysis is attached" in empty
    assert 'enctype="multipart/form-data"' in empty and 'name="_csrf_token"' in empty
    assert 'action="' + url + '/coa"' in (await handler.get(url)).text
    assert 'id="coa-form"' not in (await qc.get(url)).text  # QC reads, does not attach
    data = _pdf()
    sent = await handler.http.post(  # the form without JavaScript: the token in a field
        url + "/coa",
        data={"_csrf_token": handler.csrf, "reason": ""},
        files={"coa": ("CoA 2411-07.pdf", data, "application/pdf")},
    )
    assert sent.status_code == 200, sent.text
    assert "Certificate of analysis attached." in sent.text
    shown = (await qc.get(url)).text
    digest = hashlib.sha256(data).hexdigest()
    assert "CoA 2411-07.pdf" in shown and digest[:12] in shown and "Operator Person" in shown
    assert f'href="{url}/coa"' in shown
    again = (await handler.get(url)).text
    assert "Replace certificate" in again and 'name="replaces" value="' in again


async def test_the_lot_pages_coa_form_answers_htmx_with_its_card_and_says_what_is_wrong(
    store: Store, browser: Any
) -> None:
    handler = await browser("operator")
    lot = await received(handler, store, await material(handler, store))
    url = f"/t/{store.slug}/lots/{lot['id']}/coa"
    refused = await handler.send(
        "POST",
        url,
        headers={"HX-Request": "true"},
        files={"coa": ("coa.pdf", b"just text", "application/pdf")},
    )
    assert refused.status_code == 422
    assert 'id="coa"' in refused.text and "<html" not in refused.text
    assert "is not a PDF, PNG image or JPEG image" in refused.text
    done = await handler.send(
        "POST",
        url,
        headers={"HX-Request": "true"},
        files={"coa": ("scan.jpg", b"\xff\xd8\xff\xe0" + uuid.uuid4().bytes, "image/jpeg")},
    )
    assert done.status_code == 200 and "scan.jpg" in done.text
    assert "Certificate of analysis attached." in done.headers["hx-trigger"]
    blind = await handler.send("POST", url, files={"coa": ("late.pdf", _pdf(), "application/pdf")})
    assert blind.status_code == 409 and "has a certificate of analysis already" in blind.text
