"""The audit trail in a real browser: a role change reads as a sentence with the people named
and linked, its reason, and the change shown on demand; the filters come from lists."""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import Browser, expect

from opencdmo.identity import service as identity
from opencdmo.scope import SYSTEM, RequestMeta
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, Persona, member_as
from tests.e2e.conftest import check_page, visit

pytestmark = pytest.mark.e2e


async def test_a_role_change_reads_as_a_sentence(server: str, chromium: Browser) -> None:
    slug = f"as-{uuid.uuid4().hex[:6]}"
    ctx = await tenancy.create_tenant(slug, "Audit Sentences", "cdmo", SYSTEM, RequestMeta())
    admin_email = f"avery@{slug}.test"
    admin = await identity.create_user(admin_email, "Avery Lindqvist", PASSWORD)
    await tenancy.add_member(ctx, admin.id, ["tenant_admin"])
    sofia = await identity.create_user(f"sofia@{slug}.test", "Sofia Marchetti", PASSWORD)
    membership = await tenancy.add_member(ctx, sofia.id, ["viewer"])
    acting = await member_as(ctx, Persona("admin", admin_email, admin.full_name, admin.id))
    await tenancy.set_roles(acting, membership, ["viewer", "qc_analyst"], "joins the QC lab")

    page = await chromium.new_page()
    await visit(page, server + "/login", "login")
    await page.get_by_label("Email").fill(admin_email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"**/t/{slug}/")
    await check_page(page, "dashboard-audit-admin")
    await visit(page, f"{server}/t/{slug}/audit", "audit-sentences")

    await page.get_by_label("Action").select_option("member.roles_changed")
    await page.get_by_role("button", name="Filter").click()
    await expect(page).to_have_url(
        f"{server}/t/{slug}/audit?actor=&entity=&action=member.roles_changed&since=&until="
    )
    event = page.locator("li[data-action='member.roles_changed']", has_text="the role QC analyst")
    await expect(event).to_have_count(1)
    await expect(event.locator(".sentence")).to_have_text(
        "Avery Lindqvist gave Sofia Marchetti the role QC analyst: joins the QC lab"
    )
    await expect(event.get_by_role("link", name="Sofia Marchetti")).to_have_attribute(
        "href", f"/t/{slug}/members"
    )
    # The change on demand: closed first, then the roles before and after, in words.
    table = event.locator("details table")
    await expect(table).to_be_hidden()
    await event.locator("summary").click()
    await expect(table.locator("td.old")).to_have_text("Viewer")
    await expect(table.locator("td.new")).to_have_text("QC analyst, Viewer")
    await check_page(page, "audit-role-change")
    await page.close()
