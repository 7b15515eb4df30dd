"""Pages, fragments, errors, the API schema, static assets and health endpoints."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from typing import Any

import asyncpg
import pytest
from litestar import Litestar

from tests.conftest import World
from tests.integration.export_flow import export_by_form
from tests.integration.job_worker import job_worker

__all__ = ["job_worker"]


async def test_pages_render_for_an_admin(browser: Any) -> None:
    client = await browser("admin")
    for path, words in [
        ("/t/alpha/", "Alpha main site"),
        ("/t/alpha/members", "Invite a person"),
        ("/t/alpha/audit", "Audit trail"),
        ("/t/alpha/tokens", "Create token"),
        ("/account", "Change password"),
    ]:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert words in response.text, path
        assert "htmx-2.0.11/htmx.min.js" in response.text
        assert re.search(r'<meta name="csrf-token" content="[0-9a-f]{128}">', response.text)


async def test_times_are_shown_in_the_sites_zone(browser: Any) -> None:
    page = (await (await browser("admin")).get("/t/alpha/audit")).text
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CES?T", page), "Europe/Berlin times expected"


async def test_tenant_switcher_lists_only_my_tenants(world: World, browser: Any) -> None:
    from opencdmo.tenancy import service as tenancy

    await tenancy.add_member(world.beta, world["viewer"].user_id, ["viewer"])
    client = await browser("viewer")
    page = (await client.get("/t/alpha/")).text
    assert 'value="alpha"' in page
    assert 'value="beta"' in page
    assert (await client.get("/t/beta/")).status_code == 200
    outsider = (await (await browser("outsider")).get("/t/beta/")).text
    assert 'value="alpha"' not in outsider


async def test_htmx_request_gets_only_the_fragment(browser: Any) -> None:
    client = await browser("admin")
    response = await client.get("/t/alpha/members", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div id="members">')
    assert "<html" not in response.text


async def test_members_form_invite_and_role_change(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    client = await browser("admin")
    email = f"newbie-{uuid.uuid4().hex[:6]}@alpha.test"
    response = await client.send(
        "POST",
        "/t/alpha/invitations",
        data={"_csrf_token": client.csrf, "email": email, "roles": ["viewer", "qc_analyst"]},
    )
    assert response.status_code == 200
    assert f"Invitation for {email} created" in response.text
    link = re.search(
        r'<code class="token">https://testserver(/invitations/accept\?token=[^<]+)<', response.text
    )
    assert link is not None
    again = await client.send(
        "POST",
        "/t/alpha/invitations",
        data={"_csrf_token": client.csrf, "email": email, "roles": "viewer"},
    )
    assert again.status_code == 409
    assert "already pending" in again.text
    # The person accepts with their own name and password, and has only the offered roles.
    newcomer = await browser()
    await newcomer.get(link.group(1))
    accepted = await newcomer.send(
        "POST",
        "/invitations/accept",
        data={
            "_csrf_token": newcomer.csrf,
            "token": link.group(1).split("token=")[1],
            "mode": "new",
            "full_name": "New Bie",
            "new_password": "a-fine-own-passphrase",
            "confirm_password": "a-fine-own-passphrase",
        },
    )
    assert accepted.status_code == 303, accepted.text
    assert accepted.headers["location"] == "/t/alpha/"
    assert (await newcomer.get("/t/alpha/audit")).status_code == 403
    members = (await client.get("/api/v1/t/alpha/members")).json()
    newbie = next(m for m in members if m["email"] == email)
    assert newbie["roles"] == ["qc_analyst", "viewer"]
    assert newbie["full_name"] == "New Bie"
    changed = await client.send(
        "POST",
        f"/t/alpha/members/{newbie['id']}/roles",
        data={"_csrf_token": client.csrf, "roles": "viewer", "reason": "QC cover ended"},
    )
    assert changed.status_code == 200
    assert "updated" in changed.text
    reason = await owner.fetchval(
        "SELECT reason FROM audit_events WHERE action = 'member.roles_changed' AND entity_id = $1 "
        "ORDER BY seq DESC LIMIT 1",
        newbie["id"],
    )
    assert reason == "QC cover ended"


async def test_invite_form_keeps_what_was_typed(browser: Any, owner: asyncpg.Connection) -> None:
    client = await browser("admin")
    email = f"typed-{uuid.uuid4().hex[:6]}@alpha.test"
    bad = await client.send(
        "POST",
        "/t/alpha/invitations",
        data={"_csrf_token": client.csrf, "email": email, "roles": ["viewer", "wizard"]},
        headers={"HX-Request": "true"},
    )
    assert bad.status_code == 422
    form = bad.text[bad.text.index('id="invite-form"') :]
    assert f'value="{email}"' in form
    assert 'value="viewer" checked' in form
    # The message sits next to the roles, not at the top of the page.
    assert re.search(r'</fieldset>\s*<span class="field-error" role="alert">Unknown role', form)
    no_at = await client.send(
        "POST",
        "/t/alpha/invitations",
        data={"_csrf_token": client.csrf, "email": "not-an-address", "roles": "viewer"},
    )
    assert no_at.status_code == 422
    assert 'value="not-an-address"' in no_at.text
    # The message follows the field it is about, which points to it.
    field = re.search(
        r'<input [^>]*value="not-an-address"[^>]*>\s*<span class="field-error"', no_at.text
    )
    assert field and 'aria-describedby="invite-email-error"' in field.group(0)
    assert await owner.fetchval("SELECT count(*) FROM invitations WHERE email = $1", email) == 0


async def test_role_form_needs_a_reason_and_keeps_the_choice(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    from opencdmo.identity import service as identity
    from opencdmo.tenancy import service as tenancy

    user = await identity.create_user(
        f"r-{uuid.uuid4().hex[:6]}@alpha.test", "Reason Less", "correct-horse-battery-42"
    )
    membership = await tenancy.add_member(world.alpha, user.id, ["viewer"])
    client = await browser("admin")
    response = await client.send(
        "POST",
        f"/t/alpha/members/{membership}/roles",
        data={"_csrf_token": client.csrf, "roles": ["viewer", "qc_analyst"], "reason": "  "},
    )
    assert response.status_code == 422
    # The member's roles dialog comes back open, as typed, with the message in it.
    dialog = response.text[response.text.index(f'id="roles-{membership}"') :]
    assert dialog[: dialog.index(">")].endswith(" data-open")
    dialog = dialog[: dialog.index("</form>")]
    assert 'value="qc_analyst" checked' in dialog
    assert "Give a reason" in dialog
    roles = await owner.fetchval(
        "SELECT array_agg(role) FROM role_assignments WHERE membership_id = $1", membership
    )
    assert roles == ["viewer"]


async def test_admin_cannot_deactivate_themselves(world: World, browser: Any) -> None:
    client = await browser("admin")
    members = (await client.get("/api/v1/t/alpha/members")).json()
    me = next(m for m in members if m["email"] == world["admin"].email)
    response = await client.send(
        "PUT", f"/api/v1/t/alpha/members/{me['id']}/status", json={"active": False}
    )
    assert response.status_code == 409
    assert "your own membership" in response.json()["error"]["message"]
    # The page does not offer it: no Deactivate button or dialog on one's own row, and the
    # row says whose it is; another member keeps the dialog (Deactivate or Reactivate).
    page = (await client.get("/t/alpha/members")).text
    own = page.split(f'id="member-{me["id"]}"')[1].split("</tr>")[0]
    assert "(you)" in own and "Deactivate" not in own
    assert f'id="status-{me["id"]}"' not in page
    other = next(m for m in members if m["email"] == world["viewer"].email)
    row = page.split(f'id="member-{other["id"]}"')[1].split("</tr>")[0]
    assert "activate…" in row and "(you)" not in row
    assert f'id="status-{other["id"]}"' in page


async def test_api_errors_have_one_shape(browser: Any) -> None:
    client = await browser("admin")
    cases = [
        await client.send(
            "PUT",
            "/api/v1/t/alpha/members/00000000-0000-0000-0000-000000000000/roles",
            json={"roles": ["viewer"]},
        ),
        await client.send(
            "PUT",
            "/api/v1/t/alpha/members/00000000-0000-0000-0000-000000000000/roles",
            content=b"{not json",
            headers={"content-type": "application/json"},
        ),
        await client.send(
            "POST", "/api/v1/t/alpha/invitations", json={"email": "a@b.test", "roles": "viewer"}
        ),
        await client.send(
            "POST", "/api/v1/t/alpha/invitations", json={"email": "a@b.test", "roles": ["wizard"]}
        ),
        await client.get("/api/v1/t/alpha/audit?limit=100000"),
        await client.get("/api/v1/t/alpha/audit?since=yesterday"),
    ]
    assert [r.status_code for r in cases] == [404, 400, 422, 422, 400, 422]
    for response in cases:
        error = response.json()["error"]
        assert set(error) == {"status", "title", "message", "details", "request_id"}
        assert error["message"]
        assert error["status"] == response.status_code
        assert response.headers["x-request-id"] == error["request_id"]


async def test_unknown_pages_and_malformed_ids(browser: Any) -> None:
    client = await browser("admin")
    page = await client.get("/no/such/page")
    assert page.status_code == 404
    assert "There is nothing at this address" in page.text and "Not Found" not in page.text
    api = await client.get("/api/v1/t/alpha/members/not-a-uuid")
    assert api.status_code == 404
    assert api.json()["error"]["message"].startswith("There is nothing at this address")
    method = await client.get("/t/alpha/members/not-a-uuid/roles")
    assert method.status_code == 405
    assert "does not take that kind of request" in method.text


@pytest.mark.usefixtures("job_worker")
async def test_audit_page_filters_and_export(world: World, browser: Any) -> None:
    from opencdmo.identity import service as identity
    from opencdmo.tenancy import service as tenancy
    from tests.conftest import PASSWORD, as_actor

    user = await identity.create_user(f"f-{uuid.uuid4().hex[:6]}@alpha.test", "Filtered", PASSWORD)
    await tenancy.add_member(as_actor(world.alpha, world["admin"]), user.id, ["viewer"])
    client = await browser("admin")
    page = await client.get("/t/alpha/audit", params={"action": "member.", "actor": "Admin"})
    assert page.status_code == 200
    actions = set(re.findall(r'data-action="([^"]+)"', page.text))
    assert actions
    assert all(a.startswith("member.") for a in actions)
    exported = await export_by_form(
        client, "alpha", "/t/alpha/audit/export", {"format": "csv", "action": "tenant."}
    )
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert [r["action"] for r in rows] == ["tenant.created"]
    assert len(rows[0]["hash"]) == 64
    as_json = await client.get("/api/v1/t/alpha/audit/export", params={"format": "json"})
    events = json.loads(as_json.text)
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert events[0]["action"] == "tenant.created"
    api = (await client.get("/api/v1/t/alpha/audit", params={"limit": 2})).json()
    assert len(api["events"]) == 2
    assert api["next_before"] is not None
    older = (
        await client.get("/api/v1/t/alpha/audit", params={"limit": 2, "before": api["next_before"]})
    ).json()
    assert older["events"][0]["seq"] < api["events"][-1]["seq"]
    exports = (
        await client.get("/api/v1/t/alpha/audit", params={"action": "audit.exported"})
    ).json()
    assert len(exports["events"]) >= 2


async def test_openapi_schema_documents_api_and_errors(app: Litestar, browser: Any) -> None:
    schema = (await (await browser()).get("/schema/openapi.json")).json()
    members = schema["paths"]["/api/v1/t/{slug}/members"]["get"]
    assert {"200", "401", "403", "404"} <= set(members["responses"])
    assert "ErrorBody" in json.dumps(schema["components"])
    assert not any(p.startswith("/t/") for p in schema["paths"])


async def test_static_assets_are_served_locally(browser: Any) -> None:
    client = await browser()
    htmx = await client.get("/static/vendor/htmx-2.0.11/htmx.min.js")
    assert htmx.status_code == 200
    assert "htmx" in htmx.text[:2000]
    assert (await client.get("/static/css/app.css")).status_code == 200
    page = (await client.get("/login")).text
    assert "http://" not in page.replace("http://www.w3.org", "")
    assert "https://" not in page
    # The page names its icon, so a browser does not ask for /favicon.ico (a 404 on every page).
    icon = re.search(r'<link rel="icon" href="(/static/[^"]+)" type="image/svg\+xml">', page)
    assert icon is not None
    served = await client.get(icon.group(1))
    assert served.status_code == 200 and served.headers["content-type"] == "image/svg+xml"
    assert served.text.startswith("<svg")


async def test_liveness_and_readiness(browser: Any) -> None:
    client = await browser()
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ok"}


async def test_login_redirects_back_to_the_page_asked_for(world: World, browser: Any) -> None:
    client = await browser()
    first = await client.get("/t/alpha/members")
    assert first.headers["location"] == "/login?next=/t/alpha/members"
    await client.prime()
    response = await client.http.post(
        "/login",
        data={
            "email": world["admin"].email,
            "password": "correct-horse-battery-42",
            "next": "/t/alpha/members",
            "_csrf_token": client.csrf,
        },
    )
    assert response.headers["location"] == "/t/alpha/members"
    other = await browser()
    await other.prime()
    evil = await other.http.post(
        "/login",
        data={
            "email": world["admin"].email,
            "password": "correct-horse-battery-42",
            "next": "//evil.example/",
            "_csrf_token": other.csrf,
        },
    )
    assert evil.headers["location"] == "/"


async def test_menu_shows_only_what_the_roles_open(browser: Any) -> None:
    viewer = (await (await browser("viewer")).get("/t/alpha/")).text
    assert 'href="/t/alpha/members"' not in viewer
    assert 'href="/t/alpha/audit"' not in viewer
    admin = (await (await browser("admin")).get("/t/alpha/")).text
    assert 'href="/t/alpha/members"' in admin
    assert 'href="/t/alpha/audit"' in admin


async def test_what_the_app_made_at_start_is_out_of_the_collectors_rounds(app: Litestar) -> None:
    import gc

    assert gc.get_freeze_count() > 0
