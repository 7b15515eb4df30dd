"""Materials in batches against the real database: consuming containers in a step (each
check and refusal, nothing written on a refusal), the tenant's choice of refusal or exception,
reservations against concurrent batches, output lots with the batch as origin and the
patient's chain of identity, genealogy both ways (with a property test against a brute-force
walk of generated graphs) and a recall's reach."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from opencdmo.batches import material_views, materials, outputs, reservations
from opencdmo.batches import service as batches
from opencdmo.errors import Conflict, Forbidden, NotFound, ValidationFailed
from opencdmo.inventory import genealogy, receipt
from opencdmo.inventory import service as inventory
from opencdmo.inventory.queries import Identity
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import batch_rules
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, World, member_as
from tests.integration.batch_world import (
    CHAIN,
    PLANNED,
    Plant,
    batch_of,
    new_plant,
    underway,
)
from tests.integration.export_flow import export_by_form
from tests.integration.job_worker import job_worker

__all__ = ["job_worker"]

MEDIUM = "serum-free-t-cell-medium"  # on t-cell-activation's bill of materials: 300 mL
BEADS = "anti-cd3-cd28-activation-beads"  # 1 {vial}
STEP = "activate"


@dataclass(frozen=True)
class Stock:
    plant: Plant
    handler: TenantContext  # materials_handler: receives
    qc: TenantContext  # qc_analyst: releases
    settings: Settings
    medium: UUID  # material ids
    beads: UUID
    pbs: UUID  # not on the bill of materials
    cells: UUID  # starting material
    intermediate: UUID

    @property
    def slug(self) -> str:
        return self.plant.ctx.slug

    def url(self, rest: str) -> str:
        return f"/api/v1/t/{self.slug}{rest}"


async def _material(ctx: TenantContext, code: str, kind: str, unit: str) -> UUID:
    row = await inventory.create_material(ctx, code, f"{code} material", kind, unit, "", None, None)
    return row.id


@pytest.fixture
async def stock(world: World, owner: asyncpg.Connection, settings: Settings, synced: Any) -> Stock:
    plant = await new_plant(world, owner, settings)
    await tenancy.add_member(plant.ctx, world["handler"].user_id, ["materials_handler"])
    await tenancy.add_member(plant.ctx, world["supervisor"].user_id, ["qc_analyst"])
    handler = await member_as(plant.ctx, world["handler"])
    qc = await member_as(plant.ctx, world["supervisor"])
    return Stock(
        plant,
        handler,
        qc,
        settings,
        await _material(handler, MEDIUM, "reagent", "mL"),
        await _material(handler, BEADS, "reagent", "{vial}"),
        await _material(handler, "PBS", "reagent", "mL"),
        await _material(handler, "APH", "starting_material", "mL"),
        await _material(handler, "ACT-CELLS", "intermediate", "mL"),
    )


async def lot_of(
    stock: Stock,
    material: UUID,
    quantity: str = "1",
    unit: str = "L",
    containers: int | None = 2,
    release: bool = True,
    expiry: date | None = None,
    identity: Identity | None = None,
) -> UUID:
    row = await receipt.receive(
        stock.handler,
        receipt.Receipt(
            material,
            f"L-{uuid.uuid4().hex[:6]}",
            "Gibco",
            f"SL-{uuid.uuid4().hex[:6]}",
            Decimal(quantity),
            unit,
            expiry or date.today() + timedelta(days=100),
            containers,
            identity=identity,
        ),
    )
    if release:
        await inventory.decide(stock.settings, stock.qc, row.id, "release", PASSWORD, "CoA matches")
    return row.id


async def containers(stock: Stock, lot_id: UUID) -> list[Any]:
    return (await inventory.get_lot(stock.qc, lot_id)).containers


async def running_batch(stock: Stock) -> UUID:
    created = await batch_of(stock.plant)
    await underway(stock.plant, created.id)
    return created.id


async def consumed_rows(owner: asyncpg.Connection, batch_id: UUID) -> int:
    found: int = await owner.fetchval(
        "SELECT count(*) FROM batch_consumptions WHERE batch_id = $1", batch_id
    )
    return found


async def test_a_released_lot_is_used_in_a_step_in_another_unit(
    stock: Stock, owner: asyncpg.Connection
) -> None:
    lot = await lot_of(stock, stock.medium)  # 1 L in two containers of 0.5 L
    box = (await containers(stock, lot))[0]
    batch = await running_batch(stock)
    done = await materials.consume(stock.plant.operator, batch, STEP, box.id, Decimal("300"), "mL")
    assert done.raised == []
    assert done.consumption.container_quantity == Decimal("0.3")
    assert done.consumption.material == MEDIUM
    left = {c.id: c.remaining for c in await containers(stock, lot)}
    assert left[box.id] == Decimal("0.2")
    view = await material_views.batch_materials(stock.plant.viewer, batch)
    line = next(u for u in view.lines if u.line.material == MEDIUM)
    assert line.used == Decimal("300") and line.line.quantity == Decimal("300")
    event = await owner.fetchrow(
        "SELECT actor_id, new_values::jsonb AS v FROM audit_events WHERE entity_id = $1 "
        "AND action = 'batch.material_consumed'",
        str(batch),
    )
    assert event["actor_id"] == stock.plant.operator.user_id
    assert '"container_quantity": "0.3"' in event["v"]
    links = await owner.fetch(
        "SELECT parent_id, child_id FROM genealogy_links WHERE child_id = $1", batch
    )
    assert [(r["parent_id"], r["child_id"]) for r in links] == [(lot, batch)]


async def test_a_lot_not_released_or_expired_is_never_used(
    stock: Stock, owner: asyncpg.Connection
) -> None:
    batch = await running_batch(stock)
    quarantined = await lot_of(stock, stock.medium, release=False)
    held = await lot_of(stock, stock.medium)
    await inventory.hold(stock.handler, held, "sterility query")
    rejected = await lot_of(stock, stock.medium, release=False)
    await inventory.decide(stock.settings, stock.qc, rejected, "reject", PASSWORD, "bad CoA")
    expired = await lot_of(stock, stock.medium)
    # The expiry passes after its release: the time of use is what counts.
    await owner.execute(
        "UPDATE lots SET expiry_date = $2 WHERE id = $1", expired, date.today() - timedelta(1)
    )
    cases = {
        quarantined: "in quarantine: it may not be used before QC releases it",
        held: "on hold",
        rejected: "rejected",
        expired: "expired on",
    }
    for lot, message in cases.items():
        box = (await containers(stock, lot))[0]
        with pytest.raises(Conflict, match=message):
            await materials.consume(stock.plant.operator, batch, STEP, box.id, Decimal(1), "mL")
        assert (await containers(stock, lot))[0].remaining == box.remaining
    assert await consumed_rows(owner, batch) == 0


async def test_each_bad_use_is_refused_and_writes_nothing(
    stock: Stock, owner: asyncpg.Connection
) -> None:
    batch = await running_batch(stock)
    lot = await lot_of(stock, stock.medium, quantity="500", unit="mL", containers=1)
    box = (await containers(stock, lot))[0]
    wrong = (await containers(stock, await lot_of(stock, stock.pbs)))[0]
    op = stock.plant.operator
    with pytest.raises(Conflict, match="PBS is not in the bill of materials"):
        await materials.consume(op, batch, STEP, wrong.id, Decimal(10), "mL")
    with pytest.raises(Conflict, match="has 500 mL left"):
        await materials.consume(op, batch, STEP, box.id, Decimal("0.6"), "L")
    with pytest.raises(ValidationFailed, match="container's unit"):
        await materials.consume(op, batch, STEP, box.id, Decimal(10), "g")
    with pytest.raises(ValidationFailed):
        await materials.consume(op, batch, STEP, box.id, Decimal(-1), "mL")
    with pytest.raises(ValidationFailed, match="unit"):
        await materials.consume(op, batch, STEP, box.id, Decimal(1), "furlong")
    with pytest.raises(ValidationFailed, match="no step"):
        await materials.consume(op, batch, "nope", box.id, Decimal(1), "mL")
    with pytest.raises(NotFound):
        await materials.consume(op, batch, STEP, uuid.uuid4(), Decimal(1), "mL")
    with pytest.raises(Forbidden):
        await materials.consume(stock.plant.viewer, batch, STEP, box.id, Decimal(1), "mL")
    assert await consumed_rows(owner, batch) == 0
    assert (await containers(stock, lot))[0].remaining == Decimal(500)
    idle = (await batch_of(stock.plant)).id  # not started
    with pytest.raises(Conflict, match="needs it Running"):
        await materials.consume(op, idle, STEP, box.id, Decimal(1), "mL")


async def test_the_manifest_chooses_refusal_or_exception(
    stock: Stock, owner: asyncpg.Connection
) -> None:
    batch = await running_batch(stock)
    op = stock.plant.operator
    box = (await containers(stock, await lot_of(stock, stock.medium)))[0]
    # Over the bill of materials (300 mL): an exception by default, recorded with the use.
    assert (await materials.consume(op, batch, STEP, box.id, Decimal(250), "mL")).raised == []
    over = await materials.consume(op, batch, STEP, box.id, Decimal(100), "mL")
    assert over.raised == ["over_consumption"]
    kinds = await owner.fetch(
        "SELECT kind, severity FROM batch_exceptions WHERE batch_id = $1", batch
    )
    assert [(r["kind"], r["severity"]) for r in kinds] == [("over_consumption", "major")]
    # The tenant makes it a refusal, and a wrong material an exception instead.
    rules = batch_rules.ExceptionRules({"over_consumption": "refuse", "wrong_material": "minor"})
    await batch_rules.set_exception_rules(stock.plant.ctx, rules)
    with pytest.raises(Conflict, match="would use 400 mL"):
        await materials.consume(op, batch, STEP, box.id, Decimal(50), "mL")
    wrong = (await containers(stock, await lot_of(stock, stock.pbs)))[0]
    used = await materials.consume(op, batch, STEP, wrong.id, Decimal(5), "mL")
    assert used.raised == ["wrong_material"] and used.consumption.material is None
    with pytest.raises(ValidationFailed, match="outside_par: the severity must be one of"):
        await batch_rules.set_exception_rules(
            stock.plant.ctx, batch_rules.ExceptionRules({"outside_par": "refuse"})
        )


async def test_a_patients_material_goes_into_that_patients_batch_only(stock: Stock) -> None:
    batch = await running_batch(stock)
    theirs = Identity("D-9999", "COI-9999", "APH-9999")
    other = await lot_of(stock, stock.cells, "100", "mL", 1, identity=theirs)
    box = (await containers(stock, other))[0]
    with pytest.raises(Conflict, match="another patient's material"):
        await materials.consume(stock.plant.operator, batch, STEP, box.id, Decimal(1), "mL")
    with pytest.raises(ValidationFailed, match="not a starting material"):
        await lot_of(stock, stock.pbs, identity=theirs)


async def test_the_last_use_of_a_lot_marks_it_consumed(
    stock: Stock, owner: asyncpg.Connection
) -> None:
    batch = await running_batch(stock)
    lot = await lot_of(stock, stock.beads, "2", "{vial}", 2)
    rules = batch_rules.ExceptionRules({"over_consumption": "minor"})
    await batch_rules.set_exception_rules(stock.plant.ctx, rules)
    for box in await containers(stock, lot):
        await materials.consume(stock.plant.operator, batch, STEP, box.id, Decimal(1), "{vial}")
    view = await inventory.get_lot(stock.qc, lot)
    assert view.status == "consumed"
    assert view.history[-1].reason.startswith("used up in batch")
    box = view.containers[0]
    with pytest.raises(Conflict, match="consumed"):
        await materials.consume(stock.plant.operator, batch, STEP, box.id, Decimal(1), "{vial}")


async def test_two_operators_taking_the_last_of_a_container_at_once(
    stock: Stock, owner: asyncpg.Connection, browser: Any
) -> None:
    lot = await lot_of(stock, stock.medium, "200", "mL", 1)
    box = (await containers(stock, lot))[0]
    first, second = await running_batch(stock), await running_batch(stock)
    operator, supervisor = await browser("operator"), await browser("admin")
    body = {"step": STEP, "container_id": str(box.id), "quantity": "150", "unit": "mL"}
    answers = await asyncio.gather(
        operator.send("POST", stock.url(f"/batches/{first}/consumptions"), json=body),
        supervisor.send("POST", stock.url(f"/batches/{second}/consumptions"), json=body),
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [201, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409)
    assert "has 50 mL left" in refused.json()["error"]["message"]
    assert (await containers(stock, lot))[0].remaining == Decimal(50)


async def test_reservations_keep_containers_for_one_batch(
    stock: Stock, owner: asyncpg.Connection, browser: Any
) -> None:
    lot = await lot_of(stock, stock.medium, "300", "mL", 1)
    box = (await containers(stock, lot))[0]
    first, second = await batch_of(stock.plant), await batch_of(stock.plant)
    supervisor = await browser("admin")
    # Two batches reserving the last container at once: one holds it, the other is short.
    answers = await asyncio.gather(
        supervisor.send("POST", stock.url(f"/batches/{first.id}/reservations")),
        supervisor.send("POST", stock.url(f"/batches/{second.id}/reservations")),
    )
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    held = [a.json() for a in answers]
    medium = [[r for r in h["reservations"] if r["material"] == MEDIUM] for h in held]
    assert sorted(len(m) for m in medium) == [0, 1]
    winner = first.id if medium[0] else second.id
    loser = second.id if winner == first.id else first.id
    short = held[1] if medium[0] else held[0]
    assert MEDIUM in [s["material"] for s in short["shortages"]]
    # The other batch may not use what is reserved; the holder may.
    await underway(stock.plant, loser)
    with pytest.raises(Conflict, match="reserved for other batches"):
        await materials.consume(stock.plant.operator, loser, STEP, box.id, Decimal(10), "mL")
    await underway(stock.plant, winner)
    await materials.consume(stock.plant.operator, winner, STEP, box.id, Decimal(100), "mL")
    kept = await owner.fetchval(
        "SELECT quantity FROM batch_reservations WHERE batch_id = $1 AND released_at IS NULL",
        winner,
    )
    assert kept == Decimal(200)
    # Ending the batch releases what it still holds.
    await batches.command_batch(stock.plant.supervisor, winner, "abort", "test")
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM batch_reservations WHERE batch_id = $1 AND released_at IS NULL",
            winner,
        )
        == 0
    )
    await materials.consume(stock.plant.operator, loser, STEP, box.id, Decimal(10), "mL")
    # Creating a batch may reserve in the same transaction.
    third = await batches.create_batch(
        stock.plant.supervisor,
        stock.plant.recipe,
        "1 L scale",
        "S1",
        PLANNED,
        "Quillon Therapeutics",
        CHAIN,
        reserve=True,
    )
    assert MEDIUM in [s.material for s in third.shortages]  # 190 mL left, 300 wanted
    with pytest.raises(Forbidden):
        await reservations.reserve(stock.plant.operator, first.id)
    with pytest.raises(NotFound):
        await reservations.reserve(stock.plant.supervisor, uuid.uuid4())


async def test_a_step_makes_a_lot_that_carries_the_batch_on(
    stock: Stock, owner: asyncpg.Connection
) -> None:
    batch = await running_batch(stock)
    medium = await lot_of(stock, stock.medium)
    box = (await containers(stock, medium))[0]
    await materials.consume(stock.plant.operator, batch, STEP, box.id, Decimal(300), "mL")
    made = await outputs.produce(
        stock.plant.operator,
        batch,
        outputs.Output(STEP, stock.intermediate, Decimal(50), "mL", containers=2),
    )
    assert made.status == "quarantine" and made.origin_batch_id == batch
    assert (made.donor_id, made.coi_label) == (CHAIN.donor_id, CHAIN.coi_label)
    number = await owner.fetchval("SELECT number FROM batches WHERE id = $1", batch)
    assert made.lot_number == f"{number}-{STEP}" and made.supplier_lot == number
    with pytest.raises(ValidationFailed, match="not what is bought in"):
        await outputs.produce(
            stock.plant.operator, batch, outputs.Output(STEP, stock.pbs, Decimal(1), "mL")
        )
    # Genealogy both ways.
    back = await genealogy.trace(stock.qc, made.id, "backward")
    assert [(n.kind, n.depth) for n in back.nodes] == [("lot", 0), ("batch", 1), ("lot", 2)]
    assert back.nodes[2].id == medium
    forward = await genealogy.trace(stock.qc, medium, "forward")
    assert {n.id for n in forward.nodes} == {medium, batch, made.id}
    csv = genealogy.as_csv(forward)
    assert csv.splitlines()[0].startswith("depth,kind,number")
    # Recall from the medium's supplier lot reaches the batch.
    supplier_lot = await owner.fetchval("SELECT supplier_lot FROM lots WHERE id = $1", medium)
    found = await genealogy.recall(stock.qc, supplier_lot)
    assert [b.id for b in found.batches] == [batch]
    assert [m.id for m in found.made] == [made.id]
    with pytest.raises(NotFound):
        await genealogy.trace(stock.qc, uuid.uuid4(), "backward")
    with pytest.raises(ValidationFailed):
        await genealogy.trace(stock.qc, medium, "sideways")


async def test_another_tenants_ids_are_not_found(stock: Stock, world: World, browser: Any) -> None:
    batch = await running_batch(stock)
    box = (await containers(stock, await lot_of(stock, stock.medium)))[0]
    # The same person, with every role it needs, in a tenant of its own: the plant's ids are
    # not found there.
    other = await tenancy.create_tenant(
        f"oth-{uuid.uuid4().hex[:8]}", "Other Plant", "cdmo", SYSTEM, RequestMeta()
    )
    await tenancy.upsert_site(other, "S1", "Other suite", "Europe/Berlin")
    roles = ["production_supervisor", "qa_approver"]
    await tenancy.add_member(other, world["admin"].user_id, roles)
    person = await browser("admin")
    base = f"/api/v1/t/{other.slug}"
    body = {"step": STEP, "container_id": str(box.id), "quantity": "1", "unit": "mL"}
    for method, path, kw in (
        ("POST", f"/batches/{batch}/consumptions", {"json": body}),
        ("POST", f"/batches/{batch}/reservations", {}),
        ("POST", f"/batches/{batch}/outputs", {"json": {**body, "material_id": str(stock.medium)}}),
        ("GET", f"/batches/{batch}/materials", {}),
        ("GET", f"/genealogy/{batch}", {}),
        ("GET", f"/genealogy/{box.lot_id}", {}),
    ):
        if "outputs" in path:
            kw["json"].pop("container_id")
        answer = await person.send(method, base + path, **kw)
        assert answer.status_code == 404, (path, answer.text)
    # In the plant, a container id of another tenant (or none) is not found either.
    body["container_id"] = str(uuid.uuid4())
    answer = await person.send("POST", stock.url(f"/batches/{batch}/consumptions"), json=body)
    assert answer.status_code == 404, answer.text


async def test_pages_show_materials_genealogy_and_recall(stock: Stock, browser: Any) -> None:
    batch = await running_batch(stock)
    medium = await lot_of(stock, stock.medium)
    box = (await containers(stock, medium))[0]
    await materials.consume(stock.plant.operator, batch, STEP, box.id, Decimal(300), "mL")
    qa = await browser("approver")
    base = f"/t/{stock.slug}"
    page = await qa.get(f"{base}/genealogy/{medium}?direction=forward")
    assert page.status_code == 200, page.text
    assert "<svg" in page.text and "Batch " in page.text
    exported = await qa.get(f"{base}/genealogy/{medium}/export?direction=forward&format=json")
    assert exported.status_code == 200 and exported.json()["direction"] == "forward"
    exported = await qa.get(f"{base}/genealogy/{batch}/export?direction=backward")
    assert "text/csv" in exported.headers["content-type"]
    assert str(medium) in exported.text
    supplier_lot = (await inventory.get_lot(stock.qc, medium)).lot.supplier_lot
    recall = await qa.get(f"{base}/recall", params={"supplier_lot": supplier_lot})
    assert recall.status_code == 200 and "Affected batches" in recall.text
    lot_page = await qa.get(f"{base}/lots/{medium}")
    assert "Where it went" in lot_page.text


# --- genealogy on generated graphs ------------------------------------------------------------


def brute_force(links: list[tuple[UUID, UUID]], start: UUID, backward: bool) -> set[UUID]:
    """Every node reachable from ``start`` by following links (repeatedly, until nothing new)."""
    reached = {start}
    changed = True
    while changed:
        changed = False
        for parent, child in links:
            a, b = (child, parent) if backward else (parent, child)
            if a in reached and b not in reached:
                reached.add(b)
                changed = True
    return reached


@pytest.mark.parametrize("seed", range(6))
async def test_traces_match_a_brute_force_walk_of_a_generated_graph(
    seed: int, stock: Stock, owner: asyncpg.Connection
) -> None:
    rng = random.Random(seed)
    tenant = stock.plant.ctx.tenant_id
    # Lots and batches as rows of their own (the links refer to real ones).
    created = await batch_of(stock.plant)
    frozen_from = created.id
    n_lots, n_batches = rng.randint(4, 25), rng.randint(2, 10)
    lot_ids = [await lot_of(stock, stock.medium, release=False) for _ in range(n_lots)]
    batch_ids = [frozen_from] + [(await batch_of(stock.plant)).id for _ in range(n_batches - 1)]
    links: list[tuple[UUID, UUID, str, str]] = []
    for _ in range(rng.randint(5, 60)):
        lot, batch = rng.choice(lot_ids), rng.choice(batch_ids)
        links.append(
            (lot, batch, "lot", "batch") if rng.random() < 0.6 else (batch, lot, "batch", "lot")
        )
    await owner.executemany(
        "INSERT INTO genealogy_links (tenant_id, parent_id, parent_kind, child_id, child_kind) "
        "VALUES ($1, $2, $3, $4, $5)",
        [(tenant, p, pk, c, ck) for p, c, pk, ck in links],
    )
    pairs = [(p, c) for p, c, _, _ in links]
    for start in rng.sample(lot_ids + batch_ids, 5):
        for way in ("backward", "forward"):
            found = await genealogy.trace(stock.qc, start, way)
            assert {n.id for n in found.nodes} == brute_force(pairs, start, way == "backward")
            assert found.nodes[0].id == start and found.nodes[0].depth == 0
            # Each depth is the shortest distance: a node at depth d has a link from d - 1.
            depth = {n.id: n.depth for n in found.nodes}
            for n in found.nodes[1:]:
                near = [
                    (c if way == "backward" else p)
                    for p, c in pairs
                    if (p if way == "backward" else c) == n.id
                ]
                assert min(depth[x] for x in near if x in depth) == n.depth - 1


async def test_the_run_page_uses_a_scanned_or_picked_container(
    stock: Stock, browser: Any, owner: asyncpg.Connection
) -> None:
    batch = await running_batch(stock)
    lot = await lot_of(stock, stock.medium)
    box = (await containers(stock, lot))[0]
    operator = await browser("operator")
    run = f"/t/{stock.slug}/batches/{batch}/run"
    page = await operator.get(run)
    assert page.status_code == 200
    assert 'id="m-activate-form"' in page.text and f'value="{box.id}"' in page.text
    assert f"{MEDIUM} material" in page.text  # the line shows the tenant's material name
    scanned = await operator.send(
        "POST",
        run + "/materials",
        data={
            "step": STEP,
            "scanned": f"opencdmo:container:{box.id}",
            "quantity": "100",
            "unit": "mL",
        },
    )
    assert scanned.status_code == 303, scanned.text
    picked = await operator.send(
        "POST",
        run + "/materials",
        data={"step": STEP, "picked": str(box.id), "quantity": "0.1", "unit": "L"},
    )
    assert picked.status_code == 303, picked.text
    assert await consumed_rows(owner, batch) == 2
    refused = await operator.send(
        "POST",
        run + "/materials",
        data={"step": STEP, "scanned": "not a label", "quantity": "1", "unit": "mL"},
    )
    assert refused.status_code == 422 and "is not a container label" in refused.text
    refused = await operator.send(
        "POST",
        run + "/materials",
        data={"step": STEP, "picked": str(box.id), "quantity": "1", "unit": "kg"},
    )
    assert refused.status_code == 422 and 'id="m-activate-refusal"' in refused.text
    assert await consumed_rows(owner, batch) == 2
    page = await operator.get(run)
    assert "200 mL" in page.text  # used so far, of 300 mL


async def test_the_batch_record_lists_the_materials_and_release_covers_them(
    stock: Stock, browser: Any
) -> None:
    from opencdmo.batches import queries, review
    from opencdmo.db.tx import tenant_transaction

    batch = await running_batch(stock)
    medium = await lot_of(stock, stock.medium)
    box = (await containers(stock, medium))[0]
    async with tenant_transaction(stock.qc):
        before = await review.record_content(await queries.batch(batch))
    assert "materials" not in before  # a record without materials reads as it was signed
    await materials.consume(stock.plant.operator, batch, STEP, box.id, Decimal(300), "mL")
    async with tenant_transaction(stock.qc):
        after = await review.record_content(await queries.batch(batch))
        who = await review.performers_and_verifiers(batch)
    assert [m["quantity"] for m in after["materials"]] == ["300"]
    assert stock.plant.operator.user_id in who
    qa = await browser("approver")
    page = await qa.get(f"/t/{stock.slug}/batches/{batch}/record")
    assert page.status_code == 200, page.text
    lot_number = (await inventory.get_lot(stock.qc, medium)).lot.lot_number
    assert "Materials used" in page.text and lot_number in page.text


async def test_what_is_used_is_no_longer_on_hand(stock: Stock) -> None:
    from opencdmo.db.tx import tenant_transaction
    from opencdmo.inventory import queries as lot_queries

    batch = await running_batch(stock)
    box = (await containers(stock, await lot_of(stock, stock.medium)))[0]
    await materials.consume(stock.plant.operator, batch, STEP, box.id, Decimal(300), "mL")
    async with tenant_transaction(stock.qc):
        found = await lot_queries.on_hand([stock.medium], date.today())
    assert found[stock.medium] == Decimal(700)  # 1 L received, 300 mL used


async def test_the_librarys_materials_are_offered_to_the_master(
    stock: Stock, browser: Any, owner: asyncpg.Connection
) -> None:
    from opencdmo.inventory import from_library

    # The plant's library holds t-cell-activation and the materials it depends on.
    offered = {o.slug: o for o in await from_library.offered(stock.handler)}
    il2 = offered["recombinant-human-il-2"]
    assert il2.material_type == "reagent" and il2.unit == "[iU]"  # t-cell-activation's line
    assert MEDIUM not in offered  # in the master already (by its code)
    handler = await browser("handler")
    base = f"/t/{stock.slug}/materials"
    page = await handler.get(base)
    assert 'id="add-recombinant-human-il-2"' in page.text
    added = await handler.send(
        "POST",
        base,
        data={
            "code": il2.slug,
            "name": il2.name,
            "material_type": il2.material_type,
            "storage_condition": il2.storage_condition,
            "library_item_id": str(il2.library_item_id),
            "default_unit": "[iU]",
        },
    )
    assert added.status_code == 303, added.text
    linked = await owner.fetchval(
        "SELECT library_item_id FROM materials WHERE tenant_id = $1 AND code = $2",
        stock.plant.ctx.tenant_id,
        il2.slug,
    )
    assert linked == il2.library_item_id
    assert "recombinant-human-il-2" not in {
        o.slug for o in await from_library.offered(stock.handler)
    }
    with pytest.raises(Forbidden):
        await from_library.offered(stock.plant.viewer)


async def test_the_run_page_records_a_lot_a_step_made(
    stock: Stock, browser: Any, owner: asyncpg.Connection
) -> None:
    batch = await running_batch(stock)
    operator = await browser("operator")
    run = f"/t/{stock.slug}/batches/{batch}/run"
    page = await operator.get(run)
    assert 'id="o-activate-form"' in page.text and "ACT-CELLS" in page.text
    made = await operator.send(
        "POST",
        run + "/outputs",
        data={
            "step": STEP,
            "material_id": str(stock.intermediate),
            "quantity": "45",
            "unit": "mL",
            "containers": "3",
        },
    )
    assert made.status_code == 303, made.text
    row = await owner.fetchrow(
        "SELECT id, status, origin_step FROM lots WHERE origin_batch_id = $1", batch
    )
    assert row["status"] == "quarantine" and row["origin_step"] == STEP
    boxes = await owner.fetchval("SELECT count(*) FROM lot_containers WHERE lot_id = $1", row["id"])
    assert boxes == 3
    page = await operator.get(run)
    assert "(1)" in page.text and str(row["id"]) in page.text
    refused = await operator.send(
        "POST",
        run + "/outputs",
        data={"step": STEP, "material_id": str(stock.pbs), "quantity": "1", "unit": "mL"},
    )
    assert refused.status_code == 422 and 'id="o-activate-refusal"' in refused.text
    refused = await operator.send(
        "POST",
        run + "/outputs",
        data={"step": STEP, "material_id": "not an id", "quantity": "1", "unit": "mL"},
    )
    assert refused.status_code == 422
    assert await owner.fetchval("SELECT count(*) FROM lots WHERE origin_batch_id = $1", batch) == 1


@pytest.mark.usefixtures("job_worker")
async def test_the_batchml_export_carries_the_materials_used_and_made(
    stock: Stock, browser: Any
) -> None:
    from opencdmo.batches.batchml import validate

    batch = await running_batch(stock)
    medium = await lot_of(stock, stock.medium)
    box = (await containers(stock, medium))[0]
    await materials.consume(stock.plant.operator, batch, STEP, box.id, Decimal(300), "mL")
    await outputs.produce(
        stock.plant.operator, batch, outputs.Output(STEP, stock.intermediate, Decimal(50), "mL")
    )
    qa = await browser("approver")
    xml = await export_by_form(qa, stock.slug, f"/t/{stock.slug}/batches/{batch}/record.xml")
    assert xml.status_code == 200, xml.text
    assert validate(xml.content) == []
    text = xml.text
    assert "<EventSubType>Consume</EventSubType>" in text
    assert "<EventSubType>Produce</EventSubType>" in text
    lot_number = (await inventory.get_lot(stock.qc, medium)).lot.lot_number
    assert f"<ExternalReference>{lot_number}</ExternalReference>" in text


async def test_a_retry_with_the_same_key_is_given_the_first_use(
    stock: Stock, browser: Any, owner: asyncpg.Connection
) -> None:
    batch = await running_batch(stock)
    box = (await containers(stock, await lot_of(stock, stock.medium)))[0]
    operator = await browser("operator")
    url = stock.url(f"/batches/{batch}/consumptions")
    body = {
        "step": STEP,
        "container_id": str(box.id),
        "quantity": "100",
        "unit": "mL",
        "idempotency_key": "tablet-7-0001",
    }
    # The same request twice at once (a lost answer retried): one use.
    answers = await asyncio.gather(
        operator.send("POST", url, json=body), operator.send("POST", url, json=body)
    )
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    ids = {a.json()["consumption"]["id"] for a in answers}
    assert len(ids) == 1
    assert await consumed_rows(owner, batch) == 1
    assert (await containers(stock, box.lot_id))[0].remaining == Decimal("0.4")
    events = await owner.fetchval(
        "SELECT count(*) FROM audit_events WHERE entity_id = $1 "
        "AND action = 'batch.material_consumed'",
        str(batch),
    )
    assert events == 1
    other = await operator.send("POST", url, json={**body, "quantity": "5"})
    assert other.status_code == 409 and "idempotency key" in other.json()["error"]["message"]
    # The run page gives each form its own key: the same form sent twice is one use.
    run = f"/t/{stock.slug}/batches/{batch}/run"
    page = await operator.get(run)
    key = page.text.split('name="key" value="', 1)[1].split('"', 1)[0]
    form = {"step": STEP, "picked": str(box.id), "quantity": "10", "unit": "mL", "key": key}
    for _ in range(2):
        sent = await operator.send("POST", run + "/materials", data=form)
        assert sent.status_code == 303, sent.text
    assert await consumed_rows(owner, batch) == 2
