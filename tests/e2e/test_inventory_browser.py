"""A lot from the dock to the bench in a real browser: the materials handler receives a
delivery into quarantine on the receipt form, QC releases it with a signature on the lot
page, and the operator uses one of its containers in a batch step on the run page; the lot
then shows what is left and where it went."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Browser, Page, expect

from opencdmo.inventory import service as inventory
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, World, member_as
from tests.e2e.conftest import check_page
from tests.integration.batch_world import Plant, batch_of, new_plant, underway

pytestmark = pytest.mark.e2e

TABLET = {"width": 820, "height": 1180}
MEDIUM = "serum-free-t-cell-medium"  # t-cell-activation takes 300 mL of it


@pytest.fixture
async def plant(synced: Any, world: World, owner: asyncpg.Connection, settings: Settings) -> Plant:
    plant = await new_plant(world, owner, settings)
    await tenancy.add_member(plant.ctx, world["handler"].user_id, ["materials_handler"])
    await tenancy.add_member(plant.ctx, world["supervisor"].user_id, ["qc_analyst"])
    handler = await member_as(plant.ctx, world["handler"])
    await inventory.create_material(
        handler, MEDIUM, "Serum-free T-cell medium", "reagent", "mL", "2-8 °C", 365, None
    )
    return plant


async def signed_in(chromium: Browser, email: str, url: str, name: str) -> Page:
    page = await chromium.new_page(viewport=TABLET)
    await page.goto(url)
    await check_page(page, name + "-login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(url)
    await check_page(page, name)
    return page


async def test_a_lot_is_received_released_and_used_in_a_step(
    server: str, chromium: Browser, plant: Plant, owner: asyncpg.Connection
) -> None:
    base = f"{server}/t/{plant.ctx.slug}"

    # The materials handler receives the delivery into quarantine, in two containers.
    dock = await signed_in(chromium, "handler@alpha.test", base + "/lots/new", "inv-receive")
    await dock.get_by_label("Material").select_option(
        label="serum-free-t-cell-medium Serum-free T-cell medium (mL)"
    )
    await dock.get_by_label("Lot number").fill("TCM-2611")
    await dock.get_by_label("Supplier", exact=True).fill("Gibco")
    await dock.get_by_label("Supplier lot").fill("2611-04")
    await dock.get_by_label("Quantity").fill("1")
    await dock.get_by_label("Unit").fill("L")
    await dock.get_by_label("Expiry date").fill((date.today() + timedelta(days=180)).isoformat())
    await dock.get_by_label("Containers").fill("2")
    async with dock.expect_navigation():
        await dock.get_by_role("button", name="Receive into quarantine").click()
    assert not dock.url.endswith("/lots/new"), dock.url
    lot_url = dock.url.split("?")[0].split("#")[0]
    await expect(dock.locator("h1")).to_contain_text("TCM-2611")
    await expect(dock.get_by_text("In quarantine").first).to_be_visible()
    await check_page(dock, "inv-lot-quarantine")

    # QC releases it with an electronic signature.
    qc = await signed_in(chromium, "supervisor@alpha.test", lot_url, "inv-lot-qc")
    await qc.get_by_role("button", name="Release…").click()
    dialog = qc.locator("#sign-release")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("Reason").fill("CoA checked against the specification")
    await dialog.get_by_label("Password (electronic signature)").fill(PASSWORD)
    async with qc.expect_navigation():
        await dialog.get_by_role("button", name="Sign as released for use").click()
    await expect(qc.get_by_text("Released").first).to_be_visible()
    await check_page(qc, "inv-lot-released")

    # The operator uses a container of it at the activation step.
    made = await batch_of(plant)
    await underway(plant, made.id)
    run = f"{base}/batches/{made.id}/run"
    bench = await signed_in(chromium, "operator@alpha.test", run, "inv-run")
    materials = bench.locator("#m-activate")
    await expect(materials).to_contain_text("300 mL")
    picker = materials.get_by_label("Or pick a container")
    options = await picker.locator("option").all_inner_texts()
    chosen = next(o for o in options if "TCM-2611" in o)
    await picker.select_option(label=chosen)
    await materials.get_by_label("Quantity used").fill("300")
    await materials.get_by_label("Unit").fill("mL")
    # A form is sent once: a second tap while the first is on its way is ignored (the test
    # holds the page's own navigation back, then lets the form be sent again).
    prevented = await bench.evaluate(
        """async () => {
            const form = document.querySelector("#m-activate-form");
            const seen = [];
            const hold = (e) => { seen.push(e.defaultPrevented); e.preventDefault(); };
            window.addEventListener("submit", hold);
            form.requestSubmit();
            form.requestSubmit();
            window.removeEventListener("submit", hold);
            await new Promise((done) => setTimeout(done, 10));
            const disabled = [...form.querySelectorAll("button")].every((b) => b.disabled);
            delete form.dataset.sent;
            form.querySelectorAll("button").forEach((b) => { b.disabled = false; });
            return [...seen, disabled];
        }"""
    )
    assert prevented == [False, True, True], prevented
    async with bench.expect_navigation():
        await materials.get_by_role("button", name="Use").click()
    await expect(bench.get_by_text("Used 300 mL").first).to_be_visible()
    await check_page(bench, "inv-run-used")
    used = await owner.fetchval(
        "SELECT count(*) FROM batch_consumptions WHERE batch_id = $1", made.id
    )
    assert used == 1

    # The lot shows what is left, and its genealogy reaches the batch.
    await qc.goto(lot_url)
    await expect(qc.locator("#containers")).to_contain_text("0.2 L")
    await qc.get_by_role("link", name="Where it went").click()
    await expect(qc.locator("svg.genealogy-svg")).to_be_visible()
    number = await owner.fetchval("SELECT number FROM batches WHERE id = $1", made.id)
    await expect(qc.get_by_role("table")).to_contain_text(number)
    await check_page(qc, "inv-genealogy")
