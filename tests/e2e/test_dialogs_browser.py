"""Dialogs in a real browser: the electronic signature (a refusal shown inside the dialog, then
success), its keyboard operation (focus moves in and is visible, Esc closes, focus returns),
and a risky action (cancel changes nothing; confirm with a reason does it). The members, API
tokens and account pages are visited and checked on the way."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Browser, Page, expect

from opencdmo.identity import service as identity
from opencdmo.recipes import service as recipes
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, Persona, as_actor
from tests.e2e.conftest import axe_without_scripts, check_page, visit
from tests.integration.conftest import activation, reviewable, viability
from tests.integration.test_recipes import design

pytestmark = pytest.mark.e2e


async def _tenant(roles: dict[str, list[str]]) -> tuple[TenantContext, dict[str, Persona]]:
    slug = f"dl-{uuid.uuid4().hex[:6]}"
    ctx = await tenancy.create_tenant(slug, "Dialog Lab", "cdmo", SYSTEM, RequestMeta())
    people = {}
    for key, granted in roles.items():
        email = f"{key}@{slug}.test"
        user = await identity.create_user(email, f"{key.title()} Person", PASSWORD)
        await tenancy.add_member(ctx, user.id, granted)
        people[key] = Persona(key, email, user.full_name, user.id)
    return ctx, people


async def _sign_in(chromium: Browser, server: str, email: str) -> Page:
    page = await chromium.new_page()
    await page.goto(server + "/login")
    await check_page(page, "login-dialogs")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/t/**")
    await check_page(page, "dashboard-dialogs")
    return page


async def _draft(owner: asyncpg.Connection, ctx: TenantContext, author: Persona) -> str:
    """A draft ready for review, authored by ``author``: its id."""
    scope = as_actor(ctx, author)
    recipe = await recipes.create(scope, "Dialog CAR-T", "CAR-T")
    content = reviewable(design(await activation(owner, ctx)), await viability(owner, ctx))
    await recipes.save(scope, recipe, content, 1)
    return str(recipe)


async def test_signature_refused_in_the_dialog_then_signed(
    synced: Any, server: str, chromium: Browser, owner: asyncpg.Connection
) -> None:
    ctx, people = await _tenant({"author": ["process_engineer"]})
    recipe = await _draft(owner, ctx, people["author"])
    page = await _sign_in(chromium, server, people["author"].email)
    url = f"{server}/t/{ctx.slug}/recipes/{recipe}"
    await visit(page, url, "recipe-draft-dialogs")
    await page.get_by_role("button", name="Submit for review…").click()
    dialog = page.get_by_role("dialog", name="Submit for review: electronic signature")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator(".statement")).to_have_text(
        "I submit revision 2 of Dialog CAR-T for review as its author, meaning: authored."
    )
    await dialog.get_by_label("Reason").fill("Ready for QA review")
    await dialog.get_by_label("Password (electronic signature)").fill("not-my-password-9")
    await dialog.get_by_role("button", name="Sign as author and submit for review").click()
    # Refused: the message is inside the dialog, which stays open with the reason kept.
    refusal = dialog.get_by_role("alert")
    await expect(refusal).to_contain_text("password is incorrect")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_label("Reason")).to_have_value("Ready for QA review")
    await expect(dialog.get_by_label("Password (electronic signature)")).to_have_value("")
    await expect(page.locator("#messages")).to_be_empty()
    await check_page(page, "signature-refused")
    state = await recipes.get(as_actor(ctx, people["author"]), uuid.UUID(recipe))
    assert state.status == "draft"
    # Signed: the page says so once, and the recipe is in review.
    await dialog.get_by_label("Password (electronic signature)").fill(PASSWORD)
    await dialog.get_by_role("button", name="Sign as author and submit for review").click()
    await expect(page.locator("#toasts")).to_contain_text("Submitted revision 2 for review.")
    await expect(page.locator("h1 .badge")).to_contain_text("In Review")
    await check_page(page, "signature-signed")
    signed = await owner.fetchval(
        "SELECT count(*) FROM signatures WHERE tenant_id = $1 AND meaning = 'authored'",
        ctx.tenant_id,
    )
    assert signed == 1
    await page.close()


async def _focus_ring(page: Page) -> tuple[str, float]:
    return tuple(  # type: ignore[return-value]
        await page.evaluate(
            "() => { const s = getComputedStyle(document.activeElement);"
            " return [s.outlineStyle, parseFloat(s.outlineWidth)]; }"
        )
    )


async def test_the_signature_dialog_works_from_the_keyboard(
    synced: Any, server: str, chromium: Browser, owner: asyncpg.Connection
) -> None:
    ctx, people = await _tenant({"author": ["process_engineer"]})
    recipe = await _draft(owner, ctx, people["author"])
    page = await _sign_in(chromium, server, people["author"].email)
    await visit(page, f"{server}/t/{ctx.slug}/recipes/{recipe}", "recipe-keyboard")
    assert await axe_without_scripts(page) == [], "the page as laid out without scripts"
    trigger = page.get_by_role("button", name="Submit for review…")
    # Tab to the trigger as a keyboard user would (at most 60 stops from the top).
    for _ in range(60):
        await page.keyboard.press("Tab")
        if await trigger.evaluate("element => element === document.activeElement"):
            break
    else:
        pytest.fail("the trigger cannot be reached with Tab")
    style, width = await _focus_ring(page)
    assert style != "none" and width >= 2, "focus is visible on the trigger"
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Submit for review: electronic signature")
    await expect(dialog).to_be_visible()
    reason = dialog.get_by_label("Reason")
    await expect(reason).to_be_focused()
    style, width = await _focus_ring(page)
    assert style != "none" and width >= 2, "focus is visible in the dialog"
    await page.keyboard.type("Typed, not clicked")
    await page.keyboard.press("Tab")
    await expect(dialog.get_by_label("Password (electronic signature)")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(trigger).to_be_focused()
    state = await recipes.get(as_actor(ctx, people["author"]), uuid.UUID(recipe))
    assert state.status == "draft", "closing the dialog signs nothing"
    await page.close()


async def test_deactivating_a_member_asks_for_confirmation_and_a_reason(
    server: str, chromium: Browser, owner: asyncpg.Connection
) -> None:
    ctx, people = await _tenant({"admin": ["tenant_admin"], "leaver": ["viewer"]})
    membership = await owner.fetchval(
        "SELECT id FROM memberships WHERE tenant_id = $1 AND user_id = $2",
        ctx.tenant_id,
        people["leaver"].user_id,
    )

    async def events() -> int:
        return int(
            await owner.fetchval(
                "SELECT count(*) FROM audit_events WHERE tenant_id = $1 "
                "AND action = 'member.deactivated'",
                ctx.tenant_id,
            )
        )

    page = await _sign_in(chromium, server, people["admin"].email)
    await visit(page, f"{server}/t/{ctx.slug}/members", "members")
    row = page.locator(f"#member-{membership}")
    await row.get_by_role("button", name="Deactivate… Leaver Person").click()
    dialog = page.get_by_role("dialog", name="Deactivate Leaver Person?")
    await expect(dialog).to_be_visible()
    await check_page(page, "confirm-dialog")
    # Cancel changes nothing.
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    assert await owner.fetchval("SELECT is_active FROM memberships WHERE id = $1", membership)
    assert await events() == 0
    # Confirm without a reason: the browser asks for one; with it, the member is deactivated.
    await row.get_by_role("button", name="Deactivate… Leaver Person").click()
    await dialog.get_by_role("button", name="Deactivate").click()
    await expect(dialog).to_be_visible()
    assert await events() == 0
    await dialog.get_by_label(re.compile("Reason to deactivate")).fill("Left the company")
    await dialog.get_by_role("button", name="Deactivate").click()
    await expect(page.locator("#toasts")).to_contain_text("Leaver Person deactivated.")
    await expect(page.locator(f"#member-{membership}")).to_contain_text("Deactivated")
    await expect(page.locator(".modal-backdrop")).to_have_count(0)
    assert not await owner.fetchval("SELECT is_active FROM memberships WHERE id = $1", membership)
    reason = await owner.fetchval(
        "SELECT reason FROM audit_events WHERE tenant_id = $1 AND action = 'member.deactivated'",
        ctx.tenant_id,
    )
    assert reason == "Left the company"
    await check_page(page, "members-after")
    await visit(page, f"{server}/t/{ctx.slug}/tokens", "tokens")
    await visit(page, f"{server}/account", "account")
    await page.close()


async def test_without_scripts_the_signature_form_posts_in_place(
    synced: Any, server: str, chromium: Browser, owner: asyncpg.Connection
) -> None:
    ctx, people = await _tenant({"author": ["process_engineer"]})
    recipe = await _draft(owner, ctx, people["author"])
    page = await chromium.new_page(java_script_enabled=False)
    await page.goto(server + "/login")
    await check_page(page, "login-no-script", scripts=False)
    await page.get_by_label("Email").fill(people["author"].email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/t/**")
    await check_page(page, "dashboard-no-script", scripts=False)
    await visit(page, f"{server}/t/{ctx.slug}/recipes/{recipe}", "recipe-no-script", scripts=False)
    # The dialog is a form in place: its trigger is hidden, its fields are there.
    await expect(page.get_by_role("button", name="Submit for review…")).to_be_hidden()
    form = page.locator('form[data-action="submit"]')
    await expect(form).to_be_visible()
    await form.get_by_label("Reason").fill("Ready, without scripts")
    await form.get_by_label("Password (electronic signature)").fill("not-my-password-9")
    await form.get_by_role("button", name="Sign as author and submit for review").click()
    await expect(form.get_by_role("alert")).to_contain_text("password is incorrect")
    await expect(form.get_by_label("Reason")).to_have_value("Ready, without scripts")
    await check_page(page, "signature-refused-no-script", scripts=False)
    await form.get_by_label("Password (electronic signature)").fill(PASSWORD)
    await form.get_by_role("button", name="Sign as author and submit for review").click()
    await expect(page.locator("#toasts")).to_contain_text("Submitted revision 2 for review.")
    await expect(page.locator("h1 .badge")).to_contain_text("In Review")
    await check_page(page, "signature-signed-no-script", scripts=False)
    await page.close()
