"""The blob store on both backends (the data directory, and S3 against a real moto server on
127.0.0.1), then a lot's certificate of analysis through the API on each: content-addressed
keys of the tenant's own, bytes verified on every read (a changed blob is never served),
bad files refused with nothing stored, another tenant's lot a 404, the audit event with the
file's SHA-256, and two people attaching at the same moment."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import pytest
from moto.server import ThreadedMotoServer

from opencdmo.audit.verify import verify_tenant
from opencdmo.errors import NotFound
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.storage import blobs
from opencdmo.storage.blobs import BlobCorrupted, BlobStore, StorageUnavailable, store_for
from opencdmo.storage.local import LocalBackend
from opencdmo.storage.s3 import S3Backend
from tests.conftest import World
from tests.integration import test_inventory
from tests.integration.test_inventory import SIGN, Store, material, receipt, received

BUCKET = "opencdmo-test-blobs"
store = test_inventory.store  # the inventory tests' tenant, with their personas' roles


def pdf(text: str = "") -> bytes:
    """A small PDF-looking file of its own (random), so no two tests share a blob."""
    return b"%PDF-1.7\n%" + text.encode() + os.urandom(32).hex().encode() + b"\n%%EOF\n"


def png() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + os.urandom(48)


# --- the S3 peer ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_settings() -> Iterator[Settings]:
    """A moto S3 server on 127.0.0.1 (never 0.0.0.0) for the session, with the bucket made."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    settings = Settings(
        s3_bucket=BUCKET,
        s3_endpoint_url=f"http://{host}:{port}",
        s3_region="us-east-1",
        s3_access_key_id="testing",
        s3_secret_access_key="testing-secret",
    )
    client = _client(settings)
    client.create_bucket(Bucket=BUCKET)
    client.close()
    yield settings
    server.stop()


def _client(settings: Settings) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key,
    )


class Backend:
    """A store under test, and how to reach behind its back (to tamper with a blob)."""

    def __init__(self, name: str, store: BlobStore, settings: Settings | None) -> None:
        self.name, self.store, self.settings = name, store, settings

    def overwrite(self, key: str, data: bytes) -> None:
        if isinstance(self.store.backend, LocalBackend):
            self.store.backend.path(key).write_bytes(data)
        else:
            assert self.settings is not None
            _client(self.settings).put_object(Bucket=BUCKET, Key=key, Body=data)

    def remove(self, key: str) -> None:
        if isinstance(self.store.backend, LocalBackend):
            self.store.backend.path(key).unlink()
        else:
            assert self.settings is not None
            _client(self.settings).delete_object(Bucket=BUCKET, Key=key)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return Backend("local", BlobStore(LocalBackend(tmp_path / "blobs")), None)
    settings = request.getfixturevalue("s3_settings")
    return Backend("s3", store_for(settings), settings)


# --- the store --------------------------------------------------------------------------------


async def test_put_gives_the_tenants_content_key_and_get_gives_the_bytes_back(
    backend: Backend, world: World
) -> None:
    data = pdf("round trip")
    blob = await backend.store.put(world.alpha, data)
    digest = hashlib.sha256(data).hexdigest()
    assert (blob.key, blob.sha256, blob.size) == (
        f"tenants/{world.alpha.tenant_id}/{digest}",
        digest,
        len(data),
    )
    assert await backend.store.get(world.alpha, blob.key) == data
    assert await backend.store.exists(world.alpha, blob.key)
    again = await backend.store.put(world.alpha, data)
    assert again == blob
    absent = f"tenants/{world.alpha.tenant_id}/{hashlib.sha256(b'other').hexdigest()}"
    assert not await backend.store.exists(world.alpha, absent)


async def test_a_tenant_never_reaches_another_tenants_key(backend: Backend, world: World) -> None:
    blob = await backend.store.put(world.alpha, pdf("alpha's"))
    with pytest.raises(NotFound):
        await backend.store.get(world.beta, blob.key)
    with pytest.raises(NotFound):
        await backend.store.exists(world.beta, blob.key)
    mine = f"tenants/{world.beta.tenant_id}/"
    for key in (
        mine + "../" + blob.key,
        mine + blob.sha256 + "/../x",
        mine + blob.sha256.upper(),
        "/" + blob.key,
        blob.key + "\n",
    ):
        with pytest.raises(NotFound):
            await backend.store.get(world.beta, key)


async def test_a_changed_or_missing_blob_is_detected_and_not_served(
    backend: Backend, world: World
) -> None:
    data = pdf("to be tampered with")
    blob = await backend.store.put(world.alpha, data)
    backend.overwrite(blob.key, data.replace(b"tampered", b"TAMPERED"))
    with pytest.raises(BlobCorrupted) as refused:
        await backend.store.get(world.alpha, blob.key)
    assert "does not match its SHA-256" in refused.value.message
    assert refused.value.status_code == 500
    backend.remove(blob.key)
    with pytest.raises(BlobCorrupted) as missing:
        await backend.store.get(world.alpha, blob.key)
    assert "missing from storage" in missing.value.message
    assert (await backend.store.put(world.alpha, data)) == blob  # stored again: served again
    assert await backend.store.get(world.alpha, blob.key) == data


async def test_local_blobs_are_written_whole_into_new_directories(
    tmp_path: Path, world: World
) -> None:
    root = tmp_path / "deep" / "blobs"
    store = BlobStore(LocalBackend(root))
    blobs_made = await asyncio.gather(*[store.put(world.alpha, pdf(str(n))) for n in range(8)])
    folder = root / "tenants" / str(world.alpha.tenant_id)
    assert sorted(p.name for p in folder.iterdir()) == sorted(b.sha256 for b in blobs_made)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no drafts left over


async def test_an_unreachable_s3_is_a_503_that_changes_nothing(world: World) -> None:
    store = store_for(
        Settings(
            s3_bucket=BUCKET,
            s3_endpoint_url="http://127.0.0.1:9",  # discard: nothing listens
            s3_region="us-east-1",
            s3_access_key_id="testing",
            s3_secret_access_key="testing-secret",
        )
    )
    with pytest.raises(StorageUnavailable) as refused:
        await store.put(world.alpha, pdf())
    assert refused.value.status_code == 503 and "Retry-After" in refused.value.headers


def test_the_backend_is_chosen_by_the_settings(tmp_path: Path, s3_settings: Settings) -> None:
    local = store_for(Settings(data_dir=tmp_path))
    assert isinstance(local.backend, LocalBackend)
    assert local.backend.root == tmp_path / "blobs"
    s3 = store_for(s3_settings)
    assert isinstance(s3.backend, S3Backend) and s3.backend.bucket == BUCKET
    assert "testing-secret" not in repr(s3_settings)
    env = Settings.from_env({"OPENCDMO_S3_BUCKET": "b", "OPENCDMO_UPLOAD_MAX_BYTES": "1000"})
    assert (env.s3_bucket, env.upload_max_bytes) == ("b", 1000)


# --- a lot's certificate of analysis, through the API on each backend -------------------------


@pytest.fixture
async def app_backend(backend: Backend) -> AsyncIterator[Backend]:
    """The app's blob store is this backend while the test runs."""
    kept = blobs.blobs()
    blobs.use(backend.store)
    yield backend
    blobs.use(kept)


def coa_part(data: bytes, name: str = "coa.pdf", kind: str = "application/pdf") -> Any:
    return {"coa": (name, data, kind)}


async def attach(client: Any, store: Store, lot_id: str, data: bytes, **fields: Any) -> Any:
    name = fields.pop("filename", "coa.pdf")
    kind = fields.pop("content_type", "application/pdf")
    return await client.send(
        "POST",
        store.url(f"/lots/{lot_id}/coa"),
        files=coa_part(data, name, kind),
        data=fields,
    )


async def events(owner: asyncpg.Connection, ctx: TenantContext, action: str) -> list[Any]:
    rows = await owner.fetch(
        "SELECT action, old_values, new_values, reason, entity_id FROM audit_events "
        "WHERE tenant_id = $1 AND action = $2 ORDER BY entry",
        ctx.tenant_id,
        action,
    )
    return [
        {
            **dict(r),
            "old_values": json.loads(r["old_values"]) if r["old_values"] else None,
            "new_values": json.loads(r["new_values"]) if r["new_values"] else None,
        }
        for r in rows
    ]


async def stored_count(owner: asyncpg.Connection, ctx: TenantContext) -> int:
    found: int = await owner.fetchval(
        "SELECT count(*) FROM stored_files WHERE tenant_id = $1", ctx.tenant_id
    )
    return found


async def test_a_coa_attached_after_the_goods_is_kept_with_its_hash_and_downloads_as_stored(
    app_backend: Backend, store: Store, browser: Any, owner: asyncpg.Connection
) -> None:
    handler, qc = await browser("operator"), await browser("author")
    lot = await received(handler, store, await material(handler, store))
    assert lot["coa"] is None and lot["coa_file_id"] is None
    data = pdf("certificate")
    digest = hashlib.sha256(data).hexdigest()
    sent = await attach(handler, store, lot["id"], data, filename="../CoA 2411-07\r\n.pdf")
    assert sent.status_code == 200, sent.text
    coa = sent.json()["coa"]
    assert (coa["sha256"], coa["size_bytes"], coa["content_type"]) == (
        digest,
        len(data),
        "application/pdf",
    )
    assert coa["filename"] == "CoA 2411-07 .pdf"  # no path, one line
    assert coa["uploaded_by_name"] == "Operator Person"
    assert sent.json()["coa_file_id"] == coa["file_id"]
    key = f"tenants/{store.ctx.tenant_id}/{digest}"
    assert await app_backend.store.get(store.ctx, key) == data
    for client, url in (
        (qc, f"/t/{store.slug}/lots/{lot['id']}/coa"),
        (handler, store.url(f"/lots/{lot['id']}/coa")),
    ):
        got = await client.get(url)
        assert got.status_code == 200, got.text
        assert got.content == data
        assert got.headers["content-type"] == "application/pdf"
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-disposition"].startswith(
            'attachment; filename="CoA 2411-07 .pdf"'
        )
    [event] = await events(owner, store.ctx, "lot.coa_attached")
    assert event["entity_id"] == lot["id"]
    assert event["new_values"]["coa"]["sha256"] == digest
    assert event["new_values"]["coa"]["file_id"] == coa["file_id"]
    assert (await verify_tenant(store.ctx.tenant_id, store.slug)).intact


async def test_a_receipt_takes_its_coa_in_a_multipart_body_and_json_still_works(
    app_backend: Backend, store: Store, browser: Any, owner: asyncpg.Connection
) -> None:
    handler = await browser("operator")
    pbs = await material(handler, store)
    image = png()
    sent = await handler.send(
        "POST",
        store.url("/lots"),
        data={"receipt": json.dumps(receipt(pbs, lot="L-M", containers=2))},
        files={"coa": ("scan.png", image, "image/png")},
    )
    assert sent.status_code == 201, sent.text
    body = sent.json()
    assert body["lot_number"] == "L-M" and len(body["containers"]) == 2
    assert body["coa"]["sha256"] == hashlib.sha256(image).hexdigest()
    assert body["coa"]["content_type"] == "image/png"
    [event] = [
        e for e in await events(owner, store.ctx, "lot.received") if e["entity_id"] == body["id"]
    ]
    assert event["new_values"]["coa"]["sha256"] == body["coa"]["sha256"]
    got = await handler.get(f"/t/{store.slug}/lots/{body['id']}/coa")
    assert got.content == image and got.headers["content-type"] == "image/png"
    plain = await handler.send("POST", store.url("/lots"), json=receipt(pbs, lot="L-J"))
    assert plain.status_code == 201 and plain.json()["coa"] is None
    without = await handler.send(  # multipart without a CoA
        "POST", store.url("/lots"), files={"receipt": (None, json.dumps(receipt(pbs, lot="L-N")))}
    )
    assert without.status_code == 201 and without.json()["coa"] is None
    assert (await verify_tenant(store.ctx.tenant_id, store.slug)).intact


BAD_FILES = [
    ("not a pdf", b"Certificate of analysis\nall fine\n", "coa.pdf", "application/pdf"),
    ("html as a pdf", b"<html><script>alert(1)</script></html>", "coa.pdf", "application/pdf"),
    ("a pdf declared as an image", pdf(), "coa.png", "image/png"),
    ("empty", b"", "coa.pdf", "application/pdf"),
]


@pytest.mark.parametrize(("case", "data", "name", "kind"), BAD_FILES)
async def test_a_bad_file_is_refused_and_nothing_is_stored(
    store: Store,
    browser: Any,
    owner: asyncpg.Connection,
    case: str,
    data: bytes,
    name: str,
    kind: str,
) -> None:
    handler = await browser("operator")
    pbs = await material(handler, store)
    lot = await received(handler, store, pbs)
    refused = await attach(handler, store, lot["id"], data, filename=name, content_type=kind)
    assert refused.status_code == 422, (case, refused.text)
    message = refused.json()["error"]["message"]
    assert message.startswith("coa: ") and ("PDF" in message or "empty" in message), message
    as_receipt = await handler.send(
        "POST",
        store.url("/lots"),
        data={"receipt": json.dumps(receipt(pbs, lot="L-BAD"))},
        files=coa_part(data, name, kind),
    )
    assert as_receipt.status_code == 422, as_receipt.text
    assert await stored_count(owner, store.ctx) == 0
    again = (await handler.get(store.url(f"/lots/{lot['id']}"))).json()
    assert again["coa"] is None and again["coa_file_id"] is None
    lots = (await handler.get(store.url("/lots"))).json()["items"]
    assert [i["lot_number"] for i in lots] == ["L-001"]
    assert await events(owner, store.ctx, "lot.coa_attached") == []


async def test_a_file_over_the_limit_is_refused(
    store: Store, browser: Any, owner: asyncpg.Connection, settings: Settings
) -> None:
    handler = await browser("operator")
    lot = await received(handler, store, await material(handler, store))
    big = pdf() + b"0" * settings.upload_max_bytes
    refused = await attach(handler, store, lot["id"], big)
    assert refused.status_code == 422, refused.text
    assert "at most 20.0 MB are accepted" in refused.json()["error"]["message"]
    far_too_big = await attach(handler, store, lot["id"], big + b"0" * 2 * 1024 * 1024)
    assert far_too_big.status_code == 413
    assert await stored_count(owner, store.ctx) == 0


async def test_a_text_field_or_no_file_is_not_a_coa(store: Store, browser: Any) -> None:
    handler = await browser("operator")
    lot = await received(handler, store, await material(handler, store))
    url = store.url(f"/lots/{lot['id']}/coa")
    as_text = await handler.send("POST", url, files={"coa": (None, "%PDF-1.7")})
    assert as_text.status_code == 422 and "not text" in as_text.json()["error"]["message"]
    as_json = await handler.send("POST", url, json={"coa": "x"})
    assert as_json.status_code == 422 and "choose the certificate" in as_json.text
    bad_id = await attach(handler, store, lot["id"], pdf(), replaces="nope")
    assert bad_id.status_code == 422 and "replaces" in bad_id.json()["error"]["message"]
    no_receipt = await handler.send(
        "POST", store.url("/lots"), files=coa_part(pdf()), data={"x": "1"}
    )
    assert no_receipt.status_code == 422 and "receipt" in no_receipt.json()["error"]["message"]
    broken = await handler.send(
        "POST", store.url("/lots"), data={"receipt": "{"}, files=coa_part(pdf())
    )
    assert broken.status_code == 400 and "not valid JSON" in broken.text
    wrong = await handler.send(
        "POST", store.url("/lots"), files={"receipt": (None, json.dumps({"lot_number": 1}))}
    )
    assert wrong.status_code == 422 and "lot_number" in wrong.json()["error"]["message"]
    twice = '{"lot_number": "A", "lot_number": "B"}'
    doubled = await handler.send(
        "POST", store.url("/lots"), files={"receipt": (None, twice), **coa_part(pdf())}
    )
    assert doubled.status_code == 400 and "twice" in doubled.json()["error"]["message"]


async def test_replacing_a_coa_needs_the_file_it_replaces_and_a_reason(
    store: Store, browser: Any, owner: asyncpg.Connection
) -> None:
    handler = await browser("operator")
    lot = await received(handler, store, await material(handler, store))
    first = (await attach(handler, store, lot["id"], pdf("first"))).json()["coa"]
    blind = await attach(handler, store, lot["id"], pdf("second"))
    assert blind.status_code == 409, blind.text
    assert "has a certificate of analysis already" in blind.json()["error"]["message"]
    no_reason = await attach(handler, store, lot["id"], pdf("second"), replaces=first["file_id"])
    assert no_reason.status_code == 422 and "reason is required" in no_reason.text
    second_data = pdf("second")
    replaced = await attach(
        handler,
        store,
        lot["id"],
        second_data,
        replaces=first["file_id"],
        reason="The supplier sent a corrected certificate",
    )
    assert replaced.status_code == 200, replaced.text
    second = replaced.json()["coa"]
    assert second["sha256"] == hashlib.sha256(second_data).hexdigest()
    stale = await attach(
        handler, store, lot["id"], pdf("third"), replaces=first["file_id"], reason="again"
    )
    assert stale.status_code == 409 and "was replaced since" in stale.text
    [event] = await events(owner, store.ctx, "lot.coa_replaced")
    assert event["old_values"]["coa"]["sha256"] == first["sha256"]
    assert event["new_values"]["coa"]["sha256"] == second["sha256"]
    assert event["reason"] == "The supplier sent a corrected certificate"
    got = await handler.get(store.url(f"/lots/{lot['id']}/coa"))
    assert got.content == second_data
    assert await stored_count(owner, store.ctx) == 2  # the first is kept (append-only)
    assert (await verify_tenant(store.ctx.tenant_id, store.slug)).intact


async def test_a_coa_is_attached_in_quarantine_or_on_hold_not_after_release(
    store: Store, browser: Any
) -> None:
    handler, qa = await browser("operator"), await browser("approver")
    pbs = await material(handler, store)
    held = await received(handler, store, pbs, lot="L-H")
    await handler.send("POST", store.url(f"/lots/{held['id']}/hold"), json={"reason": "check"})
    assert (await attach(handler, store, held["id"], pdf())).status_code == 200
    released = await received(handler, store, pbs, lot="L-R")
    assert (
        await qa.send("POST", store.url(f"/lots/{released['id']}/release"), json=SIGN)
    ).status_code == 200
    refused = await attach(handler, store, released["id"], pdf())
    assert refused.status_code == 409, refused.text
    assert "is released" in refused.json()["error"]["message"]
    assert (await handler.get(store.url(f"/lots/{released['id']}"))).json()["coa"] is None


async def test_roles_decide_who_attaches_and_who_reads(store: Store, browser: Any) -> None:
    """materials:manage attaches (the handler); materials:read downloads (QC); no materials
    permission (production operator, viewer) does neither."""
    handler, qc = await browser("operator"), await browser("author")
    viewer, admin = await browser("viewer"), await browser("admin")
    lot = await received(handler, store, await material(handler, store))
    for refused in (qc, viewer, admin):
        assert (await attach(refused, store, lot["id"], pdf())).status_code == 403
    assert (await attach(handler, store, lot["id"], pdf())).status_code == 200
    assert (await qc.get(f"/t/{store.slug}/lots/{lot['id']}/coa")).status_code == 200
    for refused in (viewer, admin):
        assert (await refused.get(f"/t/{store.slug}/lots/{lot['id']}/coa")).status_code == 403


async def test_another_tenants_lot_or_a_lot_without_a_coa_is_not_found(
    store: Store, browser: Any, world: World, owner: asyncpg.Connection
) -> None:
    handler, elsewhere = await browser("operator"), await browser("handler")
    in_alpha = await stored_count(owner, world.alpha)  # other tests store files in alpha too
    lot = await received(handler, store, await material(handler, store))
    bare = await received(handler, store, await material(handler, store, "TRIS"), lot="L-2")
    await attach(handler, store, lot["id"], pdf())
    none = await handler.get(f"/t/{store.slug}/lots/{bare['id']}/coa")
    assert none.status_code == 404 and "no certificate of analysis" in none.text
    random = str(uuid.uuid4())
    assert (await handler.get(store.url(f"/lots/{random}/coa"))).status_code == 404
    # A materials handler of alpha asks in alpha for this tenant's lot: the same 404 as for
    # any other id, and nothing is stored in either tenant.
    alpha = f"/api/v1/t/{world.alpha.slug}/lots"
    other = await elsewhere.get(f"{alpha}/{lot['id']}/coa")
    missing = await elsewhere.get(f"{alpha}/{random}/coa")
    assert other.status_code == missing.status_code == 404
    assert other.json()["error"]["message"] == missing.json()["error"]["message"]
    sent = await elsewhere.send(
        "POST", f"{alpha}/{lot['id']}/coa", files=coa_part(pdf()), data={"reason": "x"}
    )
    assert sent.status_code == 404
    page = await elsewhere.get(f"/t/{world.alpha.slug}/lots/{lot['id']}/coa")
    assert page.status_code == 404
    assert await stored_count(owner, world.alpha) == in_alpha
    assert await stored_count(owner, store.ctx) == 1


async def test_two_people_attaching_at_once_one_wins_the_other_gets_409(
    app_backend: Backend, store: Store, browser: Any, owner: asyncpg.Connection
) -> None:
    """The lot is row-locked: the first attachment commits; the second finds a CoA there and,
    not having meant to replace it, gets a 409 naming it (no silent overwrite). Two
    replacements of the same file: one wins, the other is told it was replaced since."""
    one, two = await browser("operator"), await browser("supervisor")
    lot = await received(one, store, await material(one, store))
    answers = await asyncio.gather(
        attach(one, store, lot["id"], pdf("one")), attach(two, store, lot["id"], pdf("two"))
    )
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    winner = next(a for a in answers if a.status_code == 200).json()["coa"]
    assert len(await events(owner, store.ctx, "lot.coa_attached")) == 1
    shown = (await one.get(store.url(f"/lots/{lot['id']}"))).json()["coa"]
    assert shown["file_id"] == winner["file_id"]
    replacing = await asyncio.gather(
        *[
            attach(c, store, lot["id"], pdf(n), replaces=winner["file_id"], reason=n)
            for c, n in ((one, "one"), (two, "two"))
        ]
    )
    assert sorted(a.status_code for a in replacing) == [200, 409], [a.text for a in replacing]
    assert len(await events(owner, store.ctx, "lot.coa_replaced")) == 1
    assert (await verify_tenant(store.ctx.tenant_id, store.slug)).intact


async def test_a_tampered_coa_is_refused_not_served(
    app_backend: Backend, store: Store, browser: Any
) -> None:
    handler = await browser("operator")
    lot = await received(handler, store, await material(handler, store))
    data = pdf("genuine")
    coa = (await attach(handler, store, lot["id"], data)).json()["coa"]
    key = f"tenants/{store.ctx.tenant_id}/{coa['sha256']}"
    app_backend.overwrite(key, data.replace(b"genuine", b"forged!"))
    for url in (f"/t/{store.slug}/lots/{lot['id']}/coa", store.url(f"/lots/{lot['id']}/coa")):
        got = await handler.get(url)
        assert got.status_code == 500, got.text
        assert b"forged" not in got.content
        assert "does not match its SHA-256" in got.text


async def test_stored_files_are_append_only_and_tenant_scoped(
    store: Store, browser: Any, owner: asyncpg.Connection, app_role: asyncpg.Connection
) -> None:
    handler = await browser("operator")
    lot = await received(handler, store, await material(handler, store))
    await attach(handler, store, lot["id"], pdf())
    with pytest.raises(asyncpg.PostgresError):
        await owner.execute(
            "UPDATE stored_files SET filename = 'x' WHERE tenant_id = $1", store.ctx.tenant_id
        )
    with pytest.raises(asyncpg.PostgresError):
        await owner.execute("DELETE FROM stored_files WHERE tenant_id = $1", store.ctx.tenant_id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await app_role.execute("UPDATE stored_files SET filename = 'x'")
    assert await app_role.fetchval("SELECT count(*) FROM stored_files") == 0  # no tenant set
    with pytest.raises(asyncpg.CheckViolationError):
        await owner.execute(
            "INSERT INTO stored_files (tenant_id, sha256, size_bytes, content_type, filename, "
            "storage_key, uploaded_by) SELECT $1, $2, 1, 'application/pdf', 'x.pdf', $3, "
            "uploaded_by FROM stored_files WHERE tenant_id = $1 LIMIT 1",
            store.ctx.tenant_id,
            "0" * 64,
            f"tenants/{uuid.uuid4()}/{'0' * 64}",  # another tenant's key
        )


async def test_an_attachment_not_vouched_for_by_the_audit_trail_is_a_finding(
    store: Store, browser: Any, owner: asyncpg.Connection
) -> None:
    """The CoA a lot links to must be the one an audit event attached (its id and SHA-256):
    a link changed behind the application's back is reported by `audit verify`."""
    from opencdmo.audit import queries as audit_queries
    from opencdmo.audit import sentences
    from opencdmo.audit.queries import AuditFilter
    from opencdmo.db.tx import read_view

    handler = await browser("operator")
    lot = await received(handler, store, await material(handler, store))
    first = (await attach(handler, store, lot["id"], pdf("one"), filename="one.pdf")).json()
    second = await attach(
        handler,
        store,
        lot["id"],
        pdf("two"),
        filename="two.pdf",
        replaces=first["coa"]["file_id"],
        reason="corrected",
    )
    assert (await verify_tenant(store.ctx.tenant_id, store.slug)).intact
    async with read_view(store.ctx):
        rows, _ = await audit_queries.page(store.ctx, AuditFilter(), limit=100, before=None)
        said = [s.text for s in await sentences.describe(store.ctx, rows)]
    short = first["coa"]["sha256"][:12]
    assert (
        f"Operator Person attached the certificate of analysis one.pdf (SHA-256 {short}…) to lot L-001"
        in said
    )
    assert any(
        s.startswith("Operator Person replaced the certificate of analysis of lot L-001")
        for s in said
    )
    await owner.execute(  # back to the first file, as no command did
        "UPDATE lots SET coa_file_id = $2 WHERE tenant_id = $1 AND id = $3",
        store.ctx.tenant_id,
        uuid.UUID(first["coa"]["file_id"]),
        uuid.UUID(lot["id"]),
    )
    report = await verify_tenant(store.ctx.tenant_id, store.slug)
    assert not report.intact
    assert any(
        "lot certificate of analysis" in f.message and "one.pdf" in f.message
        for f in report.findings
    )
    await owner.execute(  # restored: intact again
        "UPDATE lots SET coa_file_id = $2 WHERE tenant_id = $1 AND id = $3",
        store.ctx.tenant_id,
        uuid.UUID(second.json()["coa"]["file_id"]),
        uuid.UUID(lot["id"]),
    )
    assert (await verify_tenant(store.ctx.tenant_id, store.slug)).intact
