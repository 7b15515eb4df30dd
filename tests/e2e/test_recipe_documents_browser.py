"""A recipe's documents in a real browser: an office file refused with its message by the
field, a PDF attached and listed, the removal dialog (a reason required), the removed
document kept and marked; each page checked (axe, layout)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Browser, expect

from tests.e2e.conftest import check_page, visit
from tests.e2e.test_dialogs_browser import _draft, _sign_in, _tenant

pytestmark = pytest.mark.e2e


async def test_documents_are_attached_and_removed_on_the_recipe_page(
    synced: Any, server: str, chromium: Browser, owner: asyncpg.Connection, tmp_path: Path
) -> None:
    ctx, people = await _tenant({"author": ["process_engineer"]})
    recipe = await _draft(owner, ctx, people["author"])
    page = await _sign_in(chromium, server, people["author"].email)
    await visit(page, f"{server}/t/{ctx.slug}/recipes/{recipe}", "recipe-documents-empty")
    card = page.locator("#documents")
    await expect(card).to_contain_text("No documents attached.")

    office = tmp_path / "Risk assessment.docx"
    office.write_bytes(b"PK\x03\x04" + os.urandom(64))
    await card.get_by_label("Title").fill("Risk assessment")
    await card.get_by_label("Kind").select_option("risk_assessment")
    await card.get_by_label("File").set_input_files(office)
    await card.get_by_role("button", name="Attach document").click()
    await expect(page.locator("#document-file-error")).to_contain_text("Save the document as PDF")
    await expect(card.get_by_label("Title")).to_have_value("Risk assessment")
    await check_page(page, "recipe-documents-refused")

    report = tmp_path / "Risk assessment.pdf"
    report.write_bytes(b"%PDF-1.7\n%" + os.urandom(32).hex().encode() + b"\n%%EOF\n")
    await card.get_by_label("File").set_input_files(report)
    await card.get_by_role("button", name="Attach document").click()
    row = page.locator("#documents tbody tr").first
    await expect(row).to_contain_text("Risk assessment.pdf")
    await expect(row).to_contain_text("current")
    await check_page(page, "recipe-documents-one")

    await row.get_by_role("button", name="Remove…").click()
    dialog = page.get_by_role("dialog", name="Remove the document Risk assessment")
    await expect(dialog).to_be_visible()
    await check_page(page, "recipe-documents-remove-dialog")
    await dialog.get_by_label("Reason").fill("Attached to the wrong recipe")
    await dialog.get_by_role("button", name="Remove it").click()
    row = page.locator("#documents tbody tr").first
    await expect(row).to_contain_text("removed")
    await expect(row).to_contain_text("Attached to the wrong recipe")
    await check_page(page, "recipe-documents-removed")
    await page.close()
