"""The designer in a real browser: add two steps from the palette, reorder them by drag and
drop, set a parameter (out of range refused), the specification and a release
specification, submit, approve as another user, see the signature manifestation, make it
effective and publish it to the HUB."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from opencdmo.hub import library
from opencdmo.identity import service as identity
from opencdmo.scope import SYSTEM, RequestMeta
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD
from tests.e2e.conftest import check_page

pytestmark = pytest.mark.e2e


async def _sign_in(chromium: Browser, server: str, email: str) -> Page:
    page = await chromium.new_page()
    await page.goto(server + "/login")
    await check_page(page, "login-designer")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/t/**")
    await check_page(page, "dashboard-" + email.split("@")[0])
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
    await check_page(page, "recipes-empty")
    await page.get_by_label("Name").fill("Designer CAR-T")
    await page.get_by_role("button", name="New master recipe").click()
    await check_page(page, "recipe-new")
    await page.get_by_role("link", name="Open in the designer").first.click()
    await check_page(page, "designer-empty")
    await page.get_by_label("New unit procedure").fill("Cell processing")
    await page.get_by_role("button", name="Add unit procedure").click()
    await expect(page.locator("#toasts")).to_contain_text("Saved as revision 2")
    await page.get_by_role("button", name="Add T-cell activation").click()
    await expect(page.locator("[data-step]")).to_have_count(1)
    await page.get_by_role("button", name="Add Lentiviral transduction").click()
    steps = page.locator("[data-step]")
    await expect(steps).to_have_count(2)
    first = await steps.nth(0).get_attribute("data-step")
    # Drag the first step below the second.
    await steps.nth(0).drag_to(steps.nth(1), target_position={"x": 20, "y": 30})
    await expect(page.locator("[data-step]").nth(1)).to_have_attribute("data-step", first or "")
    # The arrangement is saved (and the canvas re-rendered) before the next drag starts.
    await expect(page.locator("#toasts")).to_contain_text("Saved as revision 5")
    # Drag a unit operation from the palette onto the canvas, at the top.
    await page.get_by_label("Filter the palette").fill("cell harvest")
    palette_item = page.locator("[data-palette] > li", has_text="Cell harvest").first
    # Grabbed by its name (its form's select and button take clicks, not drags).
    await palette_item.drag_to(
        page.locator("[data-step]").first,
        source_position={"x": 20, "y": 10},
        target_position={"x": 20, "y": 5},
    )
    await expect(page.locator("[data-step]")).to_have_count(3)
    await expect(page.locator("[data-step]").first).to_have_attribute(
        "data-step", "cell_harvest_and_wash"
    )
    await expect(page.locator("#toasts")).to_contain_text("Saved as revision 6")
    # Configure: out of the proven acceptable range is refused, a normal value is saved.
    await page.locator("[data-step='t_cell_activation'] a").click()
    await page.get_by_label("Seeding density", exact=True).fill("9")
    await page.get_by_role("button", name="Save step").click()
    await expect(page.get_by_role("alert")).to_contain_text("proven acceptable range")
    await page.get_by_label("Seeding density", exact=True).fill("1.1")
    await page.get_by_role("button", name="Save step").click()
    await expect(page.locator("#toasts")).to_contain_text("Saved as revision 7")
    # Specification and a release specification.
    await page.get_by_label("Modality").select_option("car-t")
    await page.get_by_label("Batch size").fill("1")
    await page.locator("#specification select[name=batch_unit]").select_option("{dose}")
    # Wait for this save's own answer, so that the re-rendered panel does not replace the
    # next fields as typed.
    await page.get_by_role("button", name="Save specification").click()
    await expect(page.locator("#toasts")).to_contain_text("Saved as revision 8")
    await page.get_by_label("Result").select_option(label="Viability (%)")
    await page.get_by_label("Acceptance criterion").fill("Viability at least 70 %")
    await page.get_by_label("Low").fill("70")
    await page.get_by_role("button", name="Set release specification").click()
    await expect(page.locator("[data-release] tbody tr").first).to_contain_text("viability")
    await check_page(page, "designer")
    # Submit with the author's signature, in the dialog that says what is signed.
    await page.get_by_role("link", name="← Designer CAR-T").click()
    await check_page(page, "recipe-draft")
    await page.get_by_role("button", name="Submit for review…").click()
    submit = page.get_by_role("dialog")
    await expect(submit).to_contain_text(
        re.compile(
            r"I submit revision \d+ of Designer CAR-T for review as its author, meaning: authored\."
        )
    )
    await submit.get_by_label("Reason").fill("Ready for QA review")
    await submit.get_by_label("Password (electronic signature)").fill(PASSWORD)
    await submit.get_by_role("button", name="Sign as author and submit for review").click()
    await expect(page.locator("#toasts")).to_contain_text("for review.")
    await check_page(page, "recipe-in-review")
    recipe_url = page.url
    await page.close()

    qa = await _sign_in(chromium, server, people["qa"])
    await qa.goto(recipe_url)
    await check_page(qa, "recipe-to-approve")
    await qa.get_by_role("button", name="Approve…").click()
    approve = qa.locator('form[data-action="approve"]')
    await expect(approve).to_contain_text(
        re.compile(r"I approve revision \d+ of Designer CAR-T as QA approver, meaning: approved\.")
    )
    await check_page(qa, "signature-dialog")
    await approve.get_by_label("Reason").fill("Parameters within validated ranges")
    await approve.get_by_label("Password (electronic signature)").fill(PASSWORD)
    await approve.get_by_role("button", name="Sign as approver").click()
    manifestation = qa.locator("#signatures .manifestation", has_text="Qa Person")
    await expect(manifestation).to_contain_text("approved")
    await expect(manifestation).to_have_attribute("data-valid", "yes")
    await expect(qa.locator("h1 .badge")).to_contain_text("Approved")
    await check_page(qa, "recipe-approved")
    await qa.get_by_role("button", name="Make effective…").click()
    effective = qa.locator('form[data-action="make_effective"]')
    await effective.get_by_label("Reason").fill("Approved for manufacturing")
    await effective.get_by_label("Password (electronic signature)").fill(PASSWORD)
    await effective.get_by_role("button", name="Sign and make effective").click()
    await expect(qa.locator("h1 .badge")).to_contain_text("Effective")
    await expect(qa.locator("#toasts")).to_contain_text("is effective.")
    await check_page(qa, "recipe-effective")
    await qa.goto(recipe_url + "/compare")
    await check_page(qa, "compare")
    await qa.goto(recipe_url + "/print")
    await check_page(qa, "print")
    await qa.goto(recipe_url)
    await check_page(qa, "recipe")
    # Publish the effective revision to the HUB, signed "approved for publication".
    await qa.get_by_role("button", name="Publish effective revision").click()
    publish = qa.locator("#publish")
    await publish.get_by_label("Summary").fill("Our CAR-T process")
    await publish.get_by_label("Description").fill("Example defaults to adapt and validate.")
    await publish.get_by_label("Reason").fill("Share with our sponsor")
    await publish.get_by_label("Password (electronic signature)").fill(PASSWORD)
    await publish.get_by_role("button", name="Sign and publish").click()
    await qa.wait_for_url("**/hub/items/**")
    await expect(qa.locator("h1")).to_contain_text("Designer CAR-T")
    await expect(qa.locator("#toasts")).to_contain_text("to the HUB.")
    await check_page(qa, "hub-item-published")
    await qa.close()


async def test_designer_keeps_its_place_after_an_edit(
    synced: Any, server: str, chromium: Browser, owner: Any
) -> None:
    """An edit in the panel: the toast names the revision, the window does not scroll, the
    panel stays in view with the step still selected; a palette card drags by its body."""
    slug = f"dk-{uuid.uuid4().hex[:6]}"
    ctx = await tenancy.create_tenant(slug, "Keep Lab", "cdmo", SYSTEM, RequestMeta())
    user = await identity.create_user(f"engineer@{slug}.test", "Engineer Person", PASSWORD)
    await tenancy.add_member(ctx, user.id, ["process_engineer"])
    for hub_slug in ("t-cell-activation", "lentiviral-transduction", "cell-harvest-and-wash"):
        item = await owner.fetchval(
            "SELECT i.id FROM hub_items i JOIN tenants t ON t.id = i.publisher_id "
            "WHERE i.slug = $1 AND t.slug = 'opencdmo-hub'",
            hub_slug,
        )
        await library.install(ctx, item)
    page = await _sign_in(chromium, server, f"engineer@{slug}.test")
    await page.goto(f"{server}/t/{slug}/recipes")
    await check_page(page, "recipes-keep")
    await page.get_by_label("Name").fill("Keep my place")
    await page.get_by_role("button", name="New master recipe").click()
    await check_page(page, "recipe-keep")
    await page.get_by_role("link", name="Open in the designer").first.click()
    await check_page(page, "designer-keep-empty")
    await page.set_viewport_size({"width": 1280, "height": 720})
    await page.get_by_label("New unit procedure").fill("Cell processing")
    await page.get_by_role("button", name="Add unit procedure").click()
    await expect(page.locator("#toasts")).to_contain_text("Saved as revision 2")
    for revision, name in ((3, "T-cell activation"), (4, "Lentiviral transduction")):
        await page.get_by_role("button", name=f"Add {name}").click()
        await expect(page.locator("#toasts")).to_contain_text(f"Saved as revision {revision}")
    # The last swap settled (its link replaced), so the click is htmx's, not a page load.
    await expect(page.locator(".htmx-request, .htmx-settling, .htmx-swapping")).to_have_count(0)
    await page.locator("[data-step='t_cell_activation'] a").click()
    panel = page.locator("aside.panel")
    await expect(panel.get_by_role("button", name="Save step")).to_be_visible()
    await check_page(page, "designer-keep-selected")
    await page.set_viewport_size({"width": 1280, "height": 720})
    # Scroll down, then edit the step in the panel (no smooth scrolling: each scroll is done
    # when it returns; the button is scrolled to first, so the click itself scrolls nothing).
    await page.emulate_media(reduced_motion="reduce")
    await page.evaluate("() => window.scrollTo(0, 400)")
    await panel.get_by_label("Seeding density", exact=True).fill("1.1")
    await panel.get_by_label("Revision comment").fill("Lower seeding density")
    await panel.get_by_role("button", name="Save step").scroll_into_view_if_needed()
    before = await page.evaluate("() => window.scrollY")
    assert before > 200  # the page did scroll: the designer is taller than the window
    await panel.get_by_role("button", name="Save step").click()
    await expect(page.locator("#toasts")).to_contain_text("Saved as revision 5")
    after = await page.evaluate("() => window.scrollY")
    assert abs(after - before) <= 5, (before, after)
    await expect(panel).to_be_in_viewport()
    await expect(panel.get_by_role("button", name="Save step")).to_be_in_viewport()
    await expect(page.locator("[data-step='t_cell_activation']")).to_have_class(
        re.compile(r"\bselected\b")
    )
    await expect(page.get_by_label("Seeding density", exact=True)).to_have_value("1.1")
    await check_page(page, "designer-keep-saved")
    await page.set_viewport_size({"width": 1280, "height": 720})
    # A palette card drags by its body: here the version and category line, not the name.
    await page.evaluate("() => window.scrollTo(0, 0)")
    card = page.locator("[data-palette] > li", has_text="Cell harvest").first
    await card.locator("span.muted").first.drag_to(
        page.locator("[data-step]").first, target_position={"x": 20, "y": 5}
    )
    await expect(page.locator("[data-step]")).to_have_count(3)
    await expect(page.locator("[data-step]").first).to_have_attribute(
        "data-step", "cell_harvest_and_wash"
    )
    await expect(page.locator("#toasts")).to_contain_text("Saved as revision 6")
    await check_page(page, "designer-keep-dropped")
