"""The sponsor's view of the batches its CDMO partners make for it: only its own batches
(not another sponsor's, not those of a CDMO it has no active relationship with), nothing
for the CDMO or a third tenant, nothing once revoked; the released record as BatchML only
while the CDMO shares records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from opencdmo.batches import batchml, review, sponsor_view
from opencdmo.batches import execution_queries as xq
from opencdmo.batches import queries as bq
from opencdmo.batches import service as batches
from opencdmo.db.tx import tenant_id_transaction
from opencdmo.partners import service as partners
from opencdmo.recipes import service as recipes
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, World
from tests.integration.batch_world import Plant, batch_of, new_plant, phases_done, underway
from tests.integration.export_flow import export_by_form
from tests.integration.job_worker import job_worker
from tests.integration.test_partners import Org, new_org, signed_in
from tests.integration.test_routes_generic import FROZEN

__all__ = ["job_worker"]


@pytest.fixture
async def plant(synced: Any, world: World, owner: asyncpg.Connection, settings: Settings) -> Plant:
    return await new_plant(world, owner, settings)


async def _cdmo_admin(plant: Plant, world: World) -> Org:
    return await new_org("cdmo", ctx=plant.ctx)


async def _related(cdmo: Org, sponsor: Org) -> uuid.UUID:
    link = (await partners.propose(cdmo.admin, sponsor.ctx.slug)).row.id
    await partners.accept(sponsor.admin, link)
    return link


async def _stray_batch(org: Org, sponsor_tenant: uuid.UUID) -> None:
    """A batch of another CDMO that names the sponsor without a relationship (written
    through the batch queries, as no form would)."""
    await tenancy.upsert_site(org.ctx, "X1", "Stray site", "UTC")
    site = (await tenancy.list_sites(org.ctx))[0]
    recipe = await recipes.create(org.ctx, "Stray recipe")
    new = bq.NewBatch(
        f"S-{uuid.uuid4().hex[:6]}", recipe, 1, "1 L scale", site.id, "Stray",
        datetime.now(UTC), None, None, None, None, sponsor_tenant,
    )  # fmt: skip
    async with tenant_id_transaction(org.ctx.tenant_id):
        batch_id = await bq.insert_batch(org.ctx.tenant_id, new)
        await bq.insert_control_recipe(org.ctx.tenant_id, batch_id, FROZEN, "0" * 64)


async def test_a_sponsor_sees_the_batches_made_for_it_and_nothing_else(
    plant: Plant, world: World, browser: Any
) -> None:
    cdmo = await _cdmo_admin(plant, world)
    sponsor = await new_org("sponsor", "Quillon Tx")
    rival = await new_org("sponsor", "Rival Bio")
    await _related(cdmo, sponsor)
    await _related(cdmo, rival)
    ours = await batch_of(plant, sponsor="quillon tx")  # named as listed, any case
    theirs = await batch_of(plant, sponsor="Rival Bio")
    await batch_of(plant, sponsor="A client with no tenant")
    unrelated = await new_org("cdmo")
    await _stray_batch(unrelated, sponsor.ctx.tenant_id)

    seen = await sponsor_view.made_for_us(sponsor.admin)
    assert [m.batch.batch_id for m in seen] == [ours.id]
    row = seen[0].batch
    assert (row.number, row.recipe, row.status, row.decision) == (
        ours.number,
        "CAR-T autologous",
        "idle",
        "pending",
    )
    assert (row.open_exceptions, row.open_deviations) == (0, 0)
    assert row.current_step == "activate" and not row.record_available
    assert [m.batch.batch_id for m in await sponsor_view.made_for_us(rival.admin)] == [theirs.id]
    assert await sponsor_view.made_for_us(cdmo.admin) == []  # a CDMO is sponsored by nobody
    assert await sponsor_view.made_for_us(unrelated.admin) == []

    client = await signed_in(browser, sponsor)
    api = (await client.get(f"/api/v1/t/{sponsor.ctx.slug}/partners/batches")).json()
    assert [(b["number"], b["cdmo_slug"]) for b in api] == [(ours.number, plant.ctx.slug)]
    page = await client.get(f"/t/{sponsor.ctx.slug}/partners/batches")
    assert page.status_code == 200 and ours.number in page.text
    assert theirs.number not in page.text
    # the CDMO's own batch pages stay the CDMO's: the sponsor is not a member there
    direct = await client.get(f"/api/v1/t/{plant.ctx.slug}/batches/{ours.id}")
    assert direct.status_code == 404


async def _released(plant: Plant, settings: Settings, batch_id: uuid.UUID) -> None:
    """Run the batch to its end, QA accepting each exception, and release it (signed)."""
    await underway(plant, batch_id)
    await phases_done(plant, batch_id)
    await batches.command_batch(plant.supervisor, batch_id, "complete")
    async with tenant_id_transaction(plant.ctx.tenant_id):
        found = await xq.exceptions(batch_id)
    for exception in found:
        await review.accept_exception(plant.approver, batch_id, exception.id, "assessed")
    await review.decide(settings, plant.approver, batch_id, "release", PASSWORD, "meets spec")


@pytest.mark.usefixtures("job_worker")
async def test_revoked_shows_nothing_and_the_record_follows_the_sharing_setting(
    plant: Plant, world: World, browser: Any, settings: Settings
) -> None:
    cdmo = await _cdmo_admin(plant, world)
    sponsor = await new_org("sponsor", "Quillon Tx")
    link = await _related(cdmo, sponsor)
    made = await batch_of(plant, sponsor="Quillon Tx")
    client = await signed_in(browser, sponsor)
    record = f"/api/v1/t/{sponsor.ctx.slug}/partners/batches/{made.id}/record.xml"
    assert (await client.get(record)).status_code == 404  # not released yet
    await _released(plant, settings, made.id)
    (row,) = [m.batch for m in await sponsor_view.made_for_us(sponsor.admin)]
    assert row.decision == "released" and row.record_available
    sent = await client.get(record)
    assert sent.status_code == 200, sent.text
    assert sent.headers["content-type"].startswith("application/xml")
    assert batchml.validate(sent.content) == []
    assert made.number.encode() in sent.content
    page_url = f"/t/{sponsor.ctx.slug}/partners/batches/{made.id}/record.xml"
    page = await export_by_form(client, sponsor.ctx.slug, page_url)
    assert page.status_code == 200 and batchml.validate(page.content) == []
    assert made.number.encode() in page.content

    await partners.set_sharing(cdmo.admin, link, False, "records by request only")
    (row,) = [m.batch for m in await sponsor_view.made_for_us(sponsor.admin)]
    assert row.decision == "released" and not row.record_available
    assert (await client.get(record)).status_code == 404

    await partners.revoke(cdmo.admin, link, "contract ended")
    assert await sponsor_view.made_for_us(sponsor.admin) == []
    assert (await client.get(f"/api/v1/t/{sponsor.ctx.slug}/partners/batches")).json() == []


async def test_a_batch_for_an_active_sponsor_carries_its_tenant(
    plant: Plant, world: World, owner: asyncpg.Connection, browser: Any
) -> None:
    cdmo = await _cdmo_admin(plant, world)
    sponsor = await new_org("sponsor", "Quillon Tx")
    before = await batch_of(plant, sponsor="Quillon Tx")  # no relationship yet
    await _related(cdmo, sponsor)
    after = await batch_of(plant, sponsor=sponsor.ctx.slug)  # the slug names it too
    found = {
        r["id"]: r["sponsor_tenant_id"]
        for r in await owner.fetch(
            "SELECT id, sponsor_tenant_id FROM batches WHERE id = ANY($1)", [before.id, after.id]
        )
    }
    assert found == {before.id: None, after.id: sponsor.ctx.tenant_id}
    created = await owner.fetchval(
        "SELECT new_values FROM audit_events WHERE entity_id = $1 AND action = 'batch.created'",
        str(after.id),
    )
    assert str(sponsor.ctx.tenant_id) in created
    supervisor = await browser("admin")  # production_supervisor in the plant
    form = await supervisor.get(f"/t/{plant.ctx.slug}/batches")
    assert 'list="partner-sponsors"' in form.text and "Quillon Tx" in form.text


async def test_the_projection_as_the_app_role_keeps_the_callers_tenant(
    plant: Plant, world: World, database: Any
) -> None:
    """Straight on the app role: no tenant set, nothing; the sponsor's tenant set, its batches
    and its tenant setting as it was after the call; the CDMO's batches table itself stays
    out of reach under the sponsor's setting."""
    cdmo = await _cdmo_admin(plant, world)
    sponsor = await new_org("sponsor", "Quillon Tx")
    await _related(cdmo, sponsor)
    made = await batch_of(plant, sponsor="Quillon Tx")
    connection = await asyncpg.connect(database.app)
    try:
        async with connection.transaction():
            assert await connection.fetch("SELECT * FROM sponsor_batches()") == []
        async with connection.transaction():
            me = str(sponsor.ctx.tenant_id)
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", me)
            rows = await connection.fetch("SELECT batch_id FROM sponsor_batches()")
            assert [r["batch_id"] for r in rows] == [made.id]
            assert await connection.fetchval("SELECT current_setting('app.tenant_id')") == me
            assert await connection.fetchval("SELECT count(*) FROM batches") == 0
            assert await connection.fetchval("SELECT count(*) FROM partner_links") == 1
    finally:
        await connection.close()
