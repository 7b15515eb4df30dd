"""Messages shown once after a command (the signed flash cookie), dialogs that keep a refusal
inside themselves, and the reasons risky actions record."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg

from opencdmo.hub import service as hub
from opencdmo.hub.content import validate
from opencdmo.identity import service as identity
from opencdmo.recipes import service as recipes
from opencdmo.tenancy import service as tenancy
from opencdmo.web.flash import FLASH_COOKIE
from tests.conftest import PASSWORD, World, as_actor
from tests.integration.conftest import activation, new_lab, reviewable, viability
from tests.integration.test_hub import material
from tests.integration.test_library import _item, fresh_tenant
from tests.integration.test_recipes import design


def _toasts(html: str) -> list[str]:
    """The messages of the toasts in a page or fragment."""
    found = re.findall(r'data-toast[^>]*>.*?<span class="flex-fill">([^<]*)</span>', html, re.S)
    return [" ".join(text.split()) for text in found]


async def test_install_says_what_it_installed_once(
    synced: Any, browser: Any, owner: asyncpg.Connection, world: World
) -> None:
    ctx = await fresh_tenant()
    await tenancy.add_member(ctx, world["author"].user_id, ["process_engineer"])
    client = await browser("author")
    item = await _item(owner, "t-cell-activation")
    installed = await client.send("POST", f"/t/{ctx.slug}/hub/items/{item}/install")
    assert installed.status_code == 303
    assert installed.headers["location"] == f"/t/{ctx.slug}/library"
    assert FLASH_COOKIE in installed.headers["set-cookie"]
    count = await owner.fetchval(
        "SELECT count(*) FROM library_items WHERE tenant_id = $1", ctx.tenant_id
    )
    name, version = await owner.fetchrow(
        "SELECT name, version FROM library_items WHERE tenant_id = $1 AND hub_item_id = $2",
        ctx.tenant_id,
        item,
    )
    library = await client.get(f"/t/{ctx.slug}/library")
    more = count - 1
    expected = f"Installed {name} v{version}" + (
        f" and {more} dependenc{'y' if more == 1 else 'ies'}." if more else "."
    )
    assert _toasts(library.text) == [expected]
    # Shown once: the page deletes the cookie, and the next page has no toast.
    assert re.match(rf'{FLASH_COOKIE}=(""|);.*Max-Age=0', library.headers["set-cookie"])
    again = await client.get(f"/t/{ctx.slug}/library")
    assert _toasts(again.text) == []


async def test_a_forged_flash_cookie_shows_nothing(browser: Any) -> None:
    client = await browser("admin")
    client.http.cookies.set(FLASH_COOKIE, "W3sibSI6ICJIYWNrZWQiLCAiayI6ICJzdWNjZXNzIn1d.0000")
    page = await client.get("/t/alpha/")
    assert page.status_code == 200
    assert _toasts(page.text) == [] and "Hacked" not in page.text


async def _draft(world: World, owner: asyncpg.Connection, client: Any) -> str:
    """A draft ready for review in a lab of its own (its library is its own)."""
    lab = await new_lab(world)
    ctx = lab["ctx"]
    created = await client.send(
        "POST", f"/t/{ctx.slug}/recipes", data={"name": "Dialog recipe", "product": "CAR-T"}
    )
    url = str(created.headers["location"])
    uo = await activation(owner, ctx)
    method = await viability(owner, ctx)
    recipe = uuid.UUID(url.rsplit("/", 1)[1])
    await recipes.save(lab["author"], recipe, reviewable(design(uo), method), 1)
    return url


async def test_signature_dialog_keeps_a_refusal_inside_and_redirects_on_success(
    synced: Any, world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    client = await browser("author")
    url = await _draft(world, owner, client)
    page = (await client.get(url)).text
    dialog = page[page.index('id="sign-submit"') :]
    dialog = dialog[: dialog.index("</form>")]
    assert "I submit revision 2 of Dialog recipe for review as its author, meaning: authored." in (
        dialog
    )
    htmx = {"HX-Request": "true"}
    wrong = await client.send(
        "POST",
        url + "/submit",
        data={"reason": "ready for QA", "password": "not-my-password-9"},
        headers=htmx,
    )
    assert wrong.status_code == 401
    content = wrong.text[wrong.text.index('id="sign-submit-content"') :]
    content = content[: content.index("</form>")]
    assert 'id="sign-submit-refusal"' in content and "password is incorrect" in content
    assert 'value="ready for QA"' in content, "the reason is kept"
    assert re.search(r'<div class="modal[^"]*" id="sign-submit"[^>]* data-open>', wrong.text)
    assert (
        await owner.fetchval(
            "SELECT status FROM master_recipes WHERE id = $1", uuid.UUID(url[-36:])
        )
        == "draft"
    )
    done = await client.send(
        "POST", url + "/submit", data={"reason": "ready for QA", "password": PASSWORD}, headers=htmx
    )
    assert done.status_code == 200 and done.headers["hx-redirect"] == url
    shown = await client.get(url)
    assert _toasts(shown.text) == ["Submitted revision 2 for review."]


async def test_revoking_a_token_and_yanking_a_version_record_the_reason(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    client = await browser("operator")
    made = await client.send("POST", "/t/alpha/tokens", data={"name": "for revoking", "days": 5})
    assert made.status_code == 200
    assert _toasts(made.text) == ["API token created: copy it now, it is not shown again."]
    token = await owner.fetchval(
        "SELECT id FROM api_tokens WHERE name = 'for revoking' AND user_id = $1",
        world["operator"].user_id,
    )
    revoked = await client.send(
        "POST", f"/t/alpha/tokens/{token}/revoke", data={"reason": "leaked in a ticket"}
    )
    assert revoked.status_code == 200
    assert (
        await owner.fetchval(
            "SELECT reason FROM audit_events WHERE action = 'token.revoked' AND entity_id = $1",
            str(token),
        )
        == "leaked in a ticket"
    )

    publisher = as_actor(world.beta, world["outsider"])
    slug = f"yank-{uuid.uuid4().hex[:6]}"
    item = await hub.publish(publisher, validate(material(slug), "t"), visibility="private")
    beta = await browser("outsider")
    yanked = await beta.send(
        "POST",
        f"/t/beta/hub/items/{item.item_id}/versions/1.0.0/mark",
        data={"action": "yank", "reason": "wrong supplier part number"},
    )
    assert yanked.status_code == 303
    assert (
        await owner.fetchval(
            "SELECT reason FROM audit_events WHERE action = 'hub.version_yanked' AND entity_id = $1",
            str(item.item_id),
        )
        == "wrong supplier part number"
    )
    page = await beta.get(yanked.headers["location"])
    assert _toasts(page.text) == ["Yanked 1.0.0."]


async def test_member_dialogs_name_the_person_and_keep_the_reason(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    user = await identity.create_user(
        f"d-{uuid.uuid4().hex[:6]}@alpha.test", "Dialog Person", PASSWORD
    )
    membership = await tenancy.add_member(world.alpha, user.id, ["viewer"])
    client = await browser("admin")
    page = (await client.get("/t/alpha/members")).text
    dialog = page[page.index(f'id="status-{membership}"') :]
    dialog = dialog[: dialog.index("</form>")]
    assert "Deactivate Dialog Person?" in dialog and 'name="reason"' in dialog
    done = await client.send(
        "POST",
        f"/t/alpha/members/{membership}/status",
        data={"active": "false", "reason": "left the company"},
        headers={"HX-Request": "true"},
    )
    assert done.status_code == 200
    assert _toasts(done.text) == ["Dialog Person deactivated."]
    assert (
        await owner.fetchval(
            "SELECT reason FROM audit_events WHERE action = 'member.deactivated' AND entity_id = $1",
            str(membership),
        )
        == "left the company"
    )
