"""Single sign-on against a real OpenID provider (tests/oidc/server.mjs, panva's
oidc-provider) on 127.0.0.1: the whole authorization code flow with PKCE, state and nonce,
driven through the app's pages and the provider's own sign-in form."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from litestar import Litestar

from opencdmo.errors import NotAuthenticated
from opencdmo.identity import service as identity
from opencdmo.identity.sso import provider as sso_provider
from opencdmo.identity.sso import service as sso
from opencdmo.identity.sso.config import SsoConfig
from opencdmo.scope import SYSTEM, Actor, RequestMeta, TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from tests.conftest import Browser, World, member_as
from tests.oidc.provider import CLIENTS, OidcProvider, lot_in_quarantine, sign_in_at_provider

SECRET_ENV = "OPENCDMO_TEST_SSO_SECRET"


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    server = OidcProvider(tmp_path_factory.mktemp("oidc"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, str(CLIENTS[0]["client_secret"]))


def _config(oidc: OidcProvider, **changes: Any) -> SsoConfig:
    data: dict[str, Any] = {
        "issuer": oidc.issuer,
        "client_id": "opencdmo",
        "client_secret_env": SECRET_ENV,
        "scopes": ["openid", "email", "profile", "groups"],
        "email_domains": ["sso.test"],
        "roles": {"qa": ["qa_approver"], "engineers": ["process_engineer"]},
        "signing": "reauthenticate",
    }
    return SsoConfig.from_json({**data, **changes})


@pytest.fixture
async def tenant(app: Litestar, oidc: OidcProvider) -> TenantContext:
    slug = f"sso-{uuid.uuid4().hex[:8]}"
    ctx = await tenancy.create_tenant(slug, "SSO Test CDMO", "cdmo", SYSTEM, RequestMeta())
    await sso.set_config(ctx.tenant_id, _config(oidc))
    return ctx


@pytest.fixture
async def person(oidc: OidcProvider) -> str:
    login = f"p{uuid.uuid4().hex[:10]}"
    oidc.add(login, f"{login}@sso.test", ["qa"])
    return login


@pytest.fixture
async def clients(app: Litestar) -> AsyncIterator[tuple[Browser, httpx.AsyncClient]]:
    browser = Browser(app)
    at_provider = httpx.AsyncClient(follow_redirects=False)
    yield browser, at_provider
    await browser.close()
    await at_provider.aclose()


async def _flow(
    browser: Browser, at_provider: httpx.AsyncClient, start: str, login: str
) -> tuple[str, httpx.Response]:
    """Start at the app, sign in at the provider, return the callback URL and the app's answer."""
    started = await browser.get(start)
    assert started.status_code == 303, started.text
    callback = await sign_in_at_provider(at_provider, started.headers["location"], login)
    path = urlsplit(callback)
    return callback, await browser.get(f"{path.path}?{path.query}")


async def _sign_in(
    clients: tuple[Browser, httpx.AsyncClient], ctx: TenantContext, login: str
) -> httpx.Response:
    return (await _flow(*clients, f"/sso/{ctx.slug}/start", login))[1]


async def _roles(owner: asyncpg.Connection, ctx: TenantContext, email: str) -> list[str]:
    rows = await owner.fetch(
        "SELECT r.role FROM role_assignments r JOIN memberships m ON m.id = r.membership_id "
        "JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 AND u.email = $2 ORDER BY 1",
        ctx.tenant_id,
        email,
    )
    return [r["role"] for r in rows]


async def _actions(owner: asyncpg.Connection, ctx: TenantContext) -> list[str]:
    rows = await owner.fetch(
        "SELECT action FROM audit_events WHERE tenant_id = $1 ORDER BY seq", ctx.tenant_id
    )
    return [r["action"] for r in rows]


async def test_first_sign_in_provisions_the_member_with_mapped_roles(
    clients: tuple[Browser, httpx.AsyncClient],
    tenant: TenantContext,
    person: str,
    owner: asyncpg.Connection,
) -> None:
    response = await _sign_in(clients, tenant, person)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/t/{tenant.slug}/"
    assert await _roles(owner, tenant, f"{person}@sso.test") == ["qa_approver"]
    actions = await _actions(owner, tenant)
    assert "member.added" in actions and "member.roles_changed" in actions
    linked = await owner.fetchrow(
        "SELECT i.issuer, i.subject FROM sso_identities i JOIN users u ON u.id = i.user_id "
        "WHERE u.email = $1",
        f"{person}@sso.test",
    )
    assert linked is not None and linked["subject"] == person
    home = await clients[0].get(f"/t/{tenant.slug}/")
    assert home.status_code == 200


async def test_login_page_offers_the_provider_and_hides_passwords_when_off(
    clients: tuple[Browser, httpx.AsyncClient], tenant: TenantContext, oidc: OidcProvider
) -> None:
    page = await clients[0].get(f"/login?tenant={tenant.slug}")
    assert f"/sso/{tenant.slug}/start" in page.text and 'name="password"' in page.text
    await sso.set_config(tenant.tenant_id, _config(oidc, password_sign_in=False))
    page = await clients[0].get(f"/login?tenant={tenant.slug}")
    assert f"/sso/{tenant.slug}/start" in page.text and 'name="password"' not in page.text


async def test_password_sign_in_switched_off_is_refused_server_side(
    app: Litestar, tenant: TenantContext, oidc: OidcProvider
) -> None:
    email = f"pw{uuid.uuid4().hex[:8]}@sso.test"
    user = await identity.create_user(email, "Pat Password", "correct-horse-battery-42")
    await tenancy.add_member(tenant, user.id, ["viewer"])
    browser, later = Browser(app), Browser(app)
    try:
        assert (await browser.login(email)).status_code == 303
        await sso.set_config(tenant.tenant_id, _config(oidc, password_sign_in=False))
        refused = await later.login(email)
        assert refused.status_code == 401
        assert "identity provider only" in refused.text
    finally:
        await browser.close()
        await later.close()


async def test_a_replayed_state_is_refused(
    clients: tuple[Browser, httpx.AsyncClient], tenant: TenantContext, person: str
) -> None:
    callback, first = await _flow(*clients, f"/sso/{tenant.slug}/start", person)
    assert first.status_code == 303
    path = urlsplit(callback)
    again = await clients[0].get(f"{path.path}?{path.query}")
    assert again.status_code == 401
    assert "already used" in again.text


async def test_a_changed_group_changes_roles_and_a_removed_one_ends_the_sessions(
    clients: tuple[Browser, httpx.AsyncClient],
    tenant: TenantContext,
    person: str,
    oidc: OidcProvider,
    owner: asyncpg.Connection,
    app: Litestar,
) -> None:
    email = f"{person}@sso.test"
    assert (await _sign_in(clients, tenant, person)).status_code == 303
    oidc.accounts[person]["groups"] = ["engineers"]
    oidc.write_accounts()
    second = (Browser(app), httpx.AsyncClient())
    try:
        assert (await _sign_in(second, tenant, person)).status_code == 303
        assert await _roles(owner, tenant, email) == ["process_engineer"]
        oidc.accounts[person]["groups"] = ["marketing"]
        oidc.write_accounts()
        third = (Browser(app), httpx.AsyncClient())
        refused = await _sign_in(third, tenant, person)
        await third[0].close()
        await third[1].aclose()
        assert refused.status_code == 403
        assert "none of your groups" in refused.text
        assert (await second[0].get(f"/t/{tenant.slug}/")).status_code in (303, 401)
        open_sessions = await owner.fetchval(
            "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id "
            "WHERE u.email = $1 AND s.ended_at IS NULL",
            email,
        )
        assert open_sessions == 0
    finally:
        await second[0].close()
        await second[1].aclose()


async def test_a_disabled_user_is_refused(
    clients: tuple[Browser, httpx.AsyncClient], tenant: TenantContext, person: str
) -> None:
    assert (await _sign_in(clients, tenant, person)).status_code == 303
    user = await identity.find_user(f"{person}@sso.test")
    assert user is not None
    await identity.set_user_active(user.id, False, actor=SYSTEM, meta=RequestMeta())
    again = await _sign_in(clients, tenant, person)
    assert again.status_code == 403
    assert "disabled" in again.text


async def test_an_email_domain_not_allowed_is_refused(
    clients: tuple[Browser, httpx.AsyncClient], tenant: TenantContext, oidc: OidcProvider
) -> None:
    login = f"x{uuid.uuid4().hex[:8]}"
    oidc.add(login, f"{login}@elsewhere.test", ["qa"])
    response = await _sign_in(clients, tenant, login)
    assert response.status_code == 403
    assert "email domain" in response.text


async def _real_token(
    oidc: OidcProvider, login: str, client_id: str = "opencdmo"
) -> tuple[str, str]:
    """A real ID token from the provider for ``client_id`` (PKCE by hand, as a relying party
    does), with the nonce it carries."""
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    client = next(c for c in CLIENTS if c["client_id"] == client_id)
    nonce, verifier = uuid.uuid4().hex, uuid.uuid4().hex * 2
    async with AsyncOAuth2Client(
        client_id,
        client["client_secret"],
        scope="openid email groups",
        redirect_uri=client["redirect_uris"][0],
        code_challenge_method="S256",
    ) as rp:
        url, _ = rp.create_authorization_url(
            f"{oidc.issuer}/auth", code_verifier=verifier, nonce=nonce, state="s", max_age=3600
        )  # max_age: the token carries auth_time
        async with httpx.AsyncClient() as at_provider:
            callback = await sign_in_at_provider(at_provider, url, login)
        code = parse_qs(urlsplit(callback).query)["code"][0]
        token = await rp.fetch_token(f"{oidc.issuer}/token", code=code, code_verifier=verifier)
    return str(token["id_token"]), nonce


async def test_a_token_for_another_audience_is_refused(
    settings: Settings, oidc: OidcProvider, person: str
) -> None:
    id_token, nonce = await _real_token(oidc, person, "other-app")
    with pytest.raises(NotAuthenticated, match="aud"):
        await sso_provider.verify_id_token(settings, _config(oidc), id_token, nonce)


async def test_the_real_token_passes_and_an_expired_one_is_refused(
    settings: Settings, oidc: OidcProvider, person: str
) -> None:
    id_token, nonce = await _real_token(oidc, person)
    claims = await sso_provider.verify_id_token(settings, _config(oidc), id_token, nonce)
    assert claims["sub"] == person
    later = int(claims["exp"]) + settings.sso_clock_skew_seconds + 1
    with pytest.raises(NotAuthenticated, match="expired"):
        await sso_provider.verify_id_token(settings, _config(oidc), id_token, nonce, now=later)
    with pytest.raises(NotAuthenticated, match="nonce"):
        await sso_provider.verify_id_token(settings, _config(oidc), id_token, "another-nonce")


def _tampered(id_token: str) -> str:
    header, payload, signature = id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["email"] = "someone.else@sso.test"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


async def test_a_tampered_id_token_is_refused(
    settings: Settings, oidc: OidcProvider, person: str
) -> None:
    id_token, nonce = await _real_token(oidc, person)
    with pytest.raises(NotAuthenticated, match="not validly signed"):
        await sso_provider.verify_id_token(settings, _config(oidc), _tampered(id_token), nonce)


async def test_a_rotated_key_is_fetched_once_from_the_jwks(
    clients: tuple[Browser, httpx.AsyncClient],
    tenant: TenantContext,
    person: str,
    oidc: OidcProvider,
    settings: Settings,
) -> None:
    assert (await _sign_in(clients, tenant, person)).status_code == 303
    cached = await sso_provider.key_set(settings, _config(oidc))
    assert [k.kid for k in cached.keys] == [oidc.kid]
    oidc.restart(f"key-{uuid.uuid4().hex[:6]}")  # the provider signs with a new key now
    again = (Browser(clients[0].http._transport.app), httpx.AsyncClient())  # type: ignore[attr-defined]
    try:
        assert (await _sign_in(again, tenant, person)).status_code == 303
    finally:
        await again[0].close()
        await again[1].aclose()
    refreshed = await sso_provider.key_set(settings, _config(oidc))
    assert [k.kid for k in refreshed.keys] == [oidc.kid]


async def test_a_signature_by_reauthentication_checks_auth_time(
    clients: tuple[Browser, httpx.AsyncClient],
    tenant: TenantContext,
    person: str,
    settings: Settings,
    owner: asyncpg.Connection,
) -> None:
    assert (await _sign_in(clients, tenant, person)).status_code == 303
    _, answer = await _flow(*clients, f"/t/{tenant.slug}/sso/reauthenticate", person)
    assert answer.status_code == 200, answer.text
    code = _code_of(answer.text)
    signer = await _signer(tenant, person)
    view = await _sign(settings, signer, code)
    assert view.method == "reauthentication"
    assert "re-authenticated with the identity provider" in view.manifestation()
    with pytest.raises(NotAuthenticated, match="signing code"):
        await identity.reauthenticate(settings, signer, code)  # single use
    started = await owner.fetchval(
        "SELECT max(started_at) FROM sso_requests WHERE purpose = 'signing' AND for_tenant = $1",
        tenant.tenant_id,
    )
    assert started is not None


async def test_the_signature_dialogs_ask_for_what_the_signing_method_needs(
    clients: tuple[Browser, httpx.AsyncClient],
    tenant: TenantContext,
    person: str,
    world: World,
    oidc: OidcProvider,
) -> None:
    await tenancy.add_member(tenant, world["handler"].user_id, ["materials_handler"])
    lot = await lot_in_quarantine(tenant, await member_as(tenant, world["handler"]))
    assert (await _sign_in(clients, tenant, person)).status_code == 303
    path = f"/t/{tenant.slug}/lots/{lot.id}"
    by_code = (await clients[0].get(path)).text
    assert 'id="sign-release-password" name="password" type="text"' in by_code
    assert "Signing code (from SSO Test CDMO)" in by_code
    assert "Password (electronic signature)" not in by_code
    back = f"/t/{tenant.slug}/sso/reauthenticate?back=/t/{tenant.slug}/lots/{lot.id}"
    assert f'href="{back}"' in by_code.replace("%2F", "/")
    # The link starts a re-authentication for this signer, back to the lot.
    started = await clients[0].get(back)
    assert started.status_code == 303 and "prompt=login" in started.headers["location"]

    await sso.set_config(tenant.tenant_id, _config(oidc, signing="password", label="Acme ID"))
    by_password = (await clients[0].get(path)).text
    assert "Signing password" in by_password and "Signing code" not in by_password
    assert f'href="/t/{tenant.slug}/sso/signing-password"' in by_password
    assert "/sso/reauthenticate" not in by_password


def _code_of(page: str) -> str:
    return page.split('<code class="signing-code" data-signing-code>')[1].split("</code>")[0]


async def _sign(settings: Settings, signer: TenantContext, secret: str) -> Any:
    """A real signature on a record, with the signer's re-authentication ``secret``."""
    from opencdmo.db.tx import unit_of_work
    from opencdmo.signatures import service as signatures

    record = signatures.SignedRecord("sso_test", uuid.uuid4().hex, "1", None, {"n": 1})
    signing = await signatures.prepare(settings, signer, "reviewed", "SSO test", secret)
    async with unit_of_work(signer):
        return await signatures.apply(signer, signing, record)


async def _signer(tenant: TenantContext, login: str) -> TenantContext:
    from dataclasses import replace

    user = await identity.find_user(f"{login}@sso.test")
    assert user is not None
    fresh = await tenancy.internal_context(tenant.tenant_id, SYSTEM, RequestMeta())
    assert fresh is not None
    return replace(fresh, actor=Actor(user.id, user.email, user.full_name))


async def test_a_signature_with_a_signing_password(
    clients: tuple[Browser, httpx.AsyncClient],
    tenant: TenantContext,
    person: str,
    settings: Settings,
    oidc: OidcProvider,
) -> None:
    await sso.set_config(tenant.tenant_id, _config(oidc, signing="password"))
    assert (await _sign_in(clients, tenant, person)).status_code == 303
    page = await clients[0].get(f"/t/{tenant.slug}/sso/signing-password")
    assert page.status_code == 200 and "One-time code" in page.text
    form = {"new_password": "signing-pass-phrase-77", "confirm_password": "signing-pass-phrase-77"}
    refused = await clients[0].send(
        "POST", f"/t/{tenant.slug}/sso/signing-password", data={**form, "code": "made-up"}
    )
    assert refused.status_code == 401 and "signing code is not valid" in refused.text
    _, answer = await _flow(*clients, f"/t/{tenant.slug}/sso/reauthenticate", person)
    code = _code_of(answer.text)
    done = await clients[0].send(
        "POST", f"/t/{tenant.slug}/sso/signing-password", data={**form, "code": code}
    )
    assert done.status_code == 200 and "Signing password set" in done.text, done.text
    signer = await _signer(tenant, person)
    view = await _sign(settings, signer, "signing-pass-phrase-77")
    assert view.method == "signing_password"
    assert view.manifestation().endswith("· signing password")
    with pytest.raises(NotAuthenticated, match="signing password"):
        await identity.reauthenticate(settings, signer, "wrong-pass-phrase-77")


def test_the_manifest_section_is_checked(tmp_path: Path) -> None:
    from opencdmo.tenancy.manifest import ManifestError, load

    folder = tmp_path / "sso-cdmo"
    folder.mkdir()
    manifest = folder / "tenant.yaml"
    section = (
        "sso:\n  issuer: https://login.example\n  client_id: c\n"
        "  client_secret_env: OPENCDMO_SSO_SECRET\n  roles: {qa: [qa_approver]}\n"
    )
    manifest.write_text("name: SSO CDMO\nkind: cdmo\n" + section)
    loaded = load(manifest).sections["sso"]
    assert loaded.issuer == "https://login.example" and loaded.password_sign_in is True
    manifest.write_text("name: SSO CDMO\nkind: cdmo\n" + section + "  client_secret: x\n")
    with pytest.raises(ManifestError, match="client_secret"):
        load(manifest)
    manifest.write_text("name: SSO CDMO\nkind: cdmo\n" + section.replace("qa_approver", "wizard"))
    with pytest.raises(ManifestError, match="unknown role"):
        load(manifest)


def test_the_provider_is_installed_by_the_project() -> None:
    here = Path(__file__).parents[1] / "oidc"
    assert (here / "package-lock.json").is_file() and (here / "package.json").is_file()


async def test_a_re_authentication_older_than_the_signing_request_is_refused(
    settings: Settings,
    oidc: OidcProvider,
    person: str,
    tenant: TenantContext,
    clients: tuple[Browser, httpx.AsyncClient],
) -> None:
    """A real token whose ``auth_time`` is before the signing request began (the provider
    reused an earlier sign-in) gives no signing code."""
    from datetime import UTC, datetime

    from opencdmo.identity.sso.queries import RequestRow

    assert (await _sign_in(clients, tenant, person)).status_code == 303
    id_token, nonce = await _real_token(oidc, person)
    claims = await sso_provider.verify_id_token(settings, _config(oidc), id_token, nonce)
    signer = await _signer(tenant, person)
    began = datetime.fromtimestamp(int(claims["auth_time"]) + 1, UTC)
    request = RequestRow(
        uuid.uuid4(), tenant.tenant_id, "signing", nonce, "", "", signer.user_id, began
    )
    with pytest.raises(NotAuthenticated, match="did not re-authenticate"):
        await sso._signing_grant(tenant, _config(oidc), request, claims, RequestMeta())


async def test_applying_a_manifest_stores_and_removes_the_providers_configuration(
    app: Litestar, tmp_path: Path, oidc: OidcProvider
) -> None:
    from opencdmo.tenancy.provision import apply_path

    slug = f"sso-m-{uuid.uuid4().hex[:6]}"
    folder = tmp_path / slug
    folder.mkdir()
    base = "name: SSO Manifest CDMO\nkind: cdmo\n"
    section = (
        f"sso:\n  issuer: {oidc.issuer}\n  client_id: opencdmo\n"
        f"  client_secret_env: {SECRET_ENV}\n  roles: {{qa: [qa_approver]}}\n"
        "  password_sign_in: false\n"
    )
    (folder / "tenant.yaml").write_text(base + section)
    lines: list[str] = []
    await apply_path(tmp_path, lines.append)
    assert any("single sign-on configured" in line for line in lines)
    found = await sso.tenant_sso(slug)
    assert found is not None and found.config.password_sign_in is False
    (folder / "tenant.yaml").write_text(base)
    await apply_path(tmp_path, lines.append)
    assert await sso.tenant_sso(slug) is None
