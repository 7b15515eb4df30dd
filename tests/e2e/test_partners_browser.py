"""Partners in a real browser: a sponsor's admin proposes a relationship, the CDMO's admin
accepts it and stops sharing batch records (a confirmation with a reason), the sponsor sees
its (empty) "Batches made for us" page and revokes the relationship; each page checked."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from playwright.async_api import Browser, Page, expect

from opencdmo.identity import service as identity
from opencdmo.scope import SYSTEM, RequestMeta
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD
from tests.e2e.conftest import check_page, visit

pytestmark = pytest.mark.e2e


async def _org(kind: str, name: str) -> tuple[str, str]:
    """A tenant of that kind with an administrator: (slug, admin's email)."""
    slug = f"{kind}-{uuid.uuid4().hex[:6]}"
    ctx = await tenancy.create_tenant(slug, name, kind, SYSTEM, RequestMeta())
    email = f"admin@{slug}.test"
    user = await identity.create_user(email, f"Admin of {name}", PASSWORD)
    await tenancy.add_member(ctx, user.id, ["tenant_admin"])
    return slug, email


async def _sign_in(chromium: Browser, server: str, email: str) -> Page:
    page = await chromium.new_page()
    await page.goto(server + "/login")
    await check_page(page, f"login-{email.split('@')[1]}")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/t/**")
    await check_page(page, f"dashboard-{email.split('@')[1]}")
    return page


async def test_a_relationship_proposed_accepted_and_revoked_in_the_pages(
    server: str, chromium: Browser, owner: asyncpg.Connection
) -> None:
    sponsor, sponsor_admin = await _org("sponsor", "Quill Tx")
    cdmo, cdmo_admin = await _org("cdmo", "Lark CDMO")

    them = await _sign_in(chromium, server, sponsor_admin)
    await visit(them, f"{server}/t/{sponsor}/settings/partners", "partners-empty")
    await them.get_by_label("The CDMO's slug").fill(cdmo)
    await them.get_by_role("button", name="Propose").click()
    await expect(them.locator("#toasts")).to_contain_text("Relationship proposed to Lark CDMO.")

    us = await _sign_in(chromium, server, cdmo_admin)
    await visit(us, f"{server}/t/{cdmo}/settings/partners", "partners-awaiting")
    await expect(us.locator("#relationships")).to_contain_text("Awaiting your answer")
    await us.get_by_role("button", name="Accept").click()
    await expect(us.locator("#toasts")).to_contain_text("is active")
    await us.get_by_role("button", name="Stop sharing records…").click()
    dialog = us.get_by_role("dialog", name="Stop sharing batch records with Quill Tx?")
    await expect(dialog).to_be_visible()
    await check_page(us, "partners-sharing-dialog")
    await dialog.get_by_label("Reason").fill("Records on request")
    await dialog.get_by_role("button", name="Change sharing").click()
    await expect(us.locator("#relationships")).to_contain_text("Not shared")

    await visit(them, f"{server}/t/{sponsor}/partners/batches", "made-for-us-empty")
    await expect(them.get_by_text("No batch made for you yet.")).to_be_visible()
    await visit(them, f"{server}/t/{sponsor}/settings/partners", "partners-active")
    await them.get_by_role("button", name="Revoke…").click()
    dialog = them.get_by_role("dialog", name="End the relationship with Lark CDMO?")
    await dialog.get_by_label("Reason").fill("Programme moved")
    await dialog.get_by_role("button", name="Revoke").click()
    await expect(them.locator("#toasts")).to_contain_text("is revoked")
    await check_page(them, "partners-revoked")
    statuses = await owner.fetch(
        "SELECT l.status FROM partner_links l JOIN tenants t ON t.id = l.tenant_id "
        "WHERE t.slug = ANY($1)",
        [sponsor, cdmo],
    )
    assert [r["status"] for r in statuses] == ["revoked", "revoked"]
    for page in (them, us):
        await page.close()
