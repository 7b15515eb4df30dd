"""The run page at the bench on a tablet (820x1180, portrait): an operator records values and
sees each check at once; entries made offline wait in the browser and are sent exactly once
when it is back online, also across a reload and when a response was lost; a field someone
else recorded first shows their value."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from playwright.async_api import Browser, Locator, Page, Route, expect

from opencdmo.batches import service as batches
from opencdmo.settings import Settings
from tests.conftest import PASSWORD, World
from tests.e2e.conftest import check_page, overflow, visit
from tests.integration.batch_world import (
    Plant,
    batch_of,
    end_step,
    every_phase_running,
    new_plant,
)
from tests.integration.test_batch_run_page import every_kind

pytestmark = pytest.mark.e2e

PORTRAIT = {"width": 820, "height": 1180}
ENTRIES = "**/api/v1/t/*/batches/*/entries"


@pytest.fixture
async def plant(synced: Any, world: World, owner: asyncpg.Connection, settings: Settings) -> Plant:
    return await new_plant(world, owner, settings)


async def running(plant: Plant) -> UUID:
    made = await batch_of(plant)
    await every_phase_running(plant, made.id)
    return made.id


async def at_the_bench(chromium: Browser, server: str, plant: Plant, batch: UUID) -> Page:
    """The operator signed in on a tablet, on the batch's run page."""
    page = await chromium.new_page(viewport=PORTRAIT)
    url = f"{server}/t/{plant.ctx.slug}/batches/{batch}/run"
    await page.goto(url)
    await check_page(page, "run-login")
    await page.get_by_label("Email").fill("operator@alpha.test")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(url)
    await expect(banner(page)).to_have_text("All entries sent")
    return page


def banner(page: Page) -> Locator:
    return page.locator("#entry-queue-status")


def field(page: Page, step: str, phase: str, key: str) -> Locator:
    return page.locator(f"#f-{step}--{phase}--{key}")


def result(page: Page, step: str, phase: str, key: str) -> Locator:
    return page.locator(f"#f-{step}--{phase}--{key}-result")


async def record(page: Page, phase: str, key: str, value: str) -> None:
    here = field(page, "activate", phase, key)
    await here.locator("input[name=value]").fill(value)
    await here.get_by_role("button", name="Record").click()


async def counts(owner: asyncpg.Connection, batch: UUID) -> dict[str, int]:
    rows = await owner.fetch(
        "SELECT field, count(*) AS n FROM batch_entries WHERE batch_id = $1 GROUP BY field",
        batch,
    )
    return {r["field"]: r["n"] for r in rows}


async def test_an_operator_records_values_and_sees_each_check_at_once(
    server: str, chromium: Browser, plant: Plant, owner: asyncpg.Connection
) -> None:
    batch = await running(plant)
    page = await at_the_bench(chromium, server, plant, batch)
    assert await overflow(page, PORTRAIT) is None
    medium = page.locator("#p-activate--medium_preparation")
    await expect(medium).to_have_attribute("aria-current", "step")
    await expect(medium.get_by_text("Current phase")).to_be_visible()
    await check_page(page, "run-open")

    await record(page, "medium_preparation", "il2_volume_added", "3")
    await expect(result(page, "activate", "medium_preparation", "il2_volume_added")).to_have_text(
        "Sent: 3 mL, in limits."
    )
    volume = field(page, "activate", "medium_preparation", "il2_volume_added")
    await expect(volume.locator(".check-badge.badge-success")).to_have_text("In limits")
    await expect(volume).to_contain_text("Recorded by Operator Person")
    await expect(volume.get_by_role("button", name="Correct")).to_be_visible()
    # The medium is prepared: the operator completes its phase, and the seeding is the phase
    # to work on now.
    await medium.get_by_role("button", name="Complete", exact=True).click()
    await expect(page.locator("#p-activate--seeding")).to_have_attribute("aria-current", "step")
    await expect(medium).not_to_have_attribute("aria-current", "step")
    await expect(medium.locator(".phase-status")).to_have_text("Complete")

    await record(page, "seeding", "pre_activation_viability", "75")
    viability = result(page, "activate", "seeding", "pre_activation_viability")
    await expect(viability).to_have_text("Sent: 75 %, outside the field's limits.")
    await expect(
        field(page, "activate", "seeding", "pre_activation_viability").locator(".check-badge")
    ).to_have_text("Outside the field's limits")
    await record(page, "seeding", "seeding_density", "1,5")  # a decimal comma
    await expect(result(page, "activate", "seeding", "seeding_density")).to_have_text(
        "Sent: 1.5 × 10⁶ cells/mL, outside the normal range."
    )
    density = field(page, "activate", "seeding", "seeding_density")
    await expect(density.locator(".check-badge.badge-warning")).to_have_text(
        "Outside the normal range"
    )
    await check_page(page, "run-recorded")

    # A correction asks for a reason and keeps both entries.
    opener = volume.get_by_role("button", name="Correct")
    await opener.click()
    await expect(volume.get_by_label("Corrected value")).to_be_focused()
    await volume.get_by_role("button", name="Cancel").click()
    await expect(volume.get_by_label("Corrected value")).to_be_hidden()
    await expect(opener).to_have_attribute("aria-expanded", "false")
    await opener.click()
    await volume.get_by_label("Corrected value").fill("3.5")
    await volume.get_by_role("button", name="Save correction").click()
    volume_result = result(page, "activate", "medium_preparation", "il2_volume_added")
    await expect(volume_result).to_have_text("Give a reason for the correction.")
    await volume.get_by_label("Reason for the correction").fill("misread the pipette")
    await volume.get_by_role("button", name="Save correction").click()
    await expect(volume_result).to_have_text("Correction sent: 3.5 mL, in limits.")
    await expect(volume).to_contain_text("Corrected by Operator Person")
    await expect(volume).to_contain_text("reason: misread the pipette")
    await check_page(page, "run-corrected")
    assert await counts(owner, batch) == {
        "il2_volume_added": 2,
        "pre_activation_viability": 1,
        "seeding_density": 1,
    }
    await page.close()


async def test_entries_made_offline_are_sent_once_when_back_online(
    server: str, chromium: Browser, plant: Plant, owner: asyncpg.Connection
) -> None:
    batch = await running(plant)
    page = await at_the_bench(chromium, server, plant, batch)
    await page.context.set_offline(True)
    await record(page, "seeding", "culture_volume", "250")
    await record(page, "seeding", "viable_cells_seeded_actual", "200")
    await expect(banner(page)).to_have_text("Offline: 2 entries waiting")
    await expect(result(page, "activate", "seeding", "culture_volume")).to_have_text(
        "Waiting to send this entry: 250 mL."
    )
    kept = await page.evaluate(
        "() => Object.keys(localStorage).filter(k => k.startsWith('opencdmo.entries.'))"
        ".map(k => JSON.parse(localStorage.getItem(k)).length)"
    )
    assert kept == [2], "kept in the browser before anything was sent"
    await check_page(page, "run-offline")
    assert await counts(owner, batch) == {}

    await page.context.set_offline(False)
    await expect(banner(page)).to_have_text("All entries sent")
    await expect(result(page, "activate", "seeding", "culture_volume")).to_have_text(
        "Sent: 250 mL, in limits."
    )
    await expect(field(page, "activate", "seeding", "viable_cells_seeded_actual")).to_contain_text(
        "Recorded by Operator Person"
    )
    assert await counts(owner, batch) == {"culture_volume": 1, "viable_cells_seeded_actual": 1}
    await check_page(page, "run-back-online")
    await page.close()


async def test_a_lost_response_is_retried_with_the_same_key(
    server: str, chromium: Browser, plant: Plant, owner: asyncpg.Connection
) -> None:
    batch = await running(plant)
    page = await at_the_bench(chromium, server, plant, batch)
    lost: list[int] = []

    async def lose_the_answer(route: Route) -> None:
        answer = await route.fetch()  # the server records it...
        lost.append(answer.status)
        await route.abort("connectionreset")  # ...and the tablet never hears back

    await page.route(ENTRIES, lose_the_answer)
    await record(page, "medium_preparation", "il2_volume_added", "3")
    await expect(banner(page)).to_have_text("Offline: 1 entry waiting")
    assert lost == [201] and await counts(owner, batch) == {"il2_volume_added": 1}

    await page.unroute(ENTRIES)
    answers: list[int] = []
    page.on("response", lambda r: answers.append(r.status) if "/entries" in r.url else None)
    await page.evaluate("() => window.dispatchEvent(new Event('online'))")
    await expect(banner(page)).to_have_text("All entries sent")
    await expect(result(page, "activate", "medium_preparation", "il2_volume_added")).to_have_text(
        "Sent: 3 mL, in limits."
    )
    assert answers == [200], "the retry got the first entry back"
    assert await counts(owner, batch) == {"il2_volume_added": 1}
    await check_page(page, "run-retried")
    await page.close()


async def test_entries_left_before_a_reload_are_sent_after_it(
    server: str, chromium: Browser, plant: Plant, owner: asyncpg.Connection
) -> None:
    batch = await running(plant)
    page = await at_the_bench(chromium, server, plant, batch)
    await page.route(ENTRIES, lambda route: route.abort("internetdisconnected"))
    await record(page, "seeding", "pre_activation_viability", "92")
    await expect(banner(page)).to_have_text("Offline: 1 entry waiting")

    await page.reload()
    await check_page(page, "run-reloaded")
    await expect(banner(page)).to_have_text("Offline: 1 entry waiting")
    viability = result(page, "activate", "seeding", "pre_activation_viability")
    await expect(viability).to_have_text("Waiting to send this entry: 92 %.")
    await page.unroute(ENTRIES)
    await page.evaluate("() => window.dispatchEvent(new Event('online'))")
    await expect(banner(page)).to_have_text("All entries sent")
    await expect(viability).to_have_text("Sent: 92 %, in limits.")
    assert await counts(owner, batch) == {"pre_activation_viability": 1}
    await page.close()


async def test_a_field_recorded_first_by_someone_else_shows_their_value(
    server: str, chromium: Browser, plant: Plant, owner: asyncpg.Connection
) -> None:
    batch = await running(plant)
    page = await at_the_bench(chromium, server, plant, batch)
    await batches.record_entry(
        plant.supervisor, batch, "activate", "seeding", "pre_activation_viability", 91, "%", "sv-1"
    )
    await record(page, "seeding", "pre_activation_viability", "93")
    viability = result(page, "activate", "seeding", "pre_activation_viability")
    await expect(viability).to_have_text(
        "Not recorded: Viability before activation was recorded first by someone else (the "
        "value shown above). Your value was 93 %; to change the record, use Correct."
    )
    here = field(page, "activate", "seeding", "pre_activation_viability")
    await expect(here.locator(".recorded-value strong")).to_have_text("91 %")
    await expect(here).to_contain_text("Recorded by Admin Person")
    await expect(banner(page)).to_have_text("All entries sent")
    await check_page(page, "run-conflict")
    assert await counts(owner, batch) == {"pre_activation_viability": 1}
    await page.close()


async def test_a_viewer_reads_the_run_page_without_inputs(
    server: str, chromium: Browser, plant: Plant
) -> None:
    batch = await running(plant)
    page = await chromium.new_page(viewport=PORTRAIT)
    url = f"{server}/t/{plant.ctx.slug}/batches/{batch}/run"
    await page.goto(url)
    await check_page(page, "run-login-viewer")
    await page.get_by_label("Email").fill("viewer@alpha.test")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(url)
    await check_page(page, "run-viewer")
    await expect(page.locator("form[data-entry-form]")).to_have_count(0)
    await expect(page.get_by_text("your roles do not allow recording entries")).to_be_visible()
    await visit(page, f"{server}/t/{plant.ctx.slug}/batches/{batch}", "run-viewer-batch")
    await page.close()


async def test_every_kind_of_input_sends_its_kind_of_value(
    server: str,
    chromium: Browser,
    plant: Plant,
    owner: asyncpg.Connection,
    settings: Settings,
) -> None:
    made = await batch_of(plant, recipe=await every_kind(plant, owner, settings))
    await every_phase_running(plant, made.id)
    page = await at_the_bench(chromium, server, plant, made.id)
    clusters = field(page, "activate", "incubation", "activation_clusters_observed")
    await clusters.get_by_role("button", name="Yes").click()
    await expect(clusters.locator(".recorded-value strong")).to_have_text("Yes")
    start = field(page, "activate", "incubation", "incubation_start")
    await start.get_by_role("button", name="Now").click()
    await start.get_by_role("button", name="Record").click()
    await expect(start.locator(".check-badge")).to_have_text("In limits")
    bags = field(page, "fill", "fill", "bags_filled")
    await bags.get_by_label("Bags filled").fill("2.5")
    await bags.get_by_role("button", name="Record").click()
    await expect(result(page, "fill", "fill", "bags_filled")).to_have_text(
        "Enter a whole number, for example 3."
    )
    await expect(bags.locator("input[name=value]")).to_have_attribute("aria-invalid", "true")
    await bags.get_by_label("Bags filled").fill("2")
    await bags.get_by_role("button", name="Record").click()
    await expect(bags.locator(".recorded-value strong")).to_have_text("2 bags")
    weights = field(page, "fill", "fill", "net_fill_weight_other_bags")
    await weights.get_by_label("Net fill weights, other bags").fill("48.1 g")
    await weights.get_by_role("button", name="Record").click()
    await expect(weights.locator(".recorded-value strong")).to_have_text("48.1 g")
    condition = field(page, "sample", "handover", "sample_condition")
    await condition.get_by_text("2-8 °C").click()
    await condition.get_by_role("button", name="Record").click()
    await expect(condition.locator(".recorded-value strong")).to_have_text("2-8 °C")
    await check_page(page, "run-every-kind")
    rows = await owner.fetch(
        "SELECT field, value, device_time FROM batch_entries WHERE batch_id = $1", made.id
    )
    values = {r["field"]: json.loads(r["value"]) for r in rows}
    when = values.pop("incubation_start")
    assert values == {
        "activation_clusters_observed": True,
        "bags_filled": 2,
        "net_fill_weight_other_bags": "48.1 g",
        "sample_condition": "2-8 °C",
    }
    assert datetime.fromisoformat(when).utcoffset() is not None, "sent with the device's offset"
    assert all(r["device_time"] is not None for r in rows)
    await page.close()


async def test_a_step_that_has_ended_opens_in_place_and_takes_a_correction(
    server: str, chromium: Browser, plant: Plant, owner: asyncpg.Connection, settings: Settings
) -> None:
    """A step whose phases have all ended (and are signed) is folded to its summary; Open
    loads it in place, and a value in it can still be corrected while the batch runs."""
    made = await batch_of(plant, recipe=await every_kind(plant, owner, settings))
    await every_phase_running(plant, made.id)
    await end_step(plant, settings, made.id)
    page = await at_the_bench(chromium, server, plant, made.id)
    url = page.url
    step = page.locator("#s-activate")
    await expect(step).to_contain_text("fields recorded")
    await expect(step.locator("[data-field]")).to_have_count(0)
    await expect(page.locator("#p-fill--fill")).to_have_attribute("aria-current", "step")
    await check_page(page, "run-folded")

    await step.get_by_role("link", name="Open").click()
    volume = field(page, "activate", "medium_preparation", "il2_volume_added")
    await expect(volume).to_contain_text("Recorded by Operator Person")
    assert page.url == url  # in place: no page load
    await expect(step.locator(".card-title")).to_be_focused()  # the keyboard follows
    await volume.get_by_role("button", name="Correct").click()
    await volume.get_by_label("Corrected value").fill("3.5")
    await volume.get_by_label("Reason for the correction").fill("misread the pipette")
    await volume.get_by_role("button", name="Save correction").click()
    await expect(result(page, "activate", "medium_preparation", "il2_volume_added")).to_have_text(
        "Correction sent: 3.5 mL, in limits."
    )
    await expect(volume).to_contain_text("Corrected by Operator Person")
    await check_page(page, "run-folded-open")
    assert (await counts(owner, made.id)).get("il2_volume_added") == 2
    await page.close()
