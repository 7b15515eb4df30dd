"""The audit trail in a real browser: a role change reads as a sentence with the people named
and linked, its reason, and the change shown on demand; the filters come from lists."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from opencdmo.identity import service as identity
from opencdmo.scope import SYSTEM, RequestMeta
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, Persona, member_as
from tests.e2e.conftest import check_page, visit
from tests.integration.job_worker import job_worker

pytestmark = pytest.mark.e2e
__all__ = ["job_worker"]


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


@pytest.mark.usefixtures("job_worker")
async def test_the_audit_trail_is_exported_by_the_job_worker(
    server: str, chromium: Browser
) -> None:
    """Export CSV on the trail page: the export's page shows it being built, polling until
    the job worker has built it, then the download, whose bytes are those the page names."""
    slug = f"ax-{uuid.uuid4().hex[:6]}"
    ctx = await tenancy.create_tenant(slug, "Audit Export", "cdmo", SYSTEM, RequestMeta())
    email = f"quinn@{slug}.test"
    qa = await identity.create_user(email, "Quinn Adeyemi", PASSWORD)
    await tenancy.add_member(ctx, qa.id, ["tenant_admin"])

    page = await chromium.new_page()
    await visit(page, server + "/login", "login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"**/t/{slug}/")
    await check_page(page, "dashboard-audit-export")
    await visit(page, f"{server}/t/{slug}/audit", "audit-before-export")
    await page.get_by_role("button", name="Export CSV").click()
    await page.wait_for_url(f"**/t/{slug}/exports/*")
    state = page.locator("#export-state")
    await expect(state).to_have_attribute("data-state", "done", timeout=30_000)
    await check_page(page, "export-done")
    sha = (await state.locator("code").inner_text()).strip()
    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="Download").click()
    download = await downloading.value
    body = await asyncio.to_thread(Path(await download.path()).read_bytes)
    assert hashlib.sha256(body).hexdigest() == sha
    assert body.startswith("\ufeff".encode()) and b",member.added," in body
    assert download.suggested_filename == f"audit-{slug}.csv"
    # the person's exports, from the user menu of every page
    await page.get_by_role("button", name="Quinn Adeyemi").click()
    await page.get_by_role("link", name="My exports").click()
    await page.wait_for_url(f"**/t/{slug}/exports")
    await expect(page.get_by_text("Audit trail (CSV)")).to_have_count(1)
    await check_page(page, "exports-list")
    await page.close()
