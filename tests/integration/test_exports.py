"""Exports built by the job worker: the batch record's BatchML and the audit trail (CSV,
JSON), asked for from their pages and the API, built as the person who asked, kept in the
blob store and downloaded by that person only."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import replace
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from opencdmo.audit import queries as audit_queries
from opencdmo.batches import batchml, export, record
from opencdmo.db.jobs import Job
from opencdmo.exports import audit_trail
from opencdmo.exports import service as exports
from opencdmo.jobs import tasks
from opencdmo.jobs.worker import Worker
from opencdmo.settings import Settings
from tests.conftest import World
from tests.integration.batch_world import Plant, batch_of, new_plant
from tests.integration.export_flow import short_export_wait
from tests.integration.job_worker import job_worker

__all__ = ["job_worker", "short_export_wait"]


@pytest.fixture
async def plant(synced: Any, world: World, owner: asyncpg.Connection, settings: Settings) -> Plant:
    return await new_plant(world, owner, settings)


def _export_id(response: Any) -> UUID:
    assert response.status_code == 303, response.text
    found = re.search(r"/exports/([0-9a-f-]{36})$", response.headers["location"])
    assert found, response.headers["location"]
    return UUID(found.group(1))


async def _page_until_done(client: Any, slug: str, export_id: UUID) -> str:
    """The export's page, polled as its fragment polls itself, until it is built."""
    states = []
    for _ in range(300):
        page = await client.get(f"/t/{slug}/exports/{export_id}", headers={"HX-Request": "true"})
        assert page.status_code == 200, page.text
        state = re.search(r'data-state="(\w+)"', page.text)
        assert state, page.text
        states.append(state.group(1))
        if state.group(1) in ("done", "failed"):
            assert state.group(1) == "done", page.text
            return str(page.text)
        assert 'hx-trigger="every 1s"' in page.text
        await asyncio.sleep(0.1)
    raise AssertionError(f"never built: {states[-3:]}")


async def _actions(owner: asyncpg.Connection, export_id: UUID) -> list[str]:
    rows = await owner.fetch(
        "SELECT action FROM audit_events WHERE entity_type = 'export' AND entity_id = $1",
        str(export_id),
    )
    order = ["export.requested", "export.completed", "export.failed", "export.downloaded"]
    return sorted((r["action"] for r in rows), key=order.index)


async def _counts(owner: asyncpg.Connection) -> tuple[int, int]:
    made = await owner.fetchval("SELECT count(*) FROM exports")
    queued = await owner.fetchval(
        "SELECT count(*) FROM background_jobs WHERE kind = $1", exports.JOB
    )
    return int(made), int(queued)


@pytest.mark.usefixtures("job_worker")
async def test_the_record_page_asks_for_the_batchml_and_downloads_it(
    plant: Plant, browser: Any, owner: asyncpg.Connection
) -> None:
    made = await batch_of(plant)
    viewer = await browser("viewer")
    await viewer.prime()
    slug = plant.ctx.slug
    asked = await viewer.send("POST", f"/t/{slug}/batches/{made.id}/record.xml")
    export_id = _export_id(asked)
    page = await _page_until_done(viewer, slug, export_id)
    assert "Download" in page and "SHA-256" in page
    row = await exports.get(plant.viewer, export_id)
    assert row.kind == exports.BATCH_RECORD and row.state == "done"
    sent = await viewer.get(f"/t/{slug}/exports/{export_id}/file")
    assert sent.status_code == 200
    assert sent.headers["x-content-sha256"] == row.sha256
    name = f"{made.number}-batch-production-record.xml"
    assert sent.headers["content-disposition"] == f'attachment; filename="{name}"'
    direct = batchml.to_batchml(
        export.document(await record.read(plant.viewer, made.id), row.requested_at)
    )
    assert sent.content == direct
    assert batchml.validate(sent.content) == []
    assert await _actions(owner, export_id) == [
        "export.requested",
        "export.completed",
        "export.downloaded",
    ]
    listed = await viewer.get(f"/t/{slug}/exports")
    assert str(export_id) in listed.text
    assert f'href="/t/{slug}/exports">' in listed.text  # every page's user menu leads here
    assert "<td>Ready</td>" in listed.text and "<td>done</td>" not in listed.text
    # the API answers the file once built, as before
    api = await viewer.get(f"/api/v1/t/{slug}/batches/{made.id}/record.xml")
    assert api.status_code == 200, api.text
    assert api.headers["content-type"].startswith("application/xml")
    assert api.headers["content-disposition"] == f'attachment; filename="{name}"'
    assert batchml.validate(api.content) == []


@pytest.mark.usefixtures("job_worker")
@pytest.mark.parametrize("fmt", ["csv", "json"])
async def test_the_audit_trail_through_the_job_is_what_the_writer_makes(
    world: World, browser: Any, owner: asyncpg.Connection, fmt: str
) -> None:
    admin = await browser("admin")
    sent = await admin.get(
        "/api/v1/t/alpha/audit/export", params={"format": fmt, "action": "tenant."}
    )
    assert sent.status_code == 200, sent.text
    media = "text/csv" if fmt == "csv" else "application/json"
    assert sent.headers["content-type"].startswith(media)
    assert sent.headers["content-disposition"] == f'attachment; filename="audit-alpha.{fmt}"'
    ctx = world.alpha
    flt = audit_queries.parse_filter(ctx, None, None, "tenant.", None, None)
    direct = b"".join([chunk async for chunk in audit_trail.chunks(ctx, flt, fmt)])
    assert sent.content == direct
    last = await owner.fetchrow(
        "SELECT new_values FROM audit_events WHERE action = 'audit.exported'"
        " AND tenant_id = $1 ORDER BY entry DESC LIMIT 1",
        ctx.tenant_id,
    )
    said = last["new_values"]
    said = json.loads(said) if isinstance(said, str) else said
    assert said["format"] == fmt and said["action"] == "tenant."


@pytest.mark.usefixtures("job_worker")
async def test_the_audit_page_form_asks_for_the_export(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    admin = await browser("admin")
    await admin.prime()
    page = await admin.get("/t/alpha/audit")
    assert 'action="/t/alpha/audit/export"' in page.text and 'method="post"' in page.text
    asked = await admin.send(
        "POST", "/t/alpha/audit/export", data={"format": "csv", "action": "member."}
    )
    export_id = _export_id(asked)
    await _page_until_done(admin, "alpha", export_id)
    got = await admin.get(f"/t/alpha/exports/{export_id}/file")
    assert got.status_code == 200 and got.content.startswith("\ufeff".encode())
    assert await _actions(owner, export_id) == [
        "export.requested",
        "export.completed",
        "export.downloaded",
    ]


@pytest.mark.usefixtures("job_worker")
async def test_another_persons_and_another_tenants_export_is_not_found(
    plant: Plant, world: World, browser: Any
) -> None:
    made = await batch_of(plant)
    asked = await exports.request(plant.viewer, exports.BATCH_RECORD, {"batch_id": str(made.id)})
    await exports.wait(plant.viewer, asked.id, 60)
    slug = plant.ctx.slug
    mine = await browser("viewer")
    assert (await mine.get(f"/api/v1/t/{slug}/exports/{asked.id}")).json()["state"] == "done"
    other = await browser("admin")  # the plant's production supervisor
    outsider = await browser("outsider")
    for client, tenant in ((other, slug), (outsider, "beta")):
        for url in (
            f"/t/{tenant}/exports/{asked.id}",
            f"/t/{tenant}/exports/{asked.id}/file",
            f"/api/v1/t/{tenant}/exports/{asked.id}",
            f"/api/v1/t/{tenant}/exports/{asked.id}/file",
        ):
            assert (await client.get(url)).status_code == 404, url
    listed = await other.get(f"/api/v1/t/{slug}/exports")
    assert listed.status_code == 200, listed.text
    assert str(asked.id) not in [e["id"] for e in listed.json()]
    own = (await mine.get(f"/api/v1/t/{slug}/exports")).json()
    assert [e["id"] for e in own] == [str(asked.id)]


@pytest.mark.usefixtures("job_worker")
async def test_a_request_that_fails_validation_writes_nothing(
    plant: Plant, world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    made = await batch_of(plant)
    outsider = await browser("outsider")
    admin = await browser("admin")
    before = await _counts(owner)
    theirs = await outsider.send(
        "POST",
        "/api/v1/t/beta/exports",
        json={"kind": "batch_record_xml", "subject": {"batch_id": str(made.id)}},
    )
    assert theirs.status_code == 404, theirs.text
    page = await outsider.get(f"/api/v1/t/beta/batches/{made.id}/record.xml")
    assert page.status_code == 404
    unknown = await admin.send(
        "POST", "/api/v1/t/alpha/exports", json={"kind": "everything", "subject": {}}
    )
    assert unknown.status_code in (400, 422) and "kind" in unknown.text
    bad = await admin.send(
        "POST",
        "/api/v1/t/alpha/exports",
        json={"kind": "audit_trail", "subject": {"format": "csv", "since": "yesterday"}},
    )
    assert bad.status_code == 422 and "since" in bad.text
    bad_get = await admin.get("/api/v1/t/alpha/audit/export", params={"until": "soon"})
    assert bad_get.status_code == 422 and "until" in bad_get.text
    no_batch = await admin.send(
        "POST", "/api/v1/t/alpha/exports", json={"kind": "batch_record_xml", "subject": {}}
    )
    assert no_batch.status_code == 422 and "batch_id" in no_batch.text
    assert await _counts(owner) == before


@pytest.mark.usefixtures("job_worker")
async def test_two_people_at_once_get_two_exports_each_built_once(
    plant: Plant, owner: asyncpg.Connection
) -> None:
    made = await batch_of(plant)
    subject = {"batch_id": str(made.id)}
    one, two = await asyncio.gather(
        exports.request(plant.viewer, exports.BATCH_RECORD, subject),
        exports.request(plant.supervisor, exports.BATCH_RECORD, subject),
    )
    assert one.id != two.id
    done_one = await exports.wait(plant.viewer, one.id, 60)
    done_two = await exports.wait(plant.supervisor, two.id, 60)
    assert done_one.state == done_two.state == "done"
    for row in (one, two):
        assert await _actions(owner, row.id) == ["export.requested", "export.completed"]


async def test_the_build_run_twice_at_once_completes_once(
    plant: Plant, owner: asyncpg.Connection, settings: Settings
) -> None:
    made = await batch_of(plant)
    asked = await exports.request(plant.viewer, exports.BATCH_RECORD, {"batch_id": str(made.id)})
    job = Job(
        uuid.uuid4(),
        exports.JOB,
        plant.ctx.tenant_id,
        plant.viewer.user_id,
        {"export_id": str(asked.id)},
        1,
        5,
    )
    await asyncio.gather(tasks.export_build(job), tasks.export_build(job))
    await tasks.export_build(job)
    built = await exports.get(plant.viewer, asked.id)
    assert built.state == "done" and built.size_bytes and built.sha256
    assert await _actions(owner, asked.id) == ["export.requested", "export.completed"]


async def test_a_person_no_longer_permitted_gets_a_failed_export(
    world: World, owner: asyncpg.Connection
) -> None:
    from opencdmo.identity import service as identity
    from opencdmo.tenancy import service as tenancy
    from tests.conftest import PASSWORD, as_actor

    user = await identity.create_user(f"x-{uuid.uuid4().hex[:6]}@alpha.test", "Exporter", PASSWORD)
    admin = as_actor(world.alpha, world["admin"])
    membership = await tenancy.add_member(admin, user.id, ["tenant_admin"])
    mine = await _as_user(world, user.id)
    asked = await exports.request(mine, exports.AUDIT_TRAIL, {"format": "json"})
    await tenancy.set_roles(admin, membership, ["viewer"], "no longer exports")
    job = Job(
        uuid.uuid4(),
        exports.JOB,
        world.alpha.tenant_id,
        user.id,
        {"export_id": str(asked.id)},
        1,
        5,
    )
    await tasks.export_build(job)
    failed = await exports.get(mine, asked.id)
    assert failed.state == "failed" and failed.error and "no longer permitted" in failed.error
    assert await _actions(owner, asked.id) == ["export.requested", "export.failed"]


async def _as_user(world: World, user_id: UUID) -> Any:
    from opencdmo.jobs import registry

    job = Job(uuid.uuid4(), exports.JOB, world.alpha.tenant_id, user_id, {}, 1, 5)
    return await registry.context(job)


@pytest.mark.usefixtures("short_export_wait")
async def test_without_a_worker_the_api_answers_202_then_a_worker_builds_it(
    world: World, browser: Any, settings: Settings
) -> None:
    admin = await browser("admin")
    waiting = await admin.get("/api/v1/t/alpha/audit/export", params={"format": "csv"})
    assert waiting.status_code == 202, waiting.text
    body = waiting.json()
    assert body["state"] == "queued" and body["links"]["file"] is None
    export_id = body["id"]
    worker = Worker(
        replace(settings, job_poll_seconds=1, job_retry_seconds=1),
        handlers={tasks.EXPORT_BUILD: tasks.export_build},
        periodic=[],
    )
    await asyncio.wait_for(worker.run(until_idle=True), 120)
    done = (await admin.get(f"/api/v1/t/alpha/exports/{export_id}")).json()
    assert done["state"] == "done", done
    got = await admin.get(done["links"]["file"])
    assert got.status_code == 200 and got.headers["x-content-sha256"] == done["sha256"]
    posted = await admin.send(
        "POST", "/api/v1/t/alpha/exports", json={"kind": "audit_trail", "subject": {}}
    )
    assert posted.status_code == 202 and posted.json()["state"] == "queued"
    await asyncio.wait_for(worker.run(until_idle=True), 120)


async def test_a_failed_export_shows_its_error_and_exports_again(
    world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    from tests.conftest import as_actor

    ctx = as_actor(world.alpha, world["admin"])
    asked = await exports.request(ctx, exports.AUDIT_TRAIL, {"format": "json", "action": "x."})
    await exports.failed(ctx, asked.id, "The storage was not reachable.")
    admin = await browser("admin")
    await admin.prime()
    page = await admin.get(f"/t/alpha/exports/{asked.id}")
    assert 'data-state="failed"' in page.text
    assert "The storage was not reachable." in page.text and "Export again" in page.text
    assert 'hx-trigger="every 1s"' not in page.text
    again = await admin.send("POST", f"/t/alpha/exports/{asked.id}/again")
    assert again.status_code == 303, again.text
    new_id = UUID(again.headers["location"].rsplit("/", 1)[1])
    assert new_id != asked.id
    renewed = await exports.get(ctx, new_id)
    assert renewed.state == "queued" and renewed.subject_dict == asked.subject_dict
    other = await browser("viewer")
    await other.prime()
    refused = await other.send("POST", f"/t/alpha/exports/{asked.id}/again")
    assert refused.status_code == 404


@pytest.mark.usefixtures("short_export_wait")
async def test_the_record_api_answers_202_as_json_without_a_worker(
    plant: Plant, browser: Any
) -> None:
    made = await batch_of(plant)
    viewer = await browser("viewer")
    for url in (
        f"/api/v1/t/{plant.ctx.slug}/batches/{made.id}/record.xml",
        f"/api/v1/t/{plant.ctx.slug}/audit/export",
    ):
        waiting = await viewer.get(url)
        if url.endswith("audit/export"):
            assert waiting.status_code == 403  # a viewer may not export the trail
            continue
        assert waiting.status_code == 202, waiting.text
        assert waiting.headers["content-type"].startswith("application/json")
        body = waiting.json()
        assert body["kind"] == "batch_record_xml" and body["state"] == "queued"
        assert body["subject"]["batch_id"] == str(made.id)
        assert body["links"]["page"] == f"/t/{plant.ctx.slug}/exports/{body['id']}"
