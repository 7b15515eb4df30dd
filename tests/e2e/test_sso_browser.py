"""Single sign-on in a real browser against a real OpenID provider on 127.0.0.1: a QA person
of a tenant whose staff sign in through their company's provider signs in there (first
sign-in: provisioned with the roles their group maps to), and releases a lot with a Part 11
signature whose re-authentication opens the provider in a window of its own; the one-time
code comes back into the signature dialog by itself."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from playwright.async_api import Browser, expect

from opencdmo.db.urls import DatabaseUrls
from opencdmo.identity.sso import service as sso
from opencdmo.identity.sso.config import SsoConfig
from opencdmo.scope import SYSTEM, RequestMeta
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from tests.conftest import World, member_as
from tests.e2e.conftest import check_page
from tests.oidc.provider import CLIENTS, OidcProvider, lot_in_quarantine
from tests.servers import served

pytestmark = pytest.mark.e2e

SECRET_ENV = "E2E_SSO_CLIENT_SECRET"  # the variable the configuration names for the secret


@pytest.fixture(scope="module")
async def server(database: DatabaseUrls, world: World, settings: Settings) -> AsyncIterator[str]:
    """A server of this module's own: its environment holds the provider's client secret, and
    the provider's configuration it caches is this module's."""
    secret = {SECRET_ENV: str(CLIENTS[0]["client_secret"])}
    async with served(database, settings, OPENCDMO_SECRET_KEY="e2e", **secret) as base:
        yield base


@pytest.fixture(scope="module")
def provider(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    found = OidcProvider(tmp_path_factory.mktemp("oidc-e2e"), callbacks=(server + "/sso/callback",))
    found.start()
    yield found
    found.stop()


async def test_sign_in_and_sign_through_the_identity_provider(
    server: str,
    chromium: Browser,
    provider: OidcProvider,
    world: World,
    owner: asyncpg.Connection,
) -> None:
    slug = f"sso-e2e-{uuid.uuid4().hex[:6]}"
    ctx = await tenancy.create_tenant(slug, "Northwind Cell Therapy", "cdmo", SYSTEM, RequestMeta())
    config = {
        "issuer": provider.issuer,
        "client_id": "opencdmo",
        "client_secret_env": SECRET_ENV,
        "scopes": ["openid", "email", "profile", "groups"],
        "roles": {"quality": ["qa_approver"]},
        "signing": "reauthenticate",
        "label": "Northwind ID",
    }
    await sso.set_config(ctx.tenant_id, SsoConfig.from_json(config))
    await tenancy.add_member(ctx, world["handler"].user_id, ["materials_handler"])
    lot = await lot_in_quarantine(ctx, await member_as(ctx, world["handler"]))
    login = f"qa{uuid.uuid4().hex[:6]}"
    provider.add(login, f"{login}@northwind.test", ["quality"], password="provider-pass")
    lot_url = f"{server}/t/{slug}/lots/{lot.id}"

    # Sign-in: the tenant's sign-in page offers its provider; its form is the provider's.
    page = await chromium.new_page()
    await page.goto(f"{server}/login?tenant={slug}&next=/t/{slug}/lots/{lot.id}")
    await check_page(page, "sso-login")
    await page.get_by_role("link", name="Sign in with Northwind ID").click()
    await page.wait_for_url(provider.issuer + "/interaction/**")
    await check_page(page, "sso-provider")
    await page.get_by_label("Login").fill(login)
    await page.get_by_label("Password").fill("provider-pass")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(lot_url)
    await check_page(page, "sso-lot")
    roles = await owner.fetchval(
        "SELECT array_agg(r.role) FROM memberships m JOIN role_assignments r ON r.membership_id = m.id"
        " JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 AND u.email = $2",
        ctx.tenant_id,
        f"{login}@northwind.test",
    )
    assert roles == ["qa_approver"]

    # The signature asks for a code from the provider, not a password.
    await page.get_by_role("button", name="Release…").click()
    dialog = page.locator("#sign-release")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_label("Password (electronic signature)")).to_have_count(0)
    code = dialog.get_by_label("Signing code (from Northwind ID)")
    await dialog.get_by_label("Reason").fill("CoA checked against the specification")
    await check_page(page, "sso-sign-dialog")
    async with page.expect_popup() as opened:
        await dialog.get_by_role("link", name="Re-authenticate").click()
    popup = await opened.value
    await popup.wait_for_url(provider.issuer + "/interaction/**")
    await popup.get_by_label("Login").fill(login)
    await popup.get_by_label("Password").fill("provider-pass")
    await popup.get_by_role("button", name="Sign in").click()
    if not popup.is_closed():  # it hands the code over and closes
        await popup.wait_for_event("close", timeout=15000)
    await expect(code).not_to_have_value("")
    await expect(dialog.get_by_text("Code received from Northwind ID")).to_be_visible()
    async with page.expect_navigation():
        await dialog.get_by_role("button", name="Sign as released for use").click()
    await expect(page.get_by_text("Released").first).to_be_visible()
    await check_page(page, "sso-lot-released")
    method = await owner.fetchval(
        "SELECT method FROM signatures WHERE tenant_id = $1",
        ctx.tenant_id,
    )
    assert method == "reauthentication"
