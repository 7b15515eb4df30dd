"""A real Chromium against a real server process: sign in, choose a tenant, switch tenant, find
the sign-in in the audit trail. Every page is checked (axe-core, width at 1024x768)."""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import Browser, expect

from opencdmo.identity import service as identity
from opencdmo.tenancy import service as tenancy
from tests.conftest import ALPHA_NAME, PASSWORD, World
from tests.e2e.conftest import check_page

pytestmark = pytest.mark.e2e


async def test_sign_in_switch_tenant_and_find_the_login(
    world: World, server: str, chromium: Browser
) -> None:
    email = f"e2e-{uuid.uuid4().hex[:6]}@alpha.test"
    user = await identity.create_user(email, "Eve Twoorgs", PASSWORD)
    await tenancy.add_member(world.alpha, user.id, ["viewer"])
    await tenancy.add_member(world.beta, user.id, ["tenant_admin"])

    page = await chromium.new_page()
    await page.goto(server + "/")
    await expect(page).to_have_url(server + "/login")
    await check_page(page, "login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    # Two tenants: the person chooses; no tenant is entered on their behalf.
    await expect(page).to_have_url(server + "/tenants")
    await check_page(page, "tenants")
    await page.get_by_role("link", name=ALPHA_NAME).click()
    await expect(page).to_have_url(server + "/t/alpha/")
    await expect(page.get_by_role("heading", level=1)).to_have_text(ALPHA_NAME)
    await check_page(page, "dashboard-viewer")

    await page.get_by_role("combobox", name="Tenant").select_option("beta")
    await expect(page).to_have_url(server + "/t/beta/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Beta Therapeutics")
    await check_page(page, "dashboard")

    await (
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit trail").click()
    )
    await check_page(page, "audit")
    # The action filter is a list of actions as sentences; the trail reads as sentences.
    await page.get_by_label("Action").select_option("user.login")
    await page.get_by_role("button", name="Filter").click()
    row = page.locator("li[data-action='user.login']", has_text="Eve Twoorgs signed in")
    await expect(row).to_have_count(1)
    await expect(page).to_have_url(
        server + "/t/beta/audit?actor=&entity=&action=user.login&since=&until="
    )

    # In alpha the same person is a viewer: the audit trail is not theirs to read.
    response = await page.goto(server + "/t/alpha/audit")
    assert response is not None
    assert response.status == 403
    await check_page(page, "refused")
    await page.close()
