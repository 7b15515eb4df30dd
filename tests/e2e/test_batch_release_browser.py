"""A small batch run to release in a real browser on a tablet, by three people: the operator
runs every phase at the bench (the COI label checked first), a second person verifies each
phase and completes the batch, and QA reviews by exception and releases it with a
signature."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import pytest
from playwright.async_api import Browser, Page, expect

from opencdmo.batches import service as batches
from opencdmo.settings import Settings
from tests.conftest import PASSWORD, World
from tests.e2e.conftest import check_page
from tests.integration.batch_world import Plant, batch_of, new_plant

pytestmark = pytest.mark.e2e

TABLET = {"width": 820, "height": 1180}


@pytest.fixture
async def plant(synced: Any, world: World, owner: asyncpg.Connection, settings: Settings) -> Plant:
    return await new_plant(world, owner, settings)


async def signed_in(chromium: Browser, server: str, email: str, url: str, name: str) -> Page:
    page = await chromium.new_page(viewport=TABLET)
    await page.goto(url)
    await check_page(page, name + "-login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(url)
    await check_page(page, name)
    return page


async def record(page: Page, phase: str, key: str, value: str) -> None:
    here = page.locator(f"#f-activate--{phase}--{key}")
    await here.locator("input[name=value]").fill(value)
    await here.get_by_role("button", name="Record").click()
    await expect(here.locator(".check-badge")).to_be_visible()


async def yes(page: Page, phase: str, key: str) -> None:
    here = page.locator(f"#f-activate--{phase}--{key}")
    await here.get_by_role("button", name="Yes").click()
    await expect(here.locator(".check-badge")).to_be_visible()


async def now(page: Page, phase: str, key: str) -> None:
    here = page.locator(f"#f-activate--{phase}--{key}")
    await here.get_by_role("button", name="Now").click()
    await here.get_by_role("button", name="Record").click()
    await expect(here.locator(".check-badge")).to_be_visible()


async def command(page: Page, phase: str, name: str) -> None:
    section = page.locator(f"#p-activate--{phase}")
    await section.get_by_role("button", name=name, exact=True).click()
    await expect(section.locator(".phase-status")).to_have_text(
        "Running" if name == "Start" else "Complete"
    )
    await check_page(page, f"release-{phase}-{name.lower()}")


async def test_three_people_run_a_batch_to_release(
    server: str, chromium: Browser, plant: Plant, owner: asyncpg.Connection
) -> None:
    made = await batch_of(plant)
    await batches.command_batch(plant.supervisor, made.id, "start")
    base = f"{server}/t/{plant.ctx.slug}/batches/{made.id}"

    # The operator, at the bench: the COI label first, then each phase in order.
    bench = await signed_in(chromium, server, "operator@alpha.test", base + "/run", "release-run")
    first = bench.locator("#p-activate--medium_preparation")
    await first.get_by_label("Scan or type the COI label on the container").fill("COI-0001")
    await first.get_by_role("button", name="Check the label").click()
    await expect(bench.get_by_text("The COI label matches.")).to_be_visible()
    await check_page(bench, "release-label-checked")
    await command(bench, "medium_preparation", "Start")
    await record(bench, "medium_preparation", "il2_volume_added", "3")
    await command(bench, "medium_preparation", "Complete")
    await command(bench, "seeding", "Start")
    await record(bench, "seeding", "pre_activation_viability", "92")
    await record(bench, "seeding", "viable_cells_seeded_actual", "200")
    await record(bench, "seeding", "culture_volume", "200")
    await command(bench, "seeding", "Complete")
    await command(bench, "incubation", "Start")
    await now(bench, "incubation", "incubation_start")
    await now(bench, "incubation", "incubation_end")
    await record(bench, "incubation", "incubator_temperature", "37")  # by hand: an exception
    await record(bench, "incubation", "incubator_co2", "5")
    await yes(bench, "incubation", "activation_clusters_observed")
    await command(bench, "incubation", "Complete")
    await check_page(bench, "release-run-done")
    # The performer may not sign their own phases.
    await expect(bench.get_by_role("button", name="Verified…")).to_have_count(0)
    await bench.close()

    # The second person verifies each phase with a signature, then completes the batch.
    second = await signed_in(chromium, server, "admin@alpha.test", base + "/run", "release-verify")
    for phase in ("medium_preparation", "seeding", "incubation"):
        section = second.locator(f"#p-activate--{phase}")
        await section.get_by_role("button", name="Verified…").click()
        dialog = second.get_by_role("dialog")
        await dialog.get_by_label("Reason").fill("Entries checked against the instructions")
        await dialog.get_by_label("Password (electronic signature)").fill(PASSWORD)
        await dialog.get_by_role("button", name="Sign as verified").click()
        await expect(second.locator(f"#p-activate--{phase} .phase-signed")).to_contain_text(
            "Verified by"
        )
        await check_page(second, f"release-verified-{phase}")
    await second.goto(base)
    await second.locator("#batch-commands").get_by_role("button", name="Complete").click()
    await expect(second.locator(".batch-state")).to_have_text("Complete")
    await check_page(second, "release-complete")
    await second.close()

    # QA: only what went wrong, each exception dispositioned, then the release signature.
    qa = await signed_in(chromium, server, "approver@alpha.test", base + "/review", "release-qa")
    exceptions = qa.locator("#open-exceptions li.exception")
    assert await exceptions.count() == 2  # both incubator values entered by hand
    await expect(qa.locator("#summary")).to_contain_text("Entries with no exception")
    while await exceptions.count():
        item = exceptions.first
        await item.get_by_label("Comment (why it is acceptable)").fill(
            "Incubator display read by a trained operator; the logger agrees."
        )
        before = await exceptions.count()
        await item.get_by_role("button", name="Accept").click()
        await expect(exceptions).to_have_count(before - 1)
        await check_page(qa, f"release-accepted-{before}")
    await expect(qa.locator("#no-open-exceptions")).to_be_visible()
    await qa.get_by_role("button", name="Release…").click()
    dialog = qa.get_by_role("dialog")
    await dialog.get_by_label("Reason").fill("Record reviewed; the batch meets its specification")
    await dialog.get_by_label("Password (electronic signature)").fill(PASSWORD)
    await dialog.get_by_role("button", name="Sign as released").click()
    await expect(qa.locator("#disposition")).to_contain_text("Released")
    await check_page(qa, "release-released")
    await qa.goto(base + "/record")
    await expect(qa.locator("#signatures")).to_contain_text("released")
    await check_page(qa, "release-record")
    await qa.close()

    row = await owner.fetchrow(
        "SELECT status, disposition FROM batches WHERE id = $1", UUID(str(made.id))
    )
    assert (row["status"], row["disposition"]) == ("complete", "released")
    meanings = await owner.fetch(
        "SELECT meaning, count(*) AS n FROM signatures WHERE tenant_id = $1 GROUP BY meaning",
        plant.ctx.tenant_id,
    )
    found = {r["meaning"]: r["n"] for r in meanings}
    assert found["verified"] == 3 and found["released"] == 1
