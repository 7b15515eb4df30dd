"""The HUB in a real browser: live search, open an item, install it (and read what was
installed), see the structural diff of an available update, upgrade, fork and edit the fork."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from opencdmo.identity import service as identity
from opencdmo.scope import SYSTEM, RequestMeta
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD
from tests.e2e.conftest import check_page

pytestmark = pytest.mark.e2e


async def test_search_open_install_diff_and_fork(
    synced: Any, server: str, chromium: Browser
) -> None:
    slug = f"e2e-{uuid.uuid4().hex[:6]}"
    ctx = await tenancy.create_tenant(slug, "E2E Cell Manufacturing", "cdmo", SYSTEM, RequestMeta())
    email = f"engineer@{slug}.test"
    user = await identity.create_user(email, "Erin Engineer", PASSWORD)
    await tenancy.add_member(ctx, user.id, ["process_engineer"])

    page = await chromium.new_page()
    await page.goto(server + "/login")
    await check_page(page, "login-hub")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{server}/t/{slug}/")
    await check_page(page, "dashboard-engineer")

    # The library is empty: it says what to do next.
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Library").click()
    await expect(page.locator(".empty-title")).to_have_text("Nothing installed yet.")
    await check_page(page, "library-empty")

    # Live search: typing updates the results without a page load.
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="HUB").click()
    await check_page(page, "hub")
    await page.get_by_role("searchbox", name="Search the HUB").fill("autologous CAR-T")
    hit = page.locator("article.hit", has_text="Autologous CAR-T cell therapy")
    await expect(hit).to_be_visible()
    await hit.get_by_role("link").first.click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Autologous CAR-T")
    await expect(page.get_by_role("heading", name="Dependencies")).to_be_visible()
    await check_page(page, "hub-item")

    # Install: the recipe and its closure; the transduction step comes pinned at 1.1.0.
    await page.get_by_role("button", name="Install").click()
    await expect(page).to_have_url(f"{server}/t/{slug}/library")
    await expect(page.locator("#toasts")).to_contain_text("Installed Autologous CAR-T")
    await check_page(page, "library")
    updates = page.locator("#updates")
    await expect(updates).to_contain_text("Lentiviral transduction")
    await updates.get_by_role("link", name="review the changes").first.click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("→")
    added = page.locator("tr[data-op='added']")
    await expect(added.first).to_be_visible()
    await check_page(page, "upgrade-diff")
    await page.get_by_role("button", name="Upgrade to").click()
    await expect(page).to_have_url(f"{server}/t/{slug}/library")
    await expect(page.locator("#toasts")).to_contain_text("Upgraded Lentiviral transduction")
    await check_page(page, "library-upgraded")

    # Fork an item and land on its edit form.
    await page.goto(f"{server}/t/{slug}/hub?q=t-cell-activation")
    await check_page(page, "hub-search")
    await (
        page.locator("article.hit", has_text="T-cell activation").get_by_role("link").first.click()
    )
    await check_page(page, "hub-item-uo")
    await page.get_by_role("button", name="Fork to edit").click()
    await expect(page.get_by_role("heading", name="Edit this fork")).to_be_visible()
    await expect(page.locator("#toasts")).to_contain_text("Forked T-cell activation")
    await check_page(page, "library-item")
    await page.get_by_label("Seeding density default").fill("1.1")
    await page.get_by_role("button", name="Save (new revision)").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved revision 2")
    await check_page(page, "library-item-saved")
    await page.close()
