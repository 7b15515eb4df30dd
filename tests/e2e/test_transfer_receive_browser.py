"""Receiving a tech-transfer package in a real browser: the sponsor's QA sends a package to
its CDMO partner from the packages page; the CDMO's process engineer finds it in the inbox,
verifies it on its page (the manifest and the next steps shown), and a file that is not a
package is refused on the upload form with its finding; and the whole round trip: sent,
verified, every gap resolved on the gap report, imported as a draft; each page checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Browser, Page, expect

from opencdmo.inventory import service as inventory
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, World, as_actor
from tests.e2e.conftest import check_page, visit
from tests.integration.job_worker import job_worker
from tests.integration.test_transfer_receive import _package, _receiver, _related, _sender

# The verification runs in the job worker (here in the test process, on the same database).
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("job_worker")]
__all__ = ["job_worker"]


async def _sign_in(chromium: Browser, server: str, email: str, name: str) -> Page:
    page = await chromium.new_page()
    await page.goto(server + "/login")
    await check_page(page, f"login-{name}")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    # a member of several organisations chooses one first
    await page.wait_for_url(lambda url: "/t/" in url or url.endswith("/tenants"))
    await check_page(page, f"signed-in-{name}")
    return page


async def test_a_package_sent_verified_and_an_upload_refused_in_the_pages(
    server: str,
    chromium: Browser,
    synced: Any,
    world: World,
    settings: Settings,
    owner: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    sender = await _sender(world, owner)
    receiver = await _receiver(world)
    package_id = await _package(settings, sender)
    await _related(sender, receiver)

    qa = await _sign_in(chromium, server, world["approver"].email, "qa")
    await visit(qa, f"{server}/t/{sender.ctx.slug}/transfer/packages", "transfer-packages-send")
    await qa.get_by_role("button", name=f"Send to {receiver.ctx.name}").click()
    await expect(qa.locator("#toasts")).to_contain_text("it is in their inbox")
    await expect(qa.locator(f"#sends-{package_id}")).to_contain_text("Received")
    await check_page(qa, "transfer-packages-sent")

    engineer = await _sign_in(chromium, server, world["author"].email, "engineer")
    await visit(engineer, f"{server}/t/{receiver.ctx.slug}/transfer/inbox", "transfer-inbox")
    await engineer.get_by_role("link", name=str(package_id)).click()
    await check_page(engineer, "transfer-package-received")
    await engineer.get_by_role("button", name="Verify").click()
    await expect(engineer.locator("#toasts")).to_contain_text("Verifying the package")
    # The progress polls itself; once the worker is done the page reloads with the outcome.
    next_steps = engineer.locator("#package-next")
    await expect(next_steps).to_contain_text("Gap report and import", timeout=30_000)
    await expect(engineer.locator("#files")).to_contain_text("recipe/batchml.xml")
    await check_page(engineer, "transfer-package-verified")

    await visit(engineer, f"{server}/t/{receiver.ctx.slug}/transfer/inbox", "transfer-inbox-2")
    not_a_package = tmp_path / "notes.zip"
    not_a_package.write_bytes(b"these are notes, not an archive")
    await engineer.get_by_label("Package file").set_input_files(str(not_a_package))
    await engineer.get_by_role("button", name="Upload and verify").click()
    # Verified in the job worker: the inbox shows its progress, then every finding.
    await expect(engineer.locator("#upload-findings")).to_be_visible(timeout=30_000)
    await expect(engineer.locator("#upload-refusal")).to_contain_text("nothing was kept")
    await check_page(engineer, "transfer-upload-refused")

    await visit(qa, f"{server}/t/{sender.ctx.slug}/transfer/packages", "transfer-packages-status")
    await expect(qa.locator(f"#sends-{package_id}")).to_contain_text("Verified")
    for page in (qa, engineer):
        await page.close()


async def _resolve_every_gap(page: Page) -> int:
    """Resolve the gap report's open gaps one by one as a person would: install the HUB's
    version, else use what the tenant has, else fork the sender's content. Returns how many."""
    chosen = 0
    while True:
        row = page.locator("tr", has_text="Not chosen yet").first
        if await row.count() == 0:
            return chosen
        for name in ("Install", "Use it", "Fork the sender's content"):
            button = row.get_by_role("button", name=name, exact=True)
            if await button.count():
                await button.first.click()
                await page.wait_for_load_state()
                break
        else:
            raise AssertionError(f"a gap with no choice: {await row.inner_text()}")
        chosen += 1
        await expect(page.locator("#toasts")).to_contain_text("Saved:")
        await check_page(page, f"round-trip-gap-{chosen}")


async def test_a_package_sent_by_the_sponsor_is_mapped_and_imported_at_the_cdmo(
    server: str,
    chromium: Browser,
    synced: Any,
    world: World,
    settings: Settings,
    owner: asyncpg.Connection,
) -> None:
    """The round trip in the pages: the sponsor's QA sends, the CDMO's engineer verifies,
    resolves every gap on the gap report and imports the draft, which opens with its
    lineage; the sponsor sees the package imported."""
    sender = await _sender(world, owner)
    receiver = await _receiver(world)
    await tenancy.add_member(receiver.ctx, world["handler"].user_id, ["materials_handler"])
    stores = as_actor(receiver.ctx, world["handler"])
    await inventory.create_material(stores, "MED-01", "T-cell medium", "reagent", "mL")
    package_id = await _package(settings, sender)
    await _related(sender, receiver)

    qa = await _sign_in(chromium, server, world["approver"].email, "qa")
    await visit(qa, f"{server}/t/{sender.ctx.slug}/transfer/packages", "round-trip-send")
    await qa.get_by_role("button", name=f"Send to {receiver.ctx.name}").click()
    await expect(qa.locator("#toasts")).to_contain_text("it is in their inbox")

    engineer = await _sign_in(chromium, server, world["author"].email, "engineer")
    await visit(engineer, f"{server}/t/{receiver.ctx.slug}/transfer/inbox", "round-trip-inbox")
    package_page = f"{server}/t/{receiver.ctx.slug}/transfer/packages/{package_id}"
    await engineer.get_by_role("link", name=str(package_id)).click()
    await engineer.wait_for_url(package_page)
    await check_page(engineer, "round-trip-received")
    await engineer.get_by_role("button", name="Verify").click()
    await expect(engineer.locator("#toasts")).to_contain_text("Verifying the package")
    next_steps = engineer.locator("#package-next")
    await expect(next_steps).to_contain_text("Gap report and import", timeout=30_000)
    await check_page(engineer, "round-trip-verified")
    await (
        engineer.locator("#package-next").get_by_role("link", name="Gap report and import").click()
    )
    await check_page(engineer, "round-trip-gaps")
    assert await _resolve_every_gap(engineer) > 0
    await expect(engineer.locator("#toasts")).to_contain_text("Saved:")
    await engineer.get_by_role("button", name="Import as a draft").click()
    await expect(engineer.locator("#toasts")).to_contain_text("Importing the package")
    await check_page(engineer, "round-trip-importing")
    # The import runs in the job worker; its progress polls and the page reloads when done.
    draft = engineer.get_by_role("link", name="the draft recipe")
    await expect(draft).to_be_visible(timeout=60_000)
    await check_page(engineer, "round-trip-imported")
    await draft.click()
    await expect(engineer.locator("main")).to_contain_text("Draft")
    await check_page(engineer, "round-trip-draft")
    row = await owner.fetchrow(
        "SELECT recipe_id, sender_tenant_id FROM transfer_imports WHERE package_id = $1",
        package_id,
    )
    assert row["sender_tenant_id"] == sender.ctx.tenant_id
    assert str(row["recipe_id"]) in engineer.url

    await visit(qa, f"{server}/t/{sender.ctx.slug}/transfer/packages", "round-trip-status")
    await expect(qa.locator(f"#sends-{package_id}")).to_contain_text("Imported")
    for page in (qa, engineer):
        await page.close()
