"""The dashboard's work queues in a real browser, for three roles: the engineer who wrote the
recipes, the QA approver who signs them and an operator; the count in the top bar leads to
them."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from opencdmo.identity import service as identity
from opencdmo.recipes import service as recipes
from opencdmo.scope import SYSTEM, RequestMeta
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, Persona, member_as
from tests.e2e.conftest import check_page, visit
from tests.integration.conftest import installed, reviewable
from tests.integration.test_recipes import design

pytestmark = pytest.mark.e2e


async def _sign_in(chromium: Browser, server: str, email: str) -> Page:
    page = await chromium.new_page(viewport={"width": 1280, "height": 900})
    await visit(page, server + "/login", "login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/t/**")
    await check_page(page, "dashboard-" + email.split("@")[0])
    return page


async def _lab(owner: Any, settings: Settings) -> tuple[str, dict[str, str]]:
    """A tenant with an engineer, a QA approver and an operator; one recipe in review, one
    returned with a reason, one effective, one draft."""
    slug = f"wq-{uuid.uuid4().hex[:6]}"
    ctx = await tenancy.create_tenant(slug, "Work Queue Lab", "cdmo", SYSTEM, RequestMeta())
    people, emails = {}, {}
    for key, role in (
        ("engineer", "process_engineer"),
        ("qa", "qa_approver"),
        ("operator", "production_operator"),
    ):
        email = f"{key}@{slug}.test"
        user = await identity.create_user(email, f"{key.title()} Person", PASSWORD)
        await tenancy.add_member(ctx, user.id, [role])
        people[key] = await member_as(ctx, Persona(key, email, user.full_name, user.id))
        emails[key] = email
    uo = await installed(owner, ctx, "t-cell-activation", "1.1.0")
    method = await installed(owner, ctx, "cell-count-viability", "1.1.0")
    engineer, qa = people["engineer"], people["qa"]

    async def submitted(name: str) -> Any:
        recipe = await recipes.create(engineer, name)
        await recipes.save(engineer, recipe, reviewable(design(uo), method), 1)
        await recipes.submit(settings, engineer, recipe, PASSWORD, "ready for review")
        return recipe

    await submitted("CAR-T in review")
    returned = await submitted("CAR-T returned")
    await recipes.reject(settings, qa, returned, PASSWORD, "State the viability acceptance")
    effective = await submitted("CAR-T in force")
    await recipes.approve(settings, qa, effective, PASSWORD, "meets spec")
    await recipes.make_effective(settings, qa, effective, PASSWORD, "approved for use")
    await recipes.create(engineer, "CAR-T next draft")
    return slug, emails


def _queue(page: Page, key: str) -> Any:
    return page.locator(f"[data-queue='{key}']")


async def test_the_dashboard_queues_for_three_roles(
    synced: Any, server: str, chromium: Browser, owner: Any, settings: Settings, tmp_path: Path
) -> None:
    slug, emails = await _lab(owner, settings)
    shots = Path(os.environ.get("OPENCDMO_E2E_SCREENSHOT_DIR", tmp_path))

    # The QA approver: one revision awaits their approval; the top bar says so.
    page = await _sign_in(chromium, server, emails["qa"])
    await expect(page).to_have_url(f"{server}/t/{slug}/")
    awaiting = _queue(page, "awaiting_signature")
    await expect(awaiting.get_by_role("heading")).to_have_text("Awaiting my signature 1 item")
    await expect(awaiting.get_by_role("link")).to_have_text(["CAR-T in review, revision 2"])
    await expect(awaiting).to_contain_text("Needs your approval")
    await expect(awaiting).to_contain_text("Engineer Person")
    await expect(_queue(page, "recently_effective").get_by_role("link")).to_have_text(
        ["CAR-T in force, revision 2"]
    )
    await expect(_queue(page, "drafts")).to_have_count(0)
    await page.screenshot(path=str(shots / "dashboard-qa.png"), full_page=True)
    # From another page, the count in the top bar leads back to the queues; the item to the
    # revision to sign.
    await visit(page, f"{server}/t/{slug}/recipes", "recipes-qa")
    await page.get_by_role("link", name="1 item needs your action").click()
    await expect(page).to_have_url(f"{server}/t/{slug}/#work")
    await check_page(page, "dashboard-qa-work")
    await _queue(page, "awaiting_signature").get_by_role("link").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("CAR-T in review")
    await check_page(page, "recipe-to-sign")
    await page.close()

    # The engineer: the revision returned with who and why, their draft, no approvals.
    page = await _sign_in(chromium, server, emails["engineer"])
    await expect(page.get_by_role("link", name="1 item needs your action")).to_be_visible()
    returned = _queue(page, "returned")
    await expect(returned.get_by_role("link")).to_have_text(["CAR-T returned, revision 2"])
    await expect(returned).to_contain_text("State the viability acceptance")
    await expect(returned).to_contain_text("Qa Person")
    await expect(_queue(page, "drafts").get_by_role("link")).to_have_text(
        ["CAR-T next draft, revision 1"]
    )
    await expect(_queue(page, "library_updates")).to_contain_text(
        "Every installed library item is at its latest version."
    )
    await expect(_queue(page, "awaiting_signature")).to_have_count(0)
    await page.screenshot(path=str(shots / "dashboard-engineer.png"), full_page=True)
    await page.close()

    # The operator: what is in force, nothing to act on.
    page = await _sign_in(chromium, server, emails["operator"])
    await expect(page.get_by_role("link", name="Nothing needs your action")).to_be_visible()
    await expect(page.locator("[data-queue]")).to_have_count(1)
    await expect(_queue(page, "recently_effective").get_by_role("link")).to_have_text(
        ["CAR-T in force, revision 2"]
    )
    await page.screenshot(path=str(shots / "dashboard-operator.png"), full_page=True)
    await page.close()
