"""The batch record's pages: the record, review by exception with its forms, the BatchML
export, the live board, rendered from a real batch."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from lxml import etree

from opencdmo.batches import batchml, execution
from opencdmo.batches import service as batches
from opencdmo.settings import Settings
from tests.conftest import PASSWORD, World
from tests.integration.batch_world import Plant, batch_of, new_plant, phases_done, underway
from tests.integration.export_flow import export_by_form
from tests.integration.job_worker import job_worker

__all__ = ["job_worker"]


@pytest.fixture
async def plant(synced: Any, world: World, owner: asyncpg.Connection, settings: Settings) -> Plant:
    return await new_plant(world, owner, settings)


async def _complete(plant: Plant, settings: Settings) -> Any:
    made = await batch_of(plant)
    await underway(plant, made.id, "medium_preparation")
    await batches.record_entry(
        plant.operator,
        made.id,
        "activate",
        "medium_preparation",
        "il2_volume_added",
        1.5,
        "mL",
        "k1",
    )
    await batches.record_entry(
        plant.operator,
        made.id,
        "activate",
        "medium_preparation",
        "il2_concentration",
        150,
        None,
        "k2",
    )
    await batches.record_entry(
        plant.operator,
        made.id,
        "activate",
        "medium_preparation",
        "il2_volume_added",
        1.6,
        "mL",
        "k3",
        supersedes=(await batches.list_entries(plant.viewer, made.id))[0].entry.id,
        reason="misread <the> pipette & scale",
    )
    await execution.command_phase(
        plant.operator, made.id, "activate", "medium_preparation", "complete"
    )
    await execution.verify_phase(
        settings, plant.supervisor, made.id, "activate", "medium_preparation", PASSWORD, "seen"
    )
    await execution.take_custody(plant.operator, made.id, "Suite 1 BSC")
    await phases_done(plant, made.id)
    await batches.command_batch(plant.supervisor, made.id, "complete")
    return made


async def test_the_record_page_shows_everything(
    plant: Plant, settings: Settings, browser: Any
) -> None:
    made = await _complete(plant, settings)
    viewer = await browser("viewer")
    page = await viewer.get(f"/t/{plant.ctx.slug}/batches/{made.id}/record")
    assert page.status_code == 200, page.text
    html = page.text
    for expected in (
        "Batch record",
        "control-recipe-hash",
        "misread &lt;the&gt; pipette &amp; scale",
        "Verified by",
        "Suite 1 BSC",
        "COI-0001",
        "outside the normal range",
        "<td>IL-2 volume added</td>",  # fields by their names, not their keys
    ):
        assert expected in html, expected
    assert "il2_volume_added</td>" not in html and "activate/medium_preparation" not in html


@pytest.mark.usefixtures("job_worker")
async def test_the_batchml_export_is_valid(plant: Plant, settings: Settings, browser: Any) -> None:
    made = await _complete(plant, settings)
    viewer = await browser("viewer")
    page = f"/t/{plant.ctx.slug}/batches/{made.id}/record.xml"
    for sending in (
        export_by_form(viewer, plant.ctx.slug, page),
        viewer.get(f"/api/v1/t/{plant.ctx.slug}/batches/{made.id}/record.xml"),
    ):
        sent = await sending
        assert sent.status_code == 200, sent.text
        assert sent.headers["content-type"].startswith("application/xml")
        assert batchml.validate(sent.content) == []
        tree = etree.fromstring(sent.content, etree.XMLParser(resolve_entities=False))
        text = etree.tostring(tree, encoding="unicode")
        assert "misread &lt;the&gt; pipette &amp; scale" in text
        hash_ = (await batches.get_batch(plant.viewer, made.id)).control_recipe.content_hash
        assert hash_ in text


async def test_review_by_exception_through_the_forms(
    plant: Plant, settings: Settings, browser: Any
) -> None:
    made = await _complete(plant, settings)
    qa = await browser("approver")
    base = f"/t/{plant.ctx.slug}/batches/{made.id}"
    page = await qa.get(base + "/review")
    assert page.status_code == 200
    assert "Exceptions to disposition" in page.text and "Entries with no exception" in page.text
    found = (await qa.get(f"/api/v1{base}/exceptions")).json()["items"]
    first, *rest = found
    refused = await qa.send(
        "POST",
        f"{base}/exceptions/{first['id']}/accept",
        data={"comment": "", "_csrf_token": qa.csrf},
    )
    assert refused.status_code == 422 and "comment" in refused.text.lower()
    ok = await qa.send(
        "POST",
        f"{base}/exceptions/{first['id']}/accept",
        data={"comment": "fine", "_csrf_token": qa.csrf},
    )
    assert ok.status_code == 303
    supervisor = await browser("admin")  # opens it; QA, not the opener, signs its closure
    opened = await supervisor.send(
        "POST",
        f"{base}/deviations",
        data={
            "exception_ids": [e["id"] for e in rest],
            "classification": "minor",
            "description": "Set-up gaps",
            "_csrf_token": supervisor.csrf,
        },
    )
    assert opened.status_code == 303, opened.text
    deviation = (await qa.get(f"/api/v1{base}/deviations")).json()["items"][0]
    early = await qa.send(
        "POST",
        f"{base}/disposition",
        data={"decision": "release", "password": PASSWORD, "reason": "ok", "_csrf_token": qa.csrf},
    )
    assert early.status_code == 409 and deviation["number"] in early.text
    closed = await qa.send(
        "POST",
        f"{base}/deviations/{deviation['id']}/close",
        data={
            "impact": "none",
            "root_cause": "test",
            "password": PASSWORD,
            "reason": "closing",
            "_csrf_token": qa.csrf,
        },
    )
    assert closed.status_code == 303, closed.text
    released = await qa.send(
        "POST",
        f"{base}/disposition",
        data={"decision": "release", "password": PASSWORD, "reason": "ok", "_csrf_token": qa.csrf},
    )
    assert released.status_code == 303, released.text
    assert (await batches.get_batch_row(plant.viewer, made.id)).disposition == "released"
    after = await qa.get(base + "/review")
    assert "disposition" in after.text and "Released" in after.text


async def test_the_board_shows_batches_in_progress(plant: Plant, browser: Any) -> None:
    made = await batch_of(plant)
    await underway(plant, made.id, "medium_preparation")
    await batch_of(plant)  # idle: not on the board
    supervisor = await browser("admin")
    page = await supervisor.get(f"/t/{plant.ctx.slug}/batches/board")
    assert page.status_code == 200
    number = (await batches.get_batch_row(plant.viewer, made.id)).number
    assert number in page.text and "0 of 3 phases" in page.text
    assert "IL-2" in page.text or "medium" in page.text.lower()
    assert "1 in progress" in page.text


async def test_a_supervisor_creates_a_batch_with_the_form(plant: Plant, browser: Any) -> None:
    supervisor = await browser("admin")
    listing = await supervisor.get(f"/t/{plant.ctx.slug}/batches")
    assert "New batch" in listing.text and "CAR-T autologous: 1 L scale" in listing.text
    form = {
        "recipe_formula": f"{plant.recipe}|1 L scale",
        "site": "S1",
        "planned_start": "2026-05-04T08:00",
        "sponsor": "Quillon Therapeutics",
        "donor_id": "D-1",
        "coi_label": "",
        "apheresis_id": "A-1",
        "_csrf_token": supervisor.csrf,
    }
    refused = await supervisor.send("POST", f"/t/{plant.ctx.slug}/batches", data=form)
    assert refused.status_code == 422 and "needs the COI label" in refused.text
    assert 'value="D-1"' in refused.text  # what was typed is kept
    made = await supervisor.send(
        "POST", f"/t/{plant.ctx.slug}/batches", data={**form, "coi_label": "COI-1"}
    )
    assert made.status_code == 303, made.text
    page = await supervisor.get(made.headers["location"])
    assert "S1-26-0001" in page.text
    viewer = await browser("viewer")
    assert "New batch" not in (await viewer.get(f"/t/{plant.ctx.slug}/batches")).text
