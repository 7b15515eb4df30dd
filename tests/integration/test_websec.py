"""Web security: session-bound CSRF tokens, the Origin check, security headers, request ids."""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg
import pytest

from opencdmo.webapp.csrf import origin_problem
from opencdmo.webapp.headers import CONTENT_SECURITY_POLICY
from tests.conftest import World
from tests.integration.export_flow import export_by_form
from tests.integration.job_worker import job_worker

__all__ = ["job_worker"]

# --- CSRF bound to the session -----------------------------------------------------------


async def test_another_sessions_cookie_and_token_pair_is_refused(browser: Any) -> None:
    victim, attacker = await browser("admin"), await browser("author")
    # The attacker's own pair works for the attacker...
    own = await attacker.send("POST", "/t/alpha/tokens", data={"name": "mine"})
    assert own.status_code == 200
    # ...but planting the attacker's CSRF cookie and token next to the victim's session fails.
    victim.http.cookies.set("opencdmo_csrf", attacker.http.cookies.get("opencdmo_csrf") or "x")
    forged = await victim.http.post(
        "/t/alpha/tokens",
        data={"name": "forged", "_csrf_token": attacker.csrf},
        headers={"x-csrftoken": attacker.csrf},
    )
    assert forged.status_code == 403
    assert "CSRF check failed" in forged.text
    assert "does not belong to this session" in forged.text
    # The victim's own token still works.
    assert (await victim.send("POST", "/t/alpha/tokens", data={"name": "ok"})).status_code == 200


async def test_the_pre_login_token_signs_in_and_is_rotated(world: World, browser: Any) -> None:
    client = await browser()
    await client.prime()
    before_cookie = client.http.cookies.get("opencdmo_csrf")
    before_token = client.csrf
    response = await client.http.post(
        "/login",
        data={"email": world["viewer"].email, "password": "correct-horse-battery-42"}
        | {"_csrf_token": before_token},
    )
    assert response.status_code == 303
    assert client.http.cookies.get("opencdmo_csrf") not in (None, before_cookie)
    # Signed in, the token from before sign-in is worthless.
    stale = await client.http.post(
        "/logout", data={"_csrf_token": before_token}, headers={"x-csrftoken": before_token}
    )
    assert stale.status_code == 403
    await client.refresh_csrf()
    assert (await client.send("POST", "/logout")).status_code == 303


async def test_a_pre_login_token_works_only_with_its_own_cookie(world: World, browser: Any) -> None:
    first, second = await browser(), await browser()
    await first.prime()
    await second.prime()
    response = await second.http.post(
        "/login",
        data={
            "email": world["viewer"].email,
            "password": "correct-horse-battery-42",
            "_csrf_token": first.csrf,
        },
    )
    assert response.status_code == 403
    assert "opencdmo_session" not in response.headers.get("set-cookie", "")


async def test_a_token_from_another_secret_is_refused(browser: Any) -> None:
    from opencdmo.webapp.csrf import mint

    client = await browser("admin")
    session = client.http.cookies.get("opencdmo_session")
    assert session
    forged = mint(b"another-secret", "session:anything")
    response = await client.http.post(
        "/t/alpha/tokens", data={"name": "x"}, headers={"x-csrftoken": forged}
    )
    assert response.status_code == 403


# --- Origin ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"origin": "https://evil.example"}, True),
        ({"origin": "null"}, True),
        ({"origin": "https://testserver.evil.example"}, True),
        ({"referer": "https://evil.example/page"}, True),
        ({"origin": "https://testserver"}, False),
        ({"referer": "https://testserver/t/alpha/tokens"}, False),
        ({}, False),
    ],
)
async def test_foreign_origins_are_refused(
    browser: Any, headers: dict[str, str], refused: bool
) -> None:
    client = await browser("admin")
    response = await client.send("POST", "/t/alpha/tokens", data={"name": "o"}, headers=headers)
    assert response.status_code == (403 if refused else 200), response.text
    if refused:
        assert "another site" in response.text or "opaque origin" in response.text


async def test_bearer_calls_need_neither_token_nor_origin(world: World, browser: Any) -> None:
    from opencdmo.identity import service as identity
    from tests.conftest import as_actor

    token, _ = await identity.create_token(
        as_actor(world.alpha, world["admin"]), world["admin"].user_id, "script"
    )
    response = await (await browser()).http.post(
        "/api/v1/t/alpha/tokens",
        json={"name": "from a script"},
        headers={"Authorization": f"Bearer {token}", "origin": "https://elsewhere.example"},
    )
    assert response.status_code == 201


def test_trusted_origins_and_proxies() -> None:
    def scope(origin: str, scheme: str = "http") -> Any:
        return {
            "scheme": scheme,
            "headers": [(b"host", b"cdmo.example"), (b"origin", origin.encode())],
        }

    trusted = frozenset({"https://portal.example"})
    assert origin_problem(scope("https://portal.example"), trusted) is None
    # TLS ends at a proxy: the app sees http, the browser https.
    assert origin_problem(scope("https://cdmo.example"), trusted) is None
    # A downgrade is not the same origin.
    assert origin_problem(scope("http://cdmo.example", "https"), trusted) is not None
    assert origin_problem(scope("https://other.example"), trusted) is not None


# --- the refusal itself ------------------------------------------------------------------


async def test_csrf_refusal_is_a_logged_403_with_the_request_id(
    browser: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = await browser("viewer")
    caplog.set_level(logging.INFO, logger="opencdmo")
    page = await client.http.post("/logout", data={})
    assert page.status_code == 403
    assert "CSRF check failed: no CSRF token was sent" in page.text
    request_id = page.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    access = [r for r in caplog.records if r.name == "opencdmo.access"]
    assert [r.getMessage() for r in access] == ["POST /logout 403"]
    warning = next(r for r in caplog.records if r.name == "opencdmo.csrf")
    assert warning.levelno == logging.WARNING
    assert warning.request_id == request_id  # type: ignore[attr-defined]
    assert access[0].request_id == request_id  # type: ignore[attr-defined]
    api = await client.http.post("/api/v1/t/alpha/tokens", json={"name": "x"})
    assert api.status_code == 403
    error = api.json()["error"]
    assert error["request_id"] == api.headers["x-request-id"]
    assert "CSRF check failed" in error["message"]
    # The session is untouched: the refused sign-out did not sign out.
    assert (await client.get("/t/alpha/")).status_code == 200


# --- request ids -------------------------------------------------------------------------


async def test_a_well_formed_client_request_id_is_kept_apart(
    world: World, browser: Any, owner: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    client = await browser("admin")
    caplog.set_level(logging.INFO, logger="opencdmo.access")
    response = await client.send(
        "POST",
        "/api/v1/t/alpha/tokens",
        json={"name": "rid"},
        headers={"x-request-id": "job-42.a_b"},
    )
    assert response.status_code == 201
    server_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", server_id)
    stored = await owner.fetchval(
        "SELECT request_id FROM audit_events WHERE action = 'token.created' AND entity_id = $1",
        response.json()["details"]["id"],
    )
    assert stored == server_id
    line = next(r for r in caplog.records if r.getMessage() == "POST /api/v1/t/alpha/tokens 201")
    assert line.client_request_id == "job-42.a_b"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "sent", ["x" * 65, "two words", "<script>", "id\u00e9", "a;b", "../../etc", "x\t"]
)
async def test_a_malformed_client_request_id_is_dropped(
    browser: Any, owner: asyncpg.Connection, caplog: pytest.LogCaptureFixture, sent: str
) -> None:
    client = await browser("admin")
    caplog.set_level(logging.INFO, logger="opencdmo.access")
    response = await client.send(
        "POST",
        "/api/v1/t/alpha/tokens",
        json={"name": "rid"},
        headers={"x-request-id": sent.encode()},
    )
    assert response.status_code == 201
    assert response.headers["x-request-id"] != sent
    line = next(r for r in caplog.records if r.getMessage() == "POST /api/v1/t/alpha/tokens 201")
    assert line.client_request_id is None  # type: ignore[attr-defined]
    stored = await owner.fetchval(
        "SELECT request_id FROM audit_events WHERE action = 'token.created' AND entity_id = $1",
        response.json()["details"]["id"],
    )
    assert stored == response.headers["x-request-id"]


# --- security headers --------------------------------------------------------------------


def _assert_hardened(response: Any, *, cached: bool = False) -> None:
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    if not cached:
        assert response.headers["cache-control"] == "no-store"


async def test_security_headers_on_pages_api_errors_and_assets(browser: Any) -> None:
    client = await browser("admin")
    responses = {
        "page": await client.get("/t/alpha/"),
        "fragment": await client.get("/t/alpha/members", headers={"HX-Request": "true"}),
        "api": await client.get("/api/v1/t/alpha/members"),
        "api error": await client.get("/api/v1/t/alpha/audit", params={"before": "0"}),
        "page error": await client.get("/t/no-such-tenant/"),
        "unknown path": await client.get("/no/such/page"),
        "sign-in page": await (await browser()).get("/login"),
        "anonymous api": await (await browser()).get("/api/v1/t/alpha/members"),
        "csrf refusal": await client.http.post("/t/alpha/tokens", data={"name": "x"}),
        "schema": await client.get("/schema/openapi.json"),
    }
    expected = {
        "page": 200,
        "fragment": 200,
        "api": 200,
        "api error": 400,
        "page error": 404,
        "unknown path": 404,
        "sign-in page": 200,
        "anonymous api": 401,
        "csrf refusal": 403,
        "schema": 200,
    }
    assert {k: r.status_code for k, r in responses.items()} == expected
    for response in responses.values():
        _assert_hardened(response)
    asset = await client.get("/static/css/app.css")
    assert asset.status_code == 200
    _assert_hardened(asset, cached=True)
    assert asset.headers.get("cache-control") != "no-store"


async def test_htmx_is_configured_for_the_policy(browser: Any) -> None:
    page = (await (await browser("admin")).get("/t/alpha/")).text
    config = re.search(r'<meta name="htmx-config" content=\'([^\']+)\'>', page)
    assert config
    import json

    assert json.loads(config.group(1)) == {
        "includeIndicatorStyles": False,
        "allowEval": False,
        "allowScriptTags": False,
    }


# --- audit CSV export --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTAB", "'\tTAB"),
        ("\rCR", "'\rCR"),
        ("plain = text", "plain = text"),
        (None, ""),
        (42, 42),
    ],
)
def test_csv_cells_that_would_be_formulas_are_neutralised(cell: Any, written: Any) -> None:
    from opencdmo.exports.audit_trail import csv_cell

    assert csv_cell(cell) == written


@pytest.mark.usefixtures("job_worker")
async def test_csv_export_neutralises_formulas_and_names_its_type_once(
    world: World, browser: Any
) -> None:
    import csv
    import io
    import uuid

    from opencdmo.identity import service as identity
    from opencdmo.tenancy import service as tenancy
    from tests.conftest import PASSWORD, Persona, as_actor

    names = ["=cmd|' /C calc'!A0", "+SUM(1)", "-1+1", "@IMPORT(x)"]
    for name in names:
        user = await identity.create_user(f"csv-{uuid.uuid4().hex[:8]}@alpha.test", name, PASSWORD)
        await tenancy.add_member(world.alpha, user.id, ["viewer"])
        persona = Persona("csv", user.email, user.full_name, user.id)
        await identity.create_token(as_actor(world.alpha, persona), user.id, "csv check")
    client = await browser("admin")
    query = {"format": "csv", "action": "token.created"}
    for sending in (
        export_by_form(client, "alpha", "/t/alpha/audit/export", query),
        client.get("/api/v1/t/alpha/audit/export", params=query),
    ):
        exported = await sending
        assert exported.status_code == 200
        assert exported.headers["content-type"] == "text/csv; charset=utf-8"
        rows = list(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff"))))
        written = {r["actor_name"] for r in rows}
        assert {"'" + name for name in names} <= written
        assert not any(n.startswith(("=", "+", "-", "@")) for n in written)


async def test_the_export_is_documented_as_csv_and_json(browser: Any) -> None:
    schema = (await (await browser()).get("/schema/openapi.json")).json()
    success = schema["paths"]["/api/v1/t/{slug}/audit/export"]["get"]["responses"]["200"]
    assert sorted(success["content"]) == ["application/json", "text/csv"]
    assert success["content"]["text/csv"]["schema"]["type"] == "string"


def test_log_lines_carry_both_ids() -> None:
    import json

    from opencdmo.webapp.logs import JsonFormatter, client_request_id_var, request_id_var

    record = logging.makeLogRecord({"name": "opencdmo.test", "msg": "hello", "levelname": "INFO"})

    def formatted(client_id: str | None) -> dict[str, Any]:
        server, client = request_id_var.set("f" * 32), client_request_id_var.set(client_id)
        try:
            return dict(json.loads(JsonFormatter().format(record)))
        finally:
            request_id_var.reset(server)
            client_request_id_var.reset(client)

    line = formatted("job-7")
    assert (line["request_id"], line["client_request_id"]) == ("f" * 32, "job-7")
    assert "client_request_id" not in formatted(None)
