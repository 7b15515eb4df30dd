"""Signing in again from a redirect: ``next`` leads to a page of this site, never to a form
action (POST only) and never off-site."""

from __future__ import annotations

import html
import re
import uuid
from dataclasses import dataclass

import pytest
from litestar import Litestar

from opencdmo.identity import service as identity
from opencdmo.scope import SYSTEM, RequestMeta
from opencdmo.tenancy import service as tenancy
from opencdmo.web.redirects import page_after_login
from tests.conftest import PASSWORD, Browser


@dataclass(frozen=True)
class Engineer:
    email: str
    slug: str


@pytest.fixture
async def engineer(app: Litestar) -> Engineer:
    """A process engineer who belongs to one fresh tenant only (their default landing page)."""
    slug = f"nx-{uuid.uuid4().hex[:8]}"
    meta = RequestMeta(request_id="test-login-next")
    ctx = await tenancy.create_tenant(slug, "Next Lab", "cdmo", SYSTEM, meta)
    user = await identity.create_user(f"{slug}@next.test", "Nia Next", PASSWORD)
    await tenancy.add_member(ctx, user.id, ["process_engineer"])
    return Engineer(user.email, slug)


async def _sign_in(client: Browser, email: str, target: str) -> str:
    await client.prime()
    response = await client.http.post(
        "/login",
        data={"email": email, "password": PASSWORD, "next": target, "_csrf_token": client.csrf},
    )
    assert response.status_code == 303, response.text
    return str(response.headers["location"])


def _hidden_next(page: str) -> str:
    found = re.search(r'name="next" value="([^"]*)"', page)
    assert found is not None
    return html.unescape(found.group(1))


async def test_signing_in_again_from_a_designer_action_lands_on_the_designer(
    app: Litestar, engineer: Engineer
) -> None:
    author = Browser(app)
    await author.login(engineer.email)
    created = await author.send(
        "POST", f"/api/v1/t/{engineer.slug}/recipes", json={"name": "Next recipe"}
    )
    assert created.status_code == 201, created.text
    designer = f"/t/{engineer.slug}/recipes/{created.json()['id']}/design"
    signed_out = Browser(app)
    refused = await signed_out.send(
        "POST", designer + "/move", data={"step": "x"}, headers={"hx-request": "true"}
    )
    assert refused.status_code == 401
    login_url = refused.headers["hx-redirect"]
    assert login_url == f"/login?next={designer}/move"
    login_page = await signed_out.get(login_url)
    assert _hidden_next(login_page.text) == designer
    landing = await _sign_in(signed_out, engineer.email, designer + "/move")
    assert landing == designer
    page = await signed_out.get(landing)
    assert page.status_code == 200
    assert "Next recipe" in page.text
    await author.close()
    await signed_out.close()


RECIPE = "/t/{slug}/recipes/0b3c6d1e-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/t/{slug}/members", "/t/{slug}/members"),
        ("/t/{slug}/", "/t/{slug}/"),
        (
            "/t/{slug}/hub?q=t%20cell&kind=unit_operation",
            "/t/{slug}/hub?q=t%20cell&kind=unit_operation",
        ),
        (RECIPE + "/compare?left=1&right=2", RECIPE + "/compare?left=1&right=2"),
        (RECIPE + "/design/move", RECIPE + "/design"),
        (RECIPE + "/submit?x=1", RECIPE),
        (RECIPE + "/retire", RECIPE),
        ("/t/{slug}/members/0b3c6d1e-0000-4000-8000-000000000002/roles", "/t/{slug}/members"),
        ("/t/{slug}/audit/export?format=csv", "/t/{slug}/audit"),
        ("/t/{slug}/recipes/not-a-uuid", "/t/{slug}/recipes"),
        ("/t/{slug}/no/such/page", "/t/{slug}"),
    ],
)
async def test_next_is_a_page_or_the_nearest_enclosing_page(
    app: Litestar, engineer: Engineer, target: str, expected: str
) -> None:
    target, expected = target.format(slug=engineer.slug), expected.format(slug=engineer.slug)
    client = Browser(app)
    login_page = await client.get("/login", params={"next": target})
    assert _hidden_next(login_page.text) == expected
    assert await _sign_in(client, engineer.email, target) == expected
    await client.close()


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/t/x",
        "///evil.example",
        "https://evil.example/",
        "http:/evil.example",
        "javascript:alert(1)",
        "/\\evil.example",
        "\\\\evil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/t/x\r\nSet-Cookie: a=b",
        "/\u200b/evil.example",
        "/t/{slug}/../../evil",
        "/t/{slug}/%2e%2e/members",
        "evil.example",
        "/api/v1/t/{slug}/recipes",
        "/static/css/app.css",
        "/login?next=/t/{slug}/members",
        "/logout",
        "",
    ],
)
async def test_off_site_or_not_a_page_leads_to_the_dashboard(
    app: Litestar, engineer: Engineer, target: str
) -> None:
    target = target.format(slug=engineer.slug)
    client = Browser(app)
    login_page = await client.get("/login", params={"next": target})
    assert login_page.status_code == 200
    assert _hidden_next(login_page.text) == ""
    # The default landing: "/", which leads a one-tenant person into their tenant.
    assert await _sign_in(client, engineer.email, target) == "/"
    landing = await client.get("/")
    assert landing.headers["location"] == f"/t/{engineer.slug}/"
    await client.close()


def test_a_kept_target_is_re_encoded_as_it_was_matched(app: Litestar) -> None:
    """The Location header carries exactly the path that was checked, percent-encoded."""
    assert page_after_login(app, "/t/%C3%A9t%C3%A9/members") == "/t/%C3%A9t%C3%A9/members"
    assert page_after_login(app, "/t/%41lpha/members") == "/t/Alpha/members"
    assert page_after_login(app, "/t/a b/members") is None
