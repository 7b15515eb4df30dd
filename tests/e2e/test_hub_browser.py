"""The HUB in a real browser: live search, open an item, install it, see the structural diff
of an available update, fork."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from opencdmo.identity import service as identity
from opencdmo.scope import SYSTEM, RequestMeta
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD

pytestmark = pytest.mark.e2e


async def test_search_open_install_diff_and_fork(
    synced: Any, server: str, chromium: Browser, tmp_path: Path
) -> None:
    slug = f"e2e-{uuid.uuid4().hex[:6]}"
    ctx = await tenancy.create_tenant(slug, "E2E Cell Manufacturing", "cdmo", SYSTEM, RequestMeta())
    email = f"engineer@{slug}.test"
    user = await identity.create_user(email, "Erin Engineer", PASSWORD)
    await tenancy.add_member(ctx, user.id, ["process_engineer"])

    page = await chromium.new_page()
    await page.goto(server + "/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{server}/t/{slug}/")

    # Live search: typing updates the results without a page load.
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="HUB").click()
    await page.get_by_label("Search").fill("autologous CAR-T")
    hit = page.locator("article.hit", has_text="Autologous CAR-T cell therapy")
    await expect(hit).to_be_visible()
    await hit.get_by_role("link").first.click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Autologous CAR-T")
    await expect(page.get_by_role("heading", name="Dependencies")).to_be_visible()

    # Install: the recipe and its closure; the transduction step comes pinned at 1.1.0.
    await page.get_by_role("button", name="Install").click()
    await expect(page).to_have_url(f"{server}/t/{slug}/library")
    updates = page.locator("#updates")
    await expect(updates).to_contain_text("Lentiviral transduction")
    await updates.get_by_role("link", name="review the changes").first.click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("→")
    added = page.locator("tr[data-op='added']")
    await expect(added.first).to_be_visible()
    await page.screenshot(
        path=str(os.environ.get("OPENCDMO_E2E_HUB_SHOT", tmp_path / "diff.png")), full_page=True
    )
    await page.get_by_role("button", name="Upgrade to").click()
    await expect(page).to_have_url(f"{server}/t/{slug}/library")

    # Fork an item and land on its edit form.
    await page.goto(f"{server}/t/{slug}/hub?q=t-cell-activation")
    await (
        page.locator("article.hit", has_text="T-cell activation").get_by_role("link").first.click()
    )
    await page.get_by_role("button", name="Fork to edit").click()
    await expect(page.get_by_role("heading", name="Edit this fork")).to_be_visible()
    await page.get_by_label("Seeding density default").fill("1.1")
    await page.get_by_role("button", name="Save (new revision)").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved revision 2")
    await page.close()
