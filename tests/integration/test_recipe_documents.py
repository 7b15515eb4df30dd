"""A master recipe's documents against the real database and blob store: attached, listed,
downloaded as stored, removed with a reason (kept); bad uploads refused with nothing written;
another tenant's recipe or document not found; two people at once; the audit events and
their coverage; and the tech-transfer package carrying them, verified."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from opencdmo.audit import queries as audit_queries
from opencdmo.audit import sentences
from opencdmo.audit.queries import AuditFilter
from opencdmo.audit.verify import verify_tenant
from opencdmo.db.tx import read_view
from opencdmo.recipes import service as recipes
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from opencdmo.transfer.verify import verify_file
from tests.conftest import PASSWORD, World, member_as
from tests.integration.test_storage import pdf, png
from tests.integration.test_transfer_package import _effective


def _api(lab: dict[str, Any], recipe: UUID) -> str:
    return f"/api/v1/t/{lab['ctx'].slug}/recipes/{recipe}/documents"


def _part(data: bytes, name: str = "SOP 12.pdf", kind: str = "application/pdf") -> Any:
    return {"file": (name, data, kind)}


async def _attach(
    client: Any,
    url: str,
    data: bytes,
    title: str = "Thaw and wash SOP",
    kind: str = "sop",
    name: str = "SOP 12.pdf",
    content_type: str = "application/pdf",
) -> Any:
    return await client.send(
        "POST", url, files=_part(data, name, content_type), data={"title": title, "kind": kind}
    )


async def _events(owner: asyncpg.Connection, tenant: UUID, action: str) -> list[Any]:
    rows = await owner.fetch(
        "SELECT entity_type, entity_id, old_values, new_values, reason, actor_id "
        "FROM audit_events WHERE tenant_id = $1 AND action = $2 ORDER BY seq",
        tenant,
        action,
    )
    return [
        {
            "entity": (r["entity_type"], r["entity_id"]),
            "old": json.loads(r["old_values"]) if r["old_values"] else None,
            "new": json.loads(r["new_values"]) if r["new_values"] else None,
            "reason": r["reason"],
            "actor": r["actor_id"],
        }
        for r in rows
    ]


async def _count(owner: asyncpg.Connection, table: str, tenant: UUID) -> int:
    found: int = await owner.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant)
    return found


async def test_attach_list_download_and_remove(
    lab: dict[str, Any], world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    recipe = await recipes.create(lab["author"], "Documented process")
    author = await browser("author")
    url = _api(lab, recipe)
    data = pdf("sop")
    sent = await _attach(author, url, data, name="../../etc/SOP 12\n.pdf")
    assert sent.status_code == 201, sent.text
    body = sent.json()
    assert (body["title"], body["kind"], body["content_type"]) == (
        "Thaw and wash SOP",
        "sop",
        "application/pdf",
    )
    assert body["filename"] == "SOP 12 .pdf"  # no path, one line
    assert (body["size_bytes"], body["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert body["added_by"] == "Author Person" and body["removed"] is False
    listed = (await author.get(url)).json()
    assert [d["id"] for d in listed] == [body["id"]]

    download = await author.get(body["download"])
    assert download.status_code == 200 and download.content == data
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["content-disposition"] == (
        "attachment; filename=\"SOP 12 .pdf\"; filename*=UTF-8''SOP%2012%20.pdf"
    )
    assert download.headers["x-content-sha256"] == body["sha256"]
    assert download.headers["x-content-type-options"] == "nosniff"
    page_download = await author.get(body["download"].removeprefix("/api/v1"))
    assert page_download.status_code == 200 and page_download.content == data

    removed = await author.send(
        "POST", f"{url}/{body['id']}/remove", json={"reason": "superseded by SOP 13"}
    )
    assert removed.status_code == 200, removed.text
    after = removed.json()
    assert after["removed"] is True and after["removed_by"] == "Author Person"
    assert after["removal_reason"] == "superseded by SOP 13"
    assert [d["removed"] for d in (await author.get(url)).json()] == [True]  # kept
    again = await author.send("POST", f"{url}/{body['id']}/remove", json={"reason": "twice"})
    assert again.status_code == 409 and "removed already" in again.json()["error"]["message"]
    assert (await author.get(body["download"])).content == data  # still part of the record

    tenant = lab["ctx"].tenant_id
    added = await _events(owner, tenant, "recipe.document_added")
    assert [(e["entity"], e["new"]["document_id"], e["actor"]) for e in added] == [
        (("master_recipe", str(recipe)), body["id"], world["author"].user_id)
    ]
    assert added[0]["new"]["file"]["sha256"] == body["sha256"]
    assert (added[0]["new"]["title"], added[0]["new"]["kind"]) == ("Thaw and wash SOP", "sop")
    gone = await _events(owner, tenant, "recipe.document_removed")
    assert [(e["new"]["document_id"], e["reason"]) for e in gone] == [
        (body["id"], "superseded by SOP 13")
    ]
    assert gone[0]["old"]["title"] == "Thaw and wash SOP"
    assert (await verify_tenant(tenant, lab["ctx"].slug)).intact
    async with read_view(lab["ctx"]):
        rows, _ = await audit_queries.page(lab["ctx"], AuditFilter(), limit=20, before=None)
        said = [s.text for s in await sentences.describe(lab["ctx"], rows)]
    short = body["sha256"][:12]
    assert (
        "Author Person attached the document Thaw and wash SOP (SOP, SOP 12 .pdf, SHA-256 "
        f"{short}…) to Documented process" in said
    ), said
    assert "Author Person removed the document Thaw and wash SOP from Documented process" in said


async def test_a_document_row_without_its_event_is_a_finding(
    lab: dict[str, Any], browser: Any, owner: asyncpg.Connection
) -> None:
    recipe = await recipes.create(lab["author"], "Covered process")
    author = await browser("author")
    body = (await _attach(author, _api(lab, recipe), pdf("covered"))).json()
    tenant, slug = lab["ctx"].tenant_id, lab["ctx"].slug
    assert (await verify_tenant(tenant, slug)).intact
    # A second document of the same file, written as no command did.
    await owner.execute(
        "INSERT INTO recipe_documents (tenant_id, recipe_id, file_id, title, kind, added_by) "
        "SELECT tenant_id, recipe_id, file_id, 'Slipped in', kind, added_by "
        "FROM recipe_documents WHERE tenant_id = $1 AND id = $2",
        tenant,
        uuid.UUID(body["id"]),
    )
    report = await verify_tenant(tenant, slug)
    assert not report.intact
    found = [f.message for f in report.findings if "recipe document" in f.message]
    assert len(found) == 1 and "Slipped in" in found[0], report.findings


async def test_a_document_is_changed_only_by_marking_it_removed(
    lab: dict[str, Any], browser: Any, owner: asyncpg.Connection
) -> None:
    recipe = await recipes.create(lab["author"], "Fixed documents")
    body = (await _attach(await browser("author"), _api(lab, recipe), pdf("fixed"))).json()
    for statement, said in (
        (
            "UPDATE recipe_documents SET title = 'Other' WHERE tenant_id = $1 AND id = $2",
            "only ever marked removed",
        ),
        ("DELETE FROM recipe_documents WHERE tenant_id = $1 AND id = $2", "append-only"),
    ):
        with pytest.raises(asyncpg.PostgresError, match=said):
            await owner.execute(statement, lab["ctx"].tenant_id, uuid.UUID(body["id"]))


@pytest.mark.parametrize(
    ("data", "name", "content_type", "said"),
    [
        (b"", "empty.pdf", "application/pdf", "the file is empty"),
        (b"MZ\x90\x00" + os.urandom(64), "setup.exe", "application/octet-stream", "not a PDF"),
        (b"\x7fELF" + os.urandom(64), "tool", "application/octet-stream", "not a PDF"),
        (b"PK\x03\x04" + os.urandom(64), "SOP.docx", "application/octet-stream", "ZIP archive"),
        (b"%PDF-1.7\n", "sop.pdf", "image/png", "declared as image/png"),
    ],
)
async def test_bad_uploads_are_refused_and_nothing_is_written(
    lab: dict[str, Any],
    browser: Any,
    owner: asyncpg.Connection,
    data: bytes,
    name: str,
    content_type: str,
    said: str,
) -> None:
    recipe = await recipes.create(lab["author"], "Refusing process")
    author = await browser("author")
    answer = await _attach(author, _api(lab, recipe), data, name=name, content_type=content_type)
    assert answer.status_code == 422, answer.text
    assert said in answer.json()["error"]["message"]
    await _nothing_written(owner, lab)


async def _nothing_written(owner: asyncpg.Connection, lab: dict[str, Any]) -> None:
    tenant = lab["ctx"].tenant_id
    assert await _count(owner, "recipe_documents", tenant) == 0
    assert await _count(owner, "stored_files", tenant) == 0
    assert await _events(owner, tenant, "recipe.document_added") == []


async def test_too_big_a_file_and_bad_fields_are_refused(
    lab: dict[str, Any], browser: Any, owner: asyncpg.Connection, settings: Settings
) -> None:
    recipe = await recipes.create(lab["author"], "Strict process")
    author = await browser("author")
    url = _api(lab, recipe)
    big = pdf() + b"0" * settings.upload_max_bytes
    answers = [
        (await _attach(author, url, big), "at most"),
        (await _attach(author, url, pdf(), title=" "), "The title is required"),
        (await _attach(author, url, pdf(), title="a\x07b"), "control characters"),
        (await _attach(author, url, pdf(), title="x" * 201), "at most 200"),
        (await _attach(author, url, pdf(), kind="memo"), "kind: one of sop (SOP)"),
        (await author.send("POST", url, data={"title": "t", "kind": "sop"}), "choose the doc"),
        (await author.send("POST", url, json={"title": "t"}), "choose the document"),
    ]
    for answer, said in answers:
        assert answer.status_code in (413, 422), answer.text
        if answer.status_code == 422:
            assert said in answer.json()["error"]["message"], answer.text
    await _nothing_written(owner, lab)
    document = (
        await _attach(author, url, png(), kind="other", name="flow.png", content_type="image/png")
    ).json()
    for reason in ("", " ", "x" * 1001):
        refused = await author.send(
            "POST", f"{url}/{document['id']}/remove", json={"reason": reason}
        )
        assert refused.status_code in (400, 422), refused.text
    assert (await author.get(url)).json()[0]["removed"] is False
    assert await _events(owner, lab["ctx"].tenant_id, "recipe.document_removed") == []


async def test_another_tenants_recipe_or_document_is_not_found(
    lab: dict[str, Any], world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    """The author works in the lab and in alpha: in alpha, the lab's recipe and the lab's
    document (even on a recipe of alpha's) are the same 404 as ids that exist nowhere."""
    theirs = await recipes.create(lab["author"], "Their process")
    author = await browser("author")
    body = (await _attach(author, _api(lab, theirs), pdf("theirs"))).json()
    alpha = world.alpha
    mine = await recipes.create(await member_as(alpha, world["author"]), "Mine")
    here = f"/api/v1/t/{alpha.slug}/recipes"
    before = await _count(owner, "recipe_documents", alpha.tenant_id)
    answers = []
    for recipe_id, document_id in (
        (theirs, body["id"]),
        (mine, body["id"]),
        (uuid.uuid4(), uuid.uuid4()),
    ):
        one = f"{here}/{recipe_id}/documents/{document_id}"
        remove = await author.send("POST", one + "/remove", json={"reason": "x"})
        answers += [remove, await author.get(one + "/file")]
        if recipe_id != mine:
            answers.append(await author.get(f"{here}/{recipe_id}/documents"))
            answers.append(await _attach(author, f"{here}/{recipe_id}/documents", pdf()))
    assert [a.status_code for a in answers] == [404] * len(answers), [a.text for a in answers]
    assert len({a.json()["error"]["message"] for a in answers}) == 2  # no recipe, no document
    assert await _count(owner, "recipe_documents", alpha.tenant_id) == before
    assert len((await author.get(_api(lab, theirs))).json()) == 1


async def test_two_uploads_at_once_both_land_and_two_removals_give_one(
    lab: dict[str, Any], world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    await tenancy.add_member(lab["ctx"], world["viewer"].user_id, ["process_engineer"])
    recipe = await recipes.create(lab["author"], "Busy process")
    first, second = await browser("author"), await browser("viewer")
    url = _api(lab, recipe)
    answers = await asyncio.gather(
        _attach(first, url, pdf("one"), title="One"),
        _attach(second, url, pdf("two"), title="Two", kind="risk_assessment"),
    )
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    listed = (await first.get(url)).json()
    assert sorted(d["title"] for d in listed) == ["One", "Two"]
    tenant = lab["ctx"].tenant_id
    assert len(await _events(owner, tenant, "recipe.document_added")) == 2
    target = f"{url}/{listed[0]['id']}/remove"
    removals = await asyncio.gather(
        first.send("POST", target, json={"reason": "first"}),
        second.send("POST", target, json={"reason": "second"}),
    )
    assert sorted(r.status_code for r in removals) == [200, 409], [r.text for r in removals]
    assert len(await _events(owner, tenant, "recipe.document_removed")) == 1
    signed = await owner.fetchval(
        "SELECT count(*) FROM signatures WHERE tenant_id = $1 AND meaning = $2",
        tenant,
        "approved for transfer",
    )
    assert signed == 0
    assert (await verify_tenant(tenant, lab["ctx"].slug)).intact


async def test_the_recipe_page_lists_attaches_and_removes(
    lab: dict[str, Any], world: World, browser: Any
) -> None:
    await tenancy.add_member(lab["ctx"], world["viewer"].user_id, ["viewer"])
    recipe = await recipes.create(lab["author"], "Paged process")
    author = await browser("author")
    base = f"/t/{lab['ctx'].slug}/recipes/{recipe}"
    page = (await author.get(base)).text
    assert 'id="documents"' in page and 'id="document-form"' in page
    assert "No documents attached." in page
    refused = await author.send(
        "POST",
        base + "/documents",
        files=_part(b"PK\x03\x04" + os.urandom(32), "Report.xlsx", "application/octet-stream"),
        data={"title": "Development report", "kind": "development_report"},
    )
    assert refused.status_code == 422
    assert "Save the document as PDF" in refused.text
    assert 'value="Development report"' in refused.text  # the title is kept
    sent = await author.send(
        "POST",
        base + "/documents",
        files=_part(pdf("paged"), "Report.pdf"),
        data={"title": "Development report", "kind": "development_report"},
    )
    assert sent.status_code == 303 and sent.headers["location"] == base + "#documents"
    page = (await author.get(base)).text
    assert "Development report" in page and "Report.pdf" in page
    listed = (await author.get(_api(lab, recipe))).json()
    document_id = listed[0]["id"]
    assert f'href="{base}/documents/{document_id}/file"' in page
    assert f'action="{base}/documents/{document_id}/remove"' in page
    viewer_page = (await (await browser("viewer")).get(base)).text
    assert "Report.pdf" in viewer_page and 'id="document-form"' not in viewer_page
    assert "/remove" not in viewer_page
    blank = await author.send("POST", f"{base}/documents/{document_id}/remove", data={"reason": ""})
    assert blank.status_code == 422 and "A reason is required" in blank.text
    gone = await author.send(
        "POST", f"{base}/documents/{document_id}/remove", data={"reason": "wrong file"}
    )
    assert gone.status_code == 303
    page = (await author.get(base)).text
    assert "removed" in page and "wrong file" in page


async def test_an_export_carries_the_current_documents_and_verifies(
    lab: dict[str, Any],
    settings: Settings,
    browser: Any,
    owner: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    recipe = await _effective(settings, lab, "Transferred with documents")
    author = await browser("author")
    url = _api(lab, recipe)
    files = {"SOP": pdf("sop"), "Risk": png(), "Old": pdf("old")}
    sent = {
        title: (
            await _attach(
                author,
                url,
                data,
                title=f"{title} document",
                kind="risk_assessment" if title == "Risk" else "sop",
                name=f"{title}.png" if title == "Risk" else f"{title} ä.pdf",
                content_type="image/png" if title == "Risk" else "application/pdf",
            )
        ).json()
        for title, data in files.items()
    }
    removed = await author.send(
        "POST", f"{url}/{sent['Old']['id']}/remove", json={"reason": "withdrawn"}
    )
    assert removed.status_code == 200
    approver = await browser("approver")
    answer = await approver.send(
        "POST",
        f"/api/v1/t/{lab['ctx'].slug}/recipes/{recipe}/transfer-packages",
        json={"password": PASSWORD, "reason": "to the CDMO"},
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    path = tmp_path / "package.zip"
    path.write_bytes((await approver.get(body["download"])).content)
    checked = verify_file(path, {body["sender_fingerprint"]})
    assert checked.findings == [] and checked.contents is not None
    carried = [
        (d.path, d.title, d.kind, d.media_type, d.size, d.sha256)
        for d in checked.contents.documents
    ]
    assert carried == [
        (
            "documents/01-SOP-.pdf",
            "SOP document",
            "sop",
            "application/pdf",
            len(files["SOP"]),
            sent["SOP"]["sha256"],
        ),
        (
            "documents/02-Risk.png",
            "Risk document",
            "risk_assessment",
            "image/png",
            len(files["Risk"]),
            hashlib.sha256(files["Risk"]).hexdigest(),
        ),
    ]
    exported = await owner.fetchval(
        "SELECT new_values FROM audit_events WHERE tenant_id = $1 "
        "AND action = 'transfer.package_exported'",
        lab["ctx"].tenant_id,
    )
    assert json.loads(exported)["documents"] == [
        {"document_id": sent[t]["id"], "sha256": sent[t]["sha256"]} for t in ("SOP", "Risk")
    ]
    # One byte of a document changed in the archive (it is stored, so its bytes are there).
    raw = bytearray(path.read_bytes())
    at = raw.index(files["SOP"]) + len(files["SOP"]) - 3
    raw[at] ^= 0x01
    tampered = tmp_path / "tampered.zip"
    tampered.write_bytes(bytes(raw))
    result = verify_file(tampered, {body["sender_fingerprint"]})
    assert not result.valid and result.contents is None
    assert any(
        f.member == "documents/01-SOP-.pdf" and f.code in ("hash_mismatch", "corrupt_member")
        for f in result.findings
    ), result.findings


async def test_a_document_damaged_in_storage_is_not_served_nor_exported(
    lab: dict[str, Any], settings: Settings, browser: Any, owner: asyncpg.Connection
) -> None:
    from litestar.exceptions import LitestarException

    from opencdmo.storage.blobs import blobs
    from opencdmo.storage.local import LocalBackend

    recipe = await _effective(settings, lab, "Damaged documents")
    author = await browser("author")
    data = pdf("damaged")
    body = (await _attach(author, _api(lab, recipe), data)).json()
    backend = blobs().backend
    assert isinstance(backend, LocalBackend)
    key = f"tenants/{lab['ctx'].tenant_id}/{body['sha256']}"
    backend.path(key).write_bytes(data.replace(b"damaged", b"DAMAGED"))
    # The download stops short: the bytes go out as they are read, the mismatch is known at
    # their end, and the transfer fails there instead of ending cleanly.
    with pytest.raises(LitestarException, match="after response started") as stopped:
        await author.get(body["download"])
    chain: list[BaseException] = []
    error: BaseException | None = stopped.value
    while error is not None and len(chain) < 20:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert "does not match its SHA-256" in repr(chain)  # the store's BlobCorrupted, in a group
    approver = await browser("approver")
    answer = await approver.send(
        "POST",
        f"/api/v1/t/{lab['ctx'].slug}/recipes/{recipe}/transfer-packages",
        json={"password": PASSWORD, "reason": "to the CDMO"},
    )
    assert answer.status_code == 500, answer.text
    assert "does not match its SHA-256" in answer.json()["error"]["message"]
    tenant = lab["ctx"].tenant_id
    assert await _count(owner, "transfer_packages", tenant) == 0
    assert await _events(owner, tenant, "transfer.package_exported") == []


async def test_a_retired_recipes_documents_are_kept_as_they_are(
    lab: dict[str, Any], settings: Settings, browser: Any, owner: asyncpg.Connection
) -> None:
    recipe = await _effective(settings, lab, "Retired with documents")
    author = await browser("author")
    url = _api(lab, recipe)
    body = (await _attach(author, url, pdf("kept"))).json()
    await recipes.retire(settings, lab["approver"], recipe, PASSWORD, "no longer made")
    refused = await _attach(author, url, pdf("late"))
    assert refused.status_code == 409 and "is retired" in refused.json()["error"]["message"]
    removal = await author.send("POST", f"{url}/{body['id']}/remove", json={"reason": "x"})
    assert removal.status_code == 409
    assert [d["removed"] for d in (await author.get(url)).json()] == [False]
    assert len(await _events(owner, lab["ctx"].tenant_id, "recipe.document_added")) == 1
    page = (await author.get(f"/t/{lab['ctx'].slug}/recipes/{recipe}")).text
    assert 'id="document-form"' not in page and "/remove" not in page


async def test_a_document_removed_while_the_package_is_written_stops_the_export(
    lab: dict[str, Any],
    settings: Settings,
    browser: Any,
    owner: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The removal lands between the archive being written and the export's unit of work
    (the real command, run at that moment): the export is refused, nothing of it written."""
    from opencdmo.recipes import documents
    from opencdmo.transfer import export

    recipe = await _effective(settings, lab, "Changing documents")
    author = await browser("author")
    body = (await _attach(author, _api(lab, recipe), pdf("changing"))).json()
    stored = export.store_package

    async def then_removed(ctx: Any, path: Path) -> Any:
        blob = await stored(ctx, path)
        await documents.remove_document(lab["author"], recipe, UUID(body["id"]), "withdrawn")
        return blob

    monkeypatch.setattr(export, "store_package", then_removed)
    answer = await (await browser("approver")).send(
        "POST",
        f"/api/v1/t/{lab['ctx'].slug}/recipes/{recipe}/transfer-packages",
        json={"password": PASSWORD, "reason": "to the CDMO"},
    )
    assert answer.status_code == 409, answer.text
    assert "documents changed" in answer.json()["error"]["message"]
    tenant = lab["ctx"].tenant_id
    assert await _count(owner, "transfer_packages", tenant) == 0
    assert await _events(owner, tenant, "transfer.package_exported") == []
    assert len(await _events(owner, tenant, "recipe.document_removed")) == 1
    signed = await owner.fetchval(
        "SELECT count(*) FROM signatures WHERE tenant_id = $1 AND meaning = $2",
        tenant,
        "approved for transfer",
    )
    assert signed == 0
