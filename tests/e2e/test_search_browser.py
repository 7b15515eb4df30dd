"""The search box in a real browser: a typo finds the item, the keyboard reaches it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from opencdmo.identity import service as identity
from opencdmo.scope import SYSTEM, RequestMeta
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD
from tests.e2e.conftest import check_page, visit

pytestmark = pytest.mark.e2e


async def test_the_search_box_finds_a_typo_from_the_keyboard(
    synced: Any, server: str, chromium: Browser
) -> None:
    slug = f"e2e-{uuid.uuid4().hex[:6]}"
    ctx = await tenancy.create_tenant(slug, "E2E Search", "cdmo", SYSTEM, RequestMeta())
    email = f"viewer@{slug}.test"
    user = await identity.create_user(email, "Vic Viewer", PASSWORD)
    await tenancy.add_member(ctx, user.id, ["viewer"])

    page = await chromium.new_page()
    await visit(page, server + "/login", "login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{server}/t/{slug}/")
    await check_page(page, "dashboard-search")

    box = page.get_by_label("Find recipes, library and HUB items")
    await box.fill("mycoplsma")
    suggestions = page.locator("#topsearch-suggestions a[data-suggestion]")
    await expect(suggestions.first).to_contain_text("Mycoplasma by nucleic acid amplification")
    await check_page(page, "search-suggestions")
    await box.press("ArrowDown")
    await expect(suggestions.first).to_be_focused()
    await page.keyboard.press("ArrowDown")
    await expect(suggestions.nth(1)).to_be_focused()
    await page.keyboard.press("ArrowUp")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Mycoplasma")
    assert f"/t/{slug}/hub/items/" in page.url
    await check_page(page, "hub-item-from-search")

    # Without a suggestion: Enter in the box opens the results page.
    box = page.get_by_label("Find recipes, library and HUB items")
    await box.fill("mycoplsma")
    await box.press("Enter")
    await expect(page).to_have_url(f"{server}/t/{slug}/search?q=mycoplsma")
    await expect(page.locator("#results-hub")).to_contain_text("Mycoplasma")
    await check_page(page, "search-results")
    await page.close()
