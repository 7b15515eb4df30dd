"""The designer in a real browser: add two steps from the palette, reorder them by drag and
drop, set a parameter (out of range refused), the specification and a release
specification, submit, approve as another user, see the signature manifestation, make it
effective and publish it to the HUB."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from opencdmo.hub import library
from opencdmo.identity import service as identity
from opencdmo.scope import SYSTEM, RequestMeta
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD

pytestmark = pytest.mark.e2e


async def _sign_in(chromium: Browser, server: str, email: str) -> Page:
    page = await chromium.new_page()
    await page.goto(server + "/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/t/**")
    return page


async def test_design_submit_and_approve(
    synced: Any, server: str, chromium: Browser, owner: Any
) -> None:
    slug = f"dz-{uuid.uuid4().hex[:6]}"
    ctx = await tenancy.create_tenant(slug, "Designer Lab", "cdmo", SYSTEM, RequestMeta())
    people = {}
    for key, role in (("engineer", "process_engineer"), ("qa", "qa_approver")):
        user = await identity.create_user(f"{key}@{slug}.test", f"{key.title()} Person", PASSWORD)
        await tenancy.add_member(ctx, user.id, [role])
        people[key] = f"{key}@{slug}.test"
    for hub_slug in (
        "t-cell-activation",
        "lentiviral-transduction",
        "cell-harvest-and-wash",
        "cell-count-viability",
    ):
        item = await owner.fetchval(
            "SELECT i.id FROM hub_items i JOIN tenants t ON t.id = i.publisher_id "
            "WHERE i.slug = $1 AND t.slug = 'opencdmo-hub'",
            hub_slug,
        )
        await library.install(ctx, item)

    page = await _sign_in(chromium, server, people["engineer"])
    await page.goto(f"{server}/t/{slug}/recipes")
    await page.get_by_label("Name").fill("Designer CAR-T")
    await page.get_by_role("button", name="New master recipe").click()
    await page.get_by_role("link", name="Open in the designer").click()
    await page.get_by_label("New unit procedure").fill("Cell processing")
    await page.get_by_role("button", name="Add unit procedure").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved as revision 2")
    await page.get_by_role("button", name="Add T-cell activation").click()
    await expect(page.locator("[data-step]")).to_have_count(1)
    await page.get_by_role("button", name="Add Lentiviral transduction").click()
    steps = page.locator("[data-step]")
    await expect(steps).to_have_count(2)
    first = await steps.nth(0).get_attribute("data-step")
    # Drag the first step below the second.
    await steps.nth(0).drag_to(steps.nth(1), target_position={"x": 20, "y": 30})
    await expect(page.locator("[data-step]").nth(1)).to_have_attribute("data-step", first or "")
    # Drag a unit operation from the palette onto the canvas, at the top.
    await page.get_by_label("Filter the palette").fill("cell harvest")
    palette_item = page.locator("[data-palette] > li", has_text="Cell harvest").first
    await palette_item.drag_to(page.locator("[data-step]").first, target_position={"x": 20, "y": 5})
    await expect(page.locator("[data-step]")).to_have_count(3)
    await expect(page.locator("[data-step]").first).to_have_attribute(
        "data-step", "cell_harvest_and_wash"
    )
    await expect(page.get_by_role("status")).to_contain_text("Saved as revision 6.")
    # Configure: out of the proven acceptable range is refused, a normal value is saved.
    await page.locator("[data-step='t_cell_activation'] a").click()
    await page.get_by_label("Seeding density", exact=True).fill("9")
    await page.get_by_role("button", name="Save step").click()
    await expect(page.get_by_role("alert")).to_contain_text("proven acceptable range")
    await page.get_by_label("Seeding density", exact=True).fill("1.1")
    await page.get_by_role("button", name="Save step").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved as revision 7.")
    # Specification and a release specification.
    await page.get_by_label("Modality").select_option("car-t")
    await page.get_by_label("Batch size").fill("1")
    await page.locator("#specification select[name=batch_unit]").select_option("{dose}")
    # Wait for this save's own answer (the status already says "Saved as revision" from the
    # last save), so that the re-rendered panel does not replace the next fields as typed.
    before = await page.get_by_role("status").inner_text()
    await page.get_by_role("button", name="Save specification").click()
    await expect(page.get_by_role("status")).not_to_have_text(before)
    await expect(page.get_by_role("status")).to_contain_text("Saved as revision")
    await page.get_by_label("Result").select_option(label="Viability (%)")
    await page.get_by_label("Acceptance criterion").fill("Viability at least 70 %")
    await page.get_by_label("Low").fill("70")
    await page.get_by_role("button", name="Set release specification").click()
    await expect(page.locator("[data-release] tbody tr").first).to_contain_text("viability")
    # Submit with the author's signature.
    await page.get_by_role("link", name="← Designer CAR-T").click()
    await page.get_by_label("Reason").fill("Ready for QA review")
    await page.get_by_label("Password (electronic signature)").fill(PASSWORD)
    await page.get_by_role("button", name="Sign as author and submit for review").click()
    recipe_url = page.url
    await page.close()

    qa = await _sign_in(chromium, server, people["qa"])
    await qa.goto(recipe_url)
    approve = qa.locator('form[data-action="approve"]')
    await expect(approve).to_contain_text("I sign revision")
    await approve.get_by_label("Reason").fill("Parameters within validated ranges")
    await approve.get_by_label("Password (electronic signature)").fill(PASSWORD)
    await approve.get_by_role("button", name="Sign as approver").click()
    manifestation = qa.locator("#signatures .manifestation", has_text="Qa Person")
    await expect(manifestation).to_contain_text("approved")
    await expect(manifestation).to_have_attribute("data-valid", "yes")
    await expect(qa.locator("h1 .badge")).to_contain_text("Approved")
    effective = qa.locator('form[data-action="make_effective"]')
    await effective.get_by_label("Reason").fill("Approved for manufacturing")
    await effective.get_by_label("Password (electronic signature)").fill(PASSWORD)
    await effective.get_by_role("button", name="Sign and make effective").click()
    await expect(qa.locator("h1 .badge")).to_contain_text("Effective")
    # Publish the effective revision to the HUB, signed "approved for publication".
    await qa.get_by_text("to the HUB").click()
    publish = qa.locator("#publish")
    await publish.get_by_label("Summary").fill("Our CAR-T process")
    await publish.get_by_label("Description").fill("Example defaults to adapt and validate.")
    await publish.get_by_label("Reason").fill("Share with our sponsor")
    await publish.get_by_label("Password (electronic signature)").fill(PASSWORD)
    await publish.get_by_role("button", name="Sign and publish").click()
    await qa.wait_for_url("**/hub/items/**")
    await expect(qa.locator("h1")).to_contain_text("Designer CAR-T")
    await qa.close()
