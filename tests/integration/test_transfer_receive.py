"""Receiving tech-transfer packages against the real database and blob store (URS-RCV-01..04):
sent to a partner's inbox within an active relationship (the receiver's row under its own
policy, both audit trails, the blob copied), refused on a revoked or missing relationship;
uploaded from another installation and verified before anything is kept (a tampered, hostile
or untrusted package refused with nothing stored but the security event); a partner's key
trusted within the relationship; another tenant's package a 404 both ways; two verifications
at the same moment; the progress rows; each side's status."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from opencdmo.audit import service as audit
from opencdmo.audit.verify import verify_tenant
from opencdmo.db import jobs
from opencdmo.db.tx import unit_of_work
from opencdmo.errors import Conflict, NotFound, ValidationFailed
from opencdmo.partners import service as partners
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext
from opencdmo.settings import Settings
from opencdmo.storage.blobs import blobs
from opencdmo.tenancy import service as tenancy
from opencdmo.transfer import export, keys, receive
from opencdmo.transfer.receive_queries import ReceivedRow
from tests.conftest import PASSWORD, World, as_actor
from tests.integration.conftest import activation, viability
from tests.integration.job_worker import job_worker
from tests.integration.test_cli import cli_env, run
from tests.integration.test_partners import Org, new_org
from tests.integration.test_transfer_package import _effective

__all__ = ["cli_env", "job_worker"]

# Verifications run in the job worker (the routes hand them to it).
pytestmark = pytest.mark.usefixtures("job_worker")


@dataclass(frozen=True)
class Sender:
    lab: dict[str, Any]
    org: Org

    @property
    def ctx(self) -> TenantContext:
        ctx: TenantContext = self.lab["ctx"]
        return ctx


@dataclass(frozen=True)
class Receiver:
    org: Org
    engineer: TenantContext  # the author persona, a process engineer here

    @property
    def ctx(self) -> TenantContext:
        return self.org.ctx

    @property
    def api(self) -> str:
        return f"/api/v1/t/{self.ctx.slug}/transfer"


async def _sender(world: World, owner: asyncpg.Connection) -> Sender:
    slug = f"sp-{uuid.uuid4().hex[:8]}"
    ctx = await tenancy.create_tenant(slug, f"Sponsor {slug}", "sponsor", SYSTEM, RequestMeta())
    for key, role in (("author", "process_engineer"), ("approver", "qa_approver")):
        await tenancy.add_member(ctx, world[key].user_id, [role])
    lab = {
        "ctx": ctx,
        "author": as_actor(ctx, world["author"]),
        "approver": as_actor(ctx, world["approver"]),
        "uo": await activation(owner, ctx),
        "method": await viability(owner, ctx),
    }
    return Sender(lab, await new_org("sponsor", ctx=ctx))


async def _receiver(world: World) -> Receiver:
    org = await new_org("cdmo")
    await tenancy.add_member(org.ctx, world["author"].user_id, ["process_engineer"])
    return Receiver(org, as_actor(org.ctx, world["author"]))


@pytest.fixture
async def sender(synced: Any, world: World, owner: asyncpg.Connection) -> Sender:
    return await _sender(world, owner)


@pytest.fixture
async def receiver(world: World) -> Receiver:
    return await _receiver(world)


async def _package(settings: Settings, sender: Sender) -> UUID:
    recipe = await _effective(settings, sender.lab)
    made = await export.export_package(
        settings, sender.lab["approver"], recipe, PASSWORD, "to the CDMO"
    )
    return made.package.id


async def _related(sender: Sender, receiver: Receiver) -> UUID:
    proposed = await partners.propose(sender.org.admin, receiver.ctx.slug)
    await partners.accept(receiver.org.admin, proposed.row.id)
    return proposed.row.id


def body_created(listed: Any) -> str:
    """The export time of the (one) package listed."""
    found: str = listed.json()[0]["created_at"]
    return found


async def _events(owner: asyncpg.Connection, tenant: UUID, entity: object) -> list[str]:
    await audit.drain()
    rows = await owner.fetch(
        "SELECT action FROM audit_events WHERE tenant_id = $1 AND entity_id = $2 "
        "AND action LIKE 'transfer.%' ORDER BY entry",
        tenant,
        str(entity),
    )
    return [r["action"] for r in rows]


async def _count(owner: asyncpg.Connection, table: str, tenant: UUID) -> int:
    found: int = await owner.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant)
    return found


async def _archive(settings: Settings, sender: Sender, package_id: UUID) -> bytes:
    _, data = await export.package_of(sender.lab["approver"], package_id)
    return data


async def test_send_within_an_active_relationship(
    settings: Settings, sender: Sender, receiver: Receiver, browser: Any, owner: asyncpg.Connection
) -> None:
    """URS-RCV-01: a package sent to a partner arrives in its inbox, audited on both sides;
    the partner's key verifies it without a manual trust; the sender sees each status."""
    package_id = await _package(settings, sender)
    link_id = await _related(sender, receiver)
    approver = await browser("approver")
    url = f"/api/v1/t/{sender.ctx.slug}/transfer/packages/{package_id}/sends"
    sent = await approver.send("POST", url, json={"partner_link_id": str(link_id)})
    assert sent.status_code == 201, sent.text
    assert sent.json()["sent_at"] > body_created(await approver.get(url.rsplit("/", 2)[0]))
    assert (sent.json()["receiver_name"], sent.json()["receiver_status"]) == (
        receiver.ctx.name,
        "received",
    )
    row = await owner.fetchrow(
        "SELECT * FROM transfer_packages WHERE tenant_id = $1 AND id = $2",
        receiver.ctx.tenant_id,
        package_id,
    )
    assert (row["direction"], row["status"], row["partner_link_id"]) == (
        "received",
        "received",
        link_id,
    )
    assert row["sender_tenant_id"] == sender.ctx.tenant_id and row["recipe_id"] is None
    assert row["storage_key"].startswith(f"tenants/{receiver.ctx.tenant_id}/")
    copied = await blobs().get(receiver.ctx, row["storage_key"])  # checked against its SHA-256
    assert copied == await _archive(settings, sender, package_id)
    assert await _events(owner, sender.ctx.tenant_id, package_id) == [
        "transfer.package_exported",
        "transfer.package_sent",
    ]
    assert await _events(owner, receiver.ctx.tenant_id, package_id) == ["transfer.package_received"]
    again = await approver.send("POST", url, json={"partner_link_id": str(link_id)})
    assert again.status_code == 409 and "already sent" in again.json()["error"]["message"]
    # The receiver verifies it: the partner's own key is trusted within the relationship.
    assert await keys.trusted(receiver.engineer, row["sender_fingerprint"])
    verified = await receive.verify_received(settings, receiver.engineer, package_id)
    assert (verified.status, verified.finding_list) == ("verified", [])
    assert await receive.sender_allowed(receiver.engineer, verified) is None
    statuses = (await approver.get(url)).json()
    assert [(s["receiver_name"], s["receiver_status"]) for s in statuses] == [
        (receiver.ctx.name, "verified")
    ]
    assert await _events(owner, receiver.ctx.tenant_id, package_id) == [
        "transfer.package_received",
        "transfer.package_verified",
    ]
    for ctx in (sender.ctx, receiver.ctx):
        assert (await verify_tenant(ctx.tenant_id, ctx.slug)).intact
    # Revoked afterwards: the package stays, its import is refused with the reason.
    await partners.revoke(receiver.org.admin, link_id, "Programme closed")
    kept = await receive.received(receiver.engineer, package_id)
    reason = await receive.sender_allowed(receiver.engineer, kept)
    assert reason is not None and "revoked" in reason and "cannot be imported" in reason
    assert not await keys.trusted(receiver.engineer, row["sender_fingerprint"])


async def test_sending_without_an_active_relationship_is_refused(
    settings: Settings, sender: Sender, receiver: Receiver, browser: Any, owner: asyncpg.Connection
) -> None:
    """URS-RCV-01: a revoked relationship refuses the send (409, nothing written); a
    relationship of another tenant is not found."""
    package_id = await _package(settings, sender)
    link_id = await _related(sender, receiver)
    await partners.revoke(sender.org.admin, link_id, "Ended")
    approver = await browser("approver")
    url = f"/api/v1/t/{sender.ctx.slug}/transfer/packages/{package_id}/sends"
    refused = await approver.send("POST", url, json={"partner_link_id": str(link_id)})
    assert refused.status_code == 409, refused.text
    assert "revoked, not active" in refused.json()["error"]["message"]
    assert await _count(owner, "transfer_sends", sender.ctx.tenant_id) == 0
    assert await _count(owner, "transfer_packages", receiver.ctx.tenant_id) == 0
    assert await _events(owner, sender.ctx.tenant_id, package_id) == ["transfer.package_exported"]
    foreign = await approver.send("POST", url, json={"partner_link_id": str(uuid.uuid4())})
    assert foreign.status_code == 404, foreign.text
    bad = await approver.send("POST", url, json={"partner_link_id": "not-a-uuid"})
    assert bad.status_code in (400, 422), bad.text


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


async def _upload(client: Any, receiver: Receiver, data: bytes, job: UUID | None = None) -> Any:
    query = f"?job={job}" if job else ""
    return await client.send(
        "POST",
        f"{receiver.api}/inbox{query}",
        content=data,
        headers={"content-type": "application/zip"},
    )


async def _nothing_kept(owner: asyncpg.Connection, receiver: Receiver) -> None:
    assert await _count(owner, "transfer_packages", receiver.ctx.tenant_id) == 0
    blobs_dir = Path(blobs().backend.root) / "tenants" / str(receiver.ctx.tenant_id)  # type: ignore[attr-defined]
    assert not blobs_dir.exists() or not any(blobs_dir.iterdir())


async def _refusals(owner: asyncpg.Connection, receiver: Receiver) -> list[list[str]]:
    await audit.drain()
    rows = await owner.fetch(
        "SELECT new_values FROM audit_events WHERE tenant_id = $1 "
        "AND action = 'transfer.package_refused' ORDER BY entry",
        receiver.ctx.tenant_id,
    )
    found = [json.loads(r["new_values"]) for r in rows]
    return [
        [f["code"] for f in (v.get("findings") or v.get("detail", {}).get("findings"))]
        for v in found
    ]


async def test_upload_verified_before_anything_is_kept(
    settings: Settings, sender: Sender, receiver: Receiver, browser: Any, owner: asyncpg.Connection
) -> None:
    """URS-RCV-02: an upload from another installation: untrusted, tampered and hostile
    packages refused with every finding and nothing kept but the security event; trusted by
    its fingerprint, it is kept, received and verified."""
    package_id = await _package(settings, sender)
    data = await _archive(settings, sender, package_id)
    engineer = await browser("author")
    untrusted = await _upload(engineer, receiver, data)
    assert untrusted.status_code == 422, untrusted.text
    codes = [f["code"] for f in untrusted.json()["error"]["details"]["findings"]]
    assert codes == ["untrusted_key"]
    assert "not trusted here" in untrusted.json()["error"]["message"]
    tampered = bytearray(data)
    tampered[len(tampered) // 2] ^= 0x01
    bad = await _upload(engineer, receiver, bytes(tampered))
    assert bad.status_code == 422, bad.text
    hostile = await _upload(engineer, receiver, _zip({"../escape.txt": b"x"}))
    assert hostile.status_code == 422, hostile.text
    assert "../escape.txt" in hostile.text
    not_zip = await _upload(engineer, receiver, b"plain text, not an archive")
    assert not_zip.status_code == 422, not_zip.text
    await _nothing_kept(owner, receiver)
    refusals = await _refusals(owner, receiver)
    assert len(refusals) == 4 and refusals[0] == ["untrusted_key"]
    assert all(refusals)
    # Trusted by its fingerprint (the admin's audited action), the same file is kept.
    public = await keys.public_key(sender.lab["approver"])
    assert public is not None
    await keys.trust(receiver.org.admin, public.base64, public.fingerprint, sender.ctx.name)
    job = uuid.uuid4()
    kept = await _upload(engineer, receiver, data, job)
    assert kept.status_code == 201, kept.text
    body = kept.json()
    assert (body["id"], body["status"], body["sender_name"]) == (
        str(package_id),
        "verified",
        sender.ctx.name,
    )
    assert body["sender_fingerprint"] == public.fingerprint and body["findings"] == []
    assert await _events(owner, receiver.ctx.tenant_id, package_id) == [
        "transfer.package_received",
        "transfer.package_verified",
    ]
    progress = (await engineer.get(f"{receiver.api}/jobs/{job}")).json()
    assert (progress["state"], progress["percent"], progress["package_id"]) == (
        "done",
        100,
        str(package_id),
    )
    twice = await _upload(engineer, receiver, data)
    assert twice.status_code == 409, twice.text
    listed = (await engineer.get(f"{receiver.api}/inbox")).json()
    assert [p["id"] for p in listed] == [str(package_id)]
    assert (await verify_tenant(receiver.ctx.tenant_id, receiver.ctx.slug)).intact


async def test_another_tenants_package_is_not_found(
    settings: Settings, sender: Sender, receiver: Receiver, browser: Any
) -> None:
    """URS-RCV-04: a received package is the receiver's alone, a sent one the sender's."""
    package_id = await _package(settings, sender)
    link_id = await _related(sender, receiver)
    await receive.send_to_partner(sender.lab["approver"], package_id, link_id)
    engineer = await browser("author")  # a process engineer in both tenants
    sender_inbox = f"/api/v1/t/{sender.ctx.slug}/transfer/inbox/{package_id}"
    assert (await engineer.get(sender_inbox)).status_code == 404
    assert (await engineer.send("POST", sender_inbox + "/verify")).status_code == 404
    mine = await engineer.get(f"{receiver.api}/inbox/{package_id}")
    assert mine.status_code == 200 and mine.json()["status"] == "received"
    approver = await browser("approver")  # QA of the sender only
    theirs = f"{receiver.api}/packages/{package_id}/sends"
    assert (await approver.get(theirs)).status_code in (403, 404)
    # The receiver cannot send on what it received: not one of its sent packages.
    with pytest.raises(NotFound):
        await receive.send_to_partner(receiver.engineer, package_id, link_id)


async def test_two_verifications_at_the_same_moment(
    settings: Settings, sender: Sender, receiver: Receiver, browser: Any, owner: asyncpg.Connection
) -> None:
    """URS-RCV-03: two people verify the same package at once: one verification, one event;
    the other is told it is under way or sees its outcome."""
    package_id = await _package(settings, sender)
    link_id = await _related(sender, receiver)
    await receive.send_to_partner(sender.lab["approver"], package_id, link_id)
    one, two = await browser("author"), await browser("author")
    url = f"{receiver.api}/inbox/{package_id}/verify"
    answers = await asyncio.gather(one.send("POST", url), two.send("POST", url))
    codes = sorted(a.status_code for a in answers)
    assert codes in ([200, 200], [200, 409]), [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 409:
            assert "being verified already" in answer.json()["error"]["message"]
        else:
            assert answer.json()["status"] == "verified"
    events = await _events(owner, receiver.ctx.tenant_id, package_id)
    assert events.count("transfer.package_verified") == 1
    jobs = await owner.fetchval(
        "SELECT count(*) FROM transfer_jobs WHERE tenant_id = $1 AND package_id = $2",
        receiver.ctx.tenant_id,
        package_id,
    )
    assert jobs == 1


async def test_a_rejected_inbox_package_and_its_progress(
    settings: Settings,
    sender: Sender,
    receiver: Receiver,
    owner: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """URS-RCV-03: a partner's package damaged in the receiver's store is rejected with the
    findings as the reason; the job row records the progress in steps."""
    monkeypatch.setattr(receive, "PROGRESS_STEP", 1)
    package_id = await _package(settings, sender)
    link_id = await _related(sender, receiver)
    await receive.send_to_partner(sender.lab["approver"], package_id, link_id)
    row = await receive.received(receiver.engineer, package_id)
    # A package whose bytes verify but that is not the one sent (another package's bytes
    # stored under this row) is rejected: stored as a blob and pointed at.
    other = await _package(settings, sender)
    data = await _archive(settings, sender, other)
    copied = await blobs().put(receiver.ctx, data)
    await owner.execute(
        "UPDATE transfer_packages SET storage_key = $3 WHERE tenant_id = $1 AND id = $2",
        receiver.ctx.tenant_id,
        package_id,
        copied.key,
    )
    job = uuid.uuid4()
    rejected = await receive.verify_received(settings, receiver.engineer, package_id, job)
    assert rejected.status == "rejected"
    assert [f["code"] for f in rejected.finding_list] == ["not_the_package_sent"]
    assert rejected.status_reason and "not the package that was sent" in rejected.status_reason
    progress = await receive.job(receiver.engineer, job)
    assert (progress.state, progress.done_bytes, progress.package_id) == (
        "done",
        row.size_bytes,
        package_id,
    )
    statuses = await receive.sent_to(sender.lab["approver"], package_id)
    assert [(s.status, s.reason) for s in statuses] == [("rejected", rejected.status_reason)]
    assert isinstance(rejected, ReceivedRow)


async def test_the_pages_send_verify_and_upload(
    settings: Settings, sender: Sender, receiver: Receiver, browser: Any, owner: asyncpg.Connection
) -> None:
    """URS-RCV-02, 03, 04: the sender's packages page sends to a partner and shows the receiver's
    status; the inbox lists the package; its page verifies it and shows the manifest, the
    findings and what comes next; the upload form refuses with every finding."""
    package_id = await _package(settings, sender)
    await _related(sender, receiver)
    approver = await browser("approver")
    listed = await approver.get(f"/t/{sender.ctx.slug}/transfer/packages")
    assert listed.status_code == 200 and f"Send to {receiver.ctx.name}" in listed.text
    link_id = await owner.fetchval(
        "SELECT id FROM partner_links WHERE tenant_id = $1", sender.ctx.tenant_id
    )
    form = {"link_id": str(link_id), "_csrf_token": approver.csrf}
    sent = await approver.send(
        "POST", f"/t/{sender.ctx.slug}/transfer/packages/{package_id}/sends", data=form
    )
    assert sent.status_code == 303, sent.text
    listed = await approver.get(f"/t/{sender.ctx.slug}/transfer/packages")
    assert f"Sent to {receiver.ctx.name}" in listed.text and "Received" in listed.text
    assert f"Send to {receiver.ctx.name}" not in listed.text
    engineer = await browser("author")
    inbox = await engineer.get(f"/t/{receiver.ctx.slug}/transfer/inbox")
    assert inbox.status_code == 200 and str(package_id) in inbox.text
    detail_url = f"/t/{receiver.ctx.slug}/transfer/packages/{package_id}"
    detail = await engineer.get(detail_url)
    assert detail.status_code == 200 and 'id="verify-form"' in detail.text
    assert "Not verified yet" in detail.text
    job = uuid.uuid4()
    verified = await engineer.send(
        "POST", detail_url + "/verify", data={"job": str(job), "_csrf_token": engineer.csrf}
    )
    assert verified.status_code == 303, verified.text
    detail = await engineer.get(detail_url)
    # Under way in the worker, or done already: the page shows its progress until then.
    async with asyncio.timeout(60):
        while "Gap report and import" not in detail.text:
            assert 'id="transfer-progress"' in detail.text and 'id="verify-form"' not in detail.text
            await asyncio.sleep(0.1)
            detail = await engineer.get(detail_url)
    assert "Gap report and import" in detail.text and 'id="package-next"' in detail.text
    assert "recipe/batchml.xml" in detail.text and "approved for transfer" in detail.text
    assert 'id="verify-form"' not in detail.text
    progress = await engineer.get(f"/t/{receiver.ctx.slug}/transfer/jobs/{job}/progress")
    assert progress.status_code == 200 and 'value="100"' in progress.text
    assert "hx-trigger" not in progress.text  # finished: it stops polling
    listed = await approver.get(f"/t/{sender.ctx.slug}/transfer/packages")
    assert "Verified" in listed.text
    # The upload form: a file that is not a package, verified in the worker while the inbox
    # shows its progress, then refused with its finding, nothing kept.
    before = await _count(owner, "transfer_packages", receiver.ctx.tenant_id)
    upload_job = uuid.uuid4()
    inbox_url = f"/t/{receiver.ctx.slug}/transfer/inbox"
    sent_file = await engineer.send(
        "POST",
        f"{inbox_url}?job={upload_job}",
        data={"_csrf_token": engineer.csrf},
        files={"package": ("package.zip", b"not an archive", "application/zip")},
    )
    assert sent_file.status_code == 303, sent_file.text
    assert sent_file.headers["location"].endswith(f"{inbox_url}?job={upload_job}")
    refused = await _upload_page(engineer, f"{inbox_url}?job={upload_job}")
    assert refused.status_code == 200 and 'id="upload-findings"' in refused.text
    assert "not a ZIP archive" in refused.text or "zip" in refused.text.lower()
    assert await _count(owner, "transfer_packages", receiver.ctx.tenant_id) == before
    polled = await engineer.get(
        f"/t/{receiver.ctx.slug}/transfer/jobs/{upload_job}/progress?upload=true",
        headers={"hx-request": "true"},
    )
    assert polled.headers["hx-redirect"] == f"{inbox_url}?job={upload_job}"


async def _upload_page(client: Any, url: str) -> Any:
    """The inbox of an upload once its verification has ended (the progress until then)."""
    async with asyncio.timeout(60):
        while True:
            shown = await client.get(url)
            if shown.status_code != 200 or 'id="transfer-progress-bar"' not in shown.text:
                return shown
            if 'hx-trigger="every 1s"' not in shown.text:
                return shown
            await asyncio.sleep(0.1)


async def test_cli_import_exit_codes(
    settings: Settings,
    sender: Sender,
    receiver: Receiver,
    world: World,
    owner: asyncpg.Connection,
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """URS-RCV-02: ``transfer import``: 1 refused with the findings and nothing kept, 3
    verified and kept with a progress line on stderr but gaps left (listed), 0 with
    ``--verify-only``, 2 unreadable input."""
    package_id = await _package(settings, sender)
    path = tmp_path / "package.zip"
    path.write_bytes(await _archive(settings, sender, package_id))
    args = ("transfer", "import", "--progress", "--tenant", receiver.ctx.slug)
    code, said, err = await run(cli_env, *args, "--email", world["author"].email, str(path))
    assert code == 1, err
    assert said.startswith("REFUSED") and "untrusted_key" in said
    assert await _count(owner, "transfer_packages", receiver.ctx.tenant_id) == 0
    public = await keys.public_key(sender.lab["approver"])
    assert public is not None
    await keys.trust(receiver.org.admin, public.base64, public.fingerprint, sender.ctx.name)
    code, said, err = await run(cli_env, *args, "--email", world["author"].email, str(path))
    assert code == 3, err
    assert said.startswith(f"VERIFIED: package {package_id}")
    assert "GAPS:" in said and f"--package {package_id} --mapping FILE" in said
    assert "verifying [" in err and "100 %" in err
    code, said, err = await run(
        cli_env,
        *args,
        "--email",
        world["author"].email,
        "--verify-only",
        "--package",
        str(package_id),
    )
    assert code == 0, err
    row = await owner.fetchrow(
        "SELECT status, direction FROM transfer_packages WHERE tenant_id = $1 AND id = $2",
        receiver.ctx.tenant_id,
        package_id,
    )
    assert (row["status"], row["direction"]) == ("verified", "received")
    code, _, err = await run(
        cli_env, *args, "--email", world["author"].email, str(tmp_path / "missing.zip")
    )
    assert code == 2 and "cannot read" in err
    code, _, err = await run(cli_env, *args, "--email", "nobody@nowhere.test", str(path))
    assert code == 2 and "No member" in err


async def test_two_sends_and_two_uploads_at_the_same_moment(
    settings: Settings,
    sender: Sender,
    receiver: Receiver,
    world: World,
    browser: Any,
    owner: asyncpg.Connection,
) -> None:
    """URS-RCV-01, 02: two people send the same package to the same partner at once: one send,
    one received row, the other a 409; two uploads of one package at once: one kept."""
    package_id = await _package(settings, sender)
    link_id = await _related(sender, receiver)
    one, two = await browser("approver"), await browser("approver")
    url = f"/api/v1/t/{sender.ctx.slug}/transfer/packages/{package_id}/sends"
    body = {"partner_link_id": str(link_id)}
    answers = await asyncio.gather(
        one.send("POST", url, json=body), two.send("POST", url, json=body)
    )
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    assert await _count(owner, "transfer_sends", sender.ctx.tenant_id) == 1
    assert await _count(owner, "transfer_packages", receiver.ctx.tenant_id) == 1
    assert (await _events(owner, sender.ctx.tenant_id, package_id)).count(
        "transfer.package_sent"
    ) == 1
    # Two uploads of another package into a third tenant that trusts the key.
    other = await _package(settings, sender)
    data = await _archive(settings, sender, other)
    third = await _receiver(world)
    public = await keys.public_key(sender.lab["approver"])
    assert public is not None
    await keys.trust(third.org.admin, public.base64, public.fingerprint, sender.ctx.name)
    first, second = await browser("author"), await browser("author")
    uploads = await asyncio.gather(_upload(first, third, data), _upload(second, third, data))
    assert sorted(u.status_code for u in uploads) == [201, 409], [u.text for u in uploads]
    assert await _count(owner, "transfer_packages", third.ctx.tenant_id) == 1


async def test_an_upload_too_large_or_empty_is_refused(
    settings: Settings, receiver: Receiver, owner: asyncpg.Connection
) -> None:
    """URS-RCV-02: past the size limit, or empty: a 422 naming the problem, nothing kept,
    the temporary file removed and the job marked failed."""
    small = replace(settings, transfer_upload_max_bytes=1024)

    async def chunks(total: int) -> AsyncIterator[bytes]:
        for _ in range(total // 512):
            yield b"x" * 512

    job = uuid.uuid4()
    with pytest.raises(ValidationFailed, match="larger than this installation accepts"):
        await receive.spool_upload(small, receiver.engineer, chunks(4096), job, None)
    assert (await receive.job(receiver.engineer, job)).state == "failed"
    with pytest.raises(ValidationFailed, match="larger than this installation accepts"):
        await receive.spool_upload(small, receiver.engineer, chunks(0), uuid.uuid4(), 2048)
    with pytest.raises(ValidationFailed, match="The upload is empty"):
        await receive.spool_upload(small, receiver.engineer, chunks(0), uuid.uuid4(), None)
    with pytest.raises(Conflict, match="sent already"):
        await receive.spool_upload(small, receiver.engineer, chunks(512), job, None)
    leftovers = list((settings.data_dir / "transfer-tmp").glob("received-*"))
    assert leftovers == []
    assert await _count(owner, "transfer_packages", receiver.ctx.tenant_id) == 0


async def test_an_abandoned_verification_does_not_block_the_package(
    settings: Settings, sender: Sender, receiver: Receiver, owner: asyncpg.Connection
) -> None:
    """URS-RCV-03: a verification that stopped reporting (its process ended) is taken as
    abandoned after a while, and the package can be verified; a live one is a 409."""
    package_id = await _package(settings, sender)
    link_id = await _related(sender, receiver)
    await receive.send_to_partner(sender.lab["approver"], package_id, link_id)
    stuck = uuid.uuid4()
    await owner.execute(
        "INSERT INTO transfer_jobs (tenant_id, id, package_id, stage, state, started_by) "
        "VALUES ($1, $2, $3, 'verify', 'running', $4)",
        receiver.ctx.tenant_id,
        stuck,
        package_id,
        receiver.engineer.user_id,
    )
    with pytest.raises(Conflict, match="being verified already"):
        await receive.verify_received(settings, receiver.engineer, package_id)
    await owner.execute(
        "UPDATE transfer_jobs SET updated_at = clock_timestamp() - interval '11 minutes' "
        "WHERE tenant_id = $1 AND id = $2",
        receiver.ctx.tenant_id,
        stuck,
    )
    with pytest.raises(Conflict, match="started already"):  # a job id used before
        await receive.verify_received(settings, receiver.engineer, package_id, stuck)
    verified = await receive.verify_received(settings, receiver.engineer, package_id)
    assert verified.status == "verified"
    assert (await receive.job(receiver.engineer, stuck)).state == "failed"


async def test_the_package_page_shows_a_verification_under_way_and_a_failed_one(
    settings: Settings, sender: Sender, receiver: Receiver, browser: Any, owner: asyncpg.Connection
) -> None:
    """URS-JOB-05: while the worker verifies, the package's page shows the progress (stage,
    bytes done of the total) polling itself; once finished the poll reloads the page; a
    verification whose job failed says why in words and offers Verify again."""
    package_id = await _package(settings, sender)
    link_id = await _related(sender, receiver)
    await receive.send_to_partner(sender.lab["approver"], package_id, link_id)
    # Claimed, not handed to the worker: it stays under way while the page is read.
    _, job = await receive.start_verification(receiver.engineer, package_id, enqueue=False)
    assert job is not None
    await owner.execute(
        "UPDATE transfer_jobs SET done_bytes = 5, total_bytes = 10 WHERE tenant_id = $1 AND id = $2",
        receiver.ctx.tenant_id,
        job,
    )
    engineer = await browser("author")
    detail_url = f"/t/{receiver.ctx.slug}/transfer/packages/{package_id}"
    detail = await engineer.get(detail_url)
    assert detail.status_code == 200 and 'id="verify-form"' not in detail.text
    assert "Verifying: 5 of 10 bytes" in detail.text and 'hx-trigger="every 1s"' in detail.text
    progress_url = f"/t/{receiver.ctx.slug}/transfer/jobs/{job}/progress"
    polled = await engineer.get(progress_url, headers={"HX-Request": "true"})
    assert polled.status_code == 200 and "HX-Refresh" not in polled.headers
    # Its job fails for good: the page says why and offers Verify again.
    # (enqueued for a kind no worker here takes, then failed as its last attempt would)
    async with unit_of_work(receiver.engineer):
        queued = await jobs.enqueue_for(
            receiver.engineer,
            "test.not-worked",
            {"package_id": str(package_id), "job_id": str(job)},
            dedupe_key=f"{receive.VERIFY_JOB}:{job}",
            max_attempts=1,
        )
    assert queued is not None
    await owner.execute(
        "UPDATE background_jobs SET state = 'failed', error = 'The blob store did not answer.' "
        "WHERE id = $1",
        queued,
    )
    await owner.execute(
        "UPDATE transfer_jobs SET state = 'failed' WHERE tenant_id = $1 AND id = $2",
        receiver.ctx.tenant_id,
        job,
    )
    polled = await engineer.get(progress_url, headers={"HX-Request": "true"})
    assert polled.headers.get("HX-Refresh") == "true"  # finished: the page reloads
    detail = await engineer.get(detail_url)
    assert "The blob store did not answer." in detail.text and 'id="verify-form"' in detail.text
    # Verify again: the worker verifies it this time.
    verified = await engineer.send(
        "POST",
        detail_url + "/verify",
        data={"job": str(uuid.uuid4()), "_csrf_token": engineer.csrf},
    )
    assert verified.status_code == 303, verified.text
    async with asyncio.timeout(60):
        while (await receive.received(receiver.engineer, package_id)).status != "verified":  # noqa: ASYNC110 - a row in the database
            await asyncio.sleep(0.1)
    # In another tenant (the engineer is a member of both), the job is not found.
    theirs = f"/t/{sender.ctx.slug}/transfer/jobs/{job}/progress"
    assert (await engineer.get(theirs)).status_code == 404
    assert (
        await engineer.get(f"/api/v1/t/{sender.ctx.slug}/transfer/jobs/{job}")
    ).status_code == 404
