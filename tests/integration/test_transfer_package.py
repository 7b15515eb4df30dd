"""Tech-transfer packages against the real database and blob store: exported from an
effective revision only, signed by QA with the password, verified; refusals write nothing;
another tenant's recipe is not found; two exports at once both land; the trusted sender keys;
the CLI's exit codes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from lxml import etree

from opencdmo.b2mml.schema import problems, safe_parser
from opencdmo.b2mml.xml import B2MML
from opencdmo.canonical import content_hash
from opencdmo.errors import Conflict, Forbidden, NotAuthenticated, NotFound, ValidationFailed
from opencdmo.recipes import service as recipes
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from opencdmo.transfer import export, inbound, keys
from opencdmo.transfer.verify import verify_file
from tests.conftest import PASSWORD, World, as_actor, member_as
from tests.integration.conftest import new_lab, reviewable
from tests.integration.test_cli import cli_env, run
from tests.integration.test_recipes import design

__all__ = ["cli_env"]


async def _draft(lab: dict[str, Any], name: str = "Transferred process") -> UUID:
    recipe = await recipes.create(lab["author"], name)
    await recipes.save(lab["author"], recipe, reviewable(design(lab["uo"]), lab["method"]), 1)
    return recipe


async def _effective(settings: Settings, lab: dict[str, Any], name: str = "Sent") -> UUID:
    recipe = await _draft(lab, name)
    await recipes.submit(settings, lab["author"], recipe, PASSWORD, "ready for review")
    await recipes.approve(settings, lab["approver"], recipe, PASSWORD, "ok", approvers_required=1)
    await recipes.make_effective(settings, lab["approver"], recipe, PASSWORD, "in force")
    return recipe


async def _count(owner: asyncpg.Connection, table: str, tenant: UUID) -> int:
    found: int = await owner.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant)
    return found


async def _events(owner: asyncpg.Connection, tenant: UUID, action: str) -> list[Any]:
    rows = await owner.fetch(
        "SELECT entity_id, new_values, reason FROM audit_events "
        "WHERE tenant_id = $1 AND action = $2 ORDER BY seq",
        tenant,
        action,
    )
    return [(r["entity_id"], json.loads(r["new_values"]), r["reason"]) for r in rows]


def _sign(reason: str, password: str = PASSWORD) -> dict[str, str]:
    return {"password": password, "reason": reason}


async def test_export_of_the_effective_revision_verifies(
    lab: dict[str, Any],
    settings: Settings,
    browser: Any,
    owner: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    recipe = await _effective(settings, lab)
    approver = await browser("approver")
    url = f"/api/v1/t/{lab['ctx'].slug}/recipes/{recipe}/transfer-packages"
    answer = await approver.send("POST", url, json=_sign("to the CDMO"))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    download = await approver.get(body["download"])
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/zip"
    assert download.headers["x-content-sha256"] == body["sha256"]
    path = tmp_path / "package.zip"
    path.write_bytes(download.content)
    checked = verify_file(path, {body["sender_fingerprint"]})
    assert checked.findings == [] and checked.contents is not None
    contents = checked.contents
    stored = await recipes.get(lab["author"], recipe)
    assert contents.revision["content"] == stored.content
    assert contents.revision["revision"] == stored.effective_revision == body["revision"]
    assert contents.revision["content_hash"] == body["content_hash"]
    kinds = sorted(i["kind"] for i in contents.items)
    assert kinds == ["method", "unit_operation"]
    assert all(content_hash(i["content"]) == i["content_hash"] for i in contents.items)
    assert contents.documents == [] and contents.batchml is not None
    document = etree.fromstring(contents.batchml, safe_parser())
    assert problems(document, "BatchML-BatchInformation.xsd") == []  # valid ISA-88 BatchML
    assert document.find(f"{{{B2MML}}}MasterRecipe/{{{B2MML}}}ID").text == str(recipe)
    approval = contents.manifest.approval
    assert approval is not None and approval.meaning == "approved for transfer"
    assert approval.signer_name == "Approver Person"
    signature = await owner.fetchrow(
        "SELECT id, record_type, record_hash, meaning, reason FROM signatures "
        "WHERE tenant_id = $1 AND id = $2",
        lab["ctx"].tenant_id,
        body["signature_id"],
    )
    assert signature["record_type"] == "transfer_package"
    assert signature["record_hash"] == approval.digest
    assert (signature["meaning"], signature["reason"]) == ("approved for transfer", "to the CDMO")
    assert str(signature["id"]) == approval.signature_id
    exported = await _events(owner, lab["ctx"].tenant_id, "transfer.package_exported")
    assert [(e[0], e[1]["sha256"], e[2]) for e in exported] == [
        (body["id"], body["sha256"], "to the CDMO")
    ]
    created = await _events(owner, lab["ctx"].tenant_id, "transfer.key_created")
    assert [e[1]["fingerprint"] for e in created] == [body["sender_fingerprint"]]
    # Not trusted by a receiver that does not know the key.
    assert [f.code for f in verify_file(path, set()).findings] == ["untrusted_key"]
    listed = await approver.get(f"/api/v1/t/{lab['ctx'].slug}/transfer/packages")
    assert [p["id"] for p in listed.json()] == [body["id"]]


@pytest.mark.parametrize("state", ["draft", "in_review", "retired"])
async def test_only_an_effective_revision_is_exported(
    lab: dict[str, Any], settings: Settings, owner: asyncpg.Connection, state: str
) -> None:
    recipe = await _draft(lab)
    if state == "in_review":
        await recipes.submit(settings, lab["author"], recipe, PASSWORD, "ready")
    if state == "retired":
        recipe = await _effective(settings, lab)
        await recipes.retire(settings, lab["approver"], recipe, PASSWORD, "superseded")
    before = await _count(owner, "signatures", lab["ctx"].tenant_id)
    with pytest.raises(Conflict, match="only an effective revision is exported"):
        await export.export_package(settings, lab["approver"], recipe, PASSWORD, "go")
    assert await _count(owner, "transfer_packages", lab["ctx"].tenant_id) == 0
    assert await _count(owner, "signatures", lab["ctx"].tenant_id) == before


async def test_a_wrong_password_writes_nothing(
    lab: dict[str, Any],
    settings: Settings,
    world: World,
    owner: asyncpg.Connection,
    browser: Any,
) -> None:
    """A wrong password, a missing or blank reason, the recipe's author as signer: refused,
    nothing written (no package, no key, no signature, no event)."""
    recipe = await _effective(settings, lab)
    before = await _count(owner, "signatures", lab["ctx"].tenant_id)
    with pytest.raises(NotAuthenticated):
        await export.export_package(settings, lab["approver"], recipe, "not it", "go")
    approver = await browser("approver")
    url = f"/api/v1/t/{lab['ctx'].slug}/recipes/{recipe}/transfer-packages"
    for body, status in (
        (_sign("go", "wrong"), 401),
        ({"password": PASSWORD, "reason": "   "}, 422),
        ({"password": PASSWORD}, 422),
        ({"password": PASSWORD, "reason": "x" * 3000}, 422),
    ):
        answer = await approver.send("POST", url, json=body)
        assert answer.status_code == status, answer.text
    membership = await tenancy.membership_of(lab["ctx"], world["author"].user_id)
    assert membership is not None
    await tenancy.set_roles(lab["ctx"], membership, ["qa_approver"], "also QA", only_add=True)
    author = await member_as(lab["ctx"], world["author"])
    with pytest.raises(Forbidden, match="Separation of duties"):
        await export.export_package(settings, author, recipe, PASSWORD, "my own")
    for table in ("transfer_packages", "transfer_signing_keys"):
        assert await _count(owner, table, lab["ctx"].tenant_id) == 0, table
    assert await _count(owner, "signatures", lab["ctx"].tenant_id) == before
    assert await _events(owner, lab["ctx"].tenant_id, "transfer.package_exported") == []


async def test_another_tenants_recipe_is_not_found(
    lab: dict[str, Any], settings: Settings, world: World, browser: Any, synced: Any
) -> None:
    recipe = await _effective(settings, lab)
    other = await new_lab(world)
    with pytest.raises(NotFound):
        await export.export_package(settings, other["approver"], recipe, PASSWORD, "go")
    approver = await browser("approver")
    url = f"/api/v1/t/{other['ctx'].slug}/recipes/{recipe}/transfer-packages"
    answer = await approver.send("POST", url, json=_sign("go"))
    assert answer.status_code == 404, answer.text
    made = await export.export_package(settings, lab["approver"], recipe, PASSWORD, "go")
    archive = f"/api/v1/t/{other['ctx'].slug}/transfer/packages/{made.package.id}/archive"
    assert (await approver.get(archive)).status_code == 404
    with pytest.raises(NotFound):
        await export.package_of(other["approver"], made.package.id)


async def test_two_exports_at_the_same_moment_both_land_with_one_key(
    lab: dict[str, Any],
    settings: Settings,
    world: World,
    browser: Any,
    owner: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    await tenancy.add_member(lab["ctx"], world["viewer"].user_id, ["qa_approver"])
    recipe = await _effective(settings, lab)
    first, second = await browser("approver"), await browser("viewer")
    url = f"/api/v1/t/{lab['ctx'].slug}/recipes/{recipe}/transfer-packages"
    answers = await asyncio.gather(
        first.send("POST", url, json=_sign("first")),
        second.send("POST", url, json=_sign("second")),
    )
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 2
    assert len({a.json()["sender_fingerprint"] for a in answers}) == 1
    assert await _count(owner, "transfer_signing_keys", lab["ctx"].tenant_id) == 1
    assert len(await _events(owner, lab["ctx"].tenant_id, "transfer.key_created")) == 1
    assert len(await _events(owner, lab["ctx"].tenant_id, "transfer.package_exported")) == 2
    for answer in answers:
        path = tmp_path / f"{answer.json()['id']}.zip"
        path.write_bytes((await first.get(answer.json()["download"])).content)
        assert verify_file(path, {answer.json()["sender_fingerprint"]}).valid


async def test_trusting_a_sender_key(
    lab: dict[str, Any],
    settings: Settings,
    world: World,
    owner: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    await tenancy.add_member(lab["ctx"], world["admin"].user_id, ["tenant_admin"])
    admin = await member_as(lab["ctx"], world["admin"])
    recipe = await _effective(settings, lab)
    made = await export.export_package(settings, lab["approver"], recipe, PASSWORD, "go")
    receiver = await new_lab(world)
    await tenancy.add_member(receiver["ctx"], world["admin"].user_id, ["tenant_admin"])
    receiving = await member_as(receiver["ctx"], world["admin"])
    sender_key = await keys.public_key(admin)
    assert sender_key is not None and sender_key.fingerprint == made.package.sender_fingerprint
    path = tmp_path / "received.zip"
    path.write_bytes(await export.package_bytes(admin, made.package))
    before = await inbound.verify_for(receiving, path)
    assert [f.code for f in before.findings] == ["untrusted_key"] and before.contents is None
    refusals = {
        ("", sender_key.fingerprint): "Paste or upload",
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "00"): "readable",
        ("QUJD", sender_key.fingerprint): "32 bytes",
        (sender_key.pem, "0" * 64): "is not this key's",
    }
    for (text, fingerprint), said in refusals.items():
        with pytest.raises(ValidationFailed, match=said):
            await keys.trust(receiving, text, fingerprint, "Sponsor")
    assert await _count(owner, "transfer_trusted_keys", receiver["ctx"].tenant_id) == 0
    assert not await keys.trusted(receiving, sender_key.fingerprint)
    spaced = " ".join(sender_key.fingerprint[i : i + 4] for i in range(0, 64, 4)).upper()
    row = await keys.trust(receiving, sender_key.pem, spaced, "Sponsor Bio")
    assert row.fingerprint == sender_key.fingerprint
    assert await keys.trusted(receiving, sender_key.fingerprint)
    assert not await keys.trusted(admin, sender_key.fingerprint)  # only where it was trusted
    after = await inbound.verify_for(receiving, path)
    assert after.valid and after.contents is not None
    assert after.contents.revision["recipe_id"] == str(recipe)
    with pytest.raises(Conflict, match="trusted already"):
        await keys.trust(receiving, sender_key.base64, sender_key.fingerprint, "Again")
    with pytest.raises(NotFound):
        await keys.untrust(admin, row.id, "not yours")
    with pytest.raises(ValidationFailed, match="reason"):
        await keys.untrust(receiving, row.id, "  ")
    removed = await keys.untrust(receiving, row.id, "contract ended")
    assert removed.removal_reason == "contract ended" and not removed.current
    assert not await keys.trusted(receiving, sender_key.fingerprint)
    events = await _events(owner, receiver["ctx"].tenant_id, "transfer.key_trusted")
    assert [(e[0], e[1]["fingerprint"]) for e in events] == [(str(row.id), row.fingerprint)]
    untrusted = await _events(owner, receiver["ctx"].tenant_id, "transfer.key_untrusted")
    assert [(e[0], e[2]) for e in untrusted] == [(str(row.id), "contract ended")]
    with pytest.raises(Conflict, match="removed"):
        await keys.untrust(receiving, row.id, "again")


async def test_the_settings_page_and_the_pem(
    lab: dict[str, Any], settings: Settings, world: World, browser: Any
) -> None:
    await tenancy.add_member(lab["ctx"], world["admin"].user_id, ["tenant_admin"])
    admin = await browser("admin")
    base = f"/t/{lab['ctx'].slug}/settings/transfer"
    page = await admin.get(base)
    assert page.status_code == 200 and "No signing key yet" in page.text
    assert (await admin.get(base + "/key.pem")).status_code == 404
    created = await admin.send("POST", base + "/key", data={"_csrf_token": admin.csrf})
    assert created.status_code == 303
    key = await keys.public_key(as_actor(lab["ctx"], world["admin"]))
    assert key is not None
    page = await admin.get(base)
    assert key.fingerprint in page.text
    pem = await admin.get(base + "/key.pem")
    assert pem.status_code == 200 and pem.text == key.pem
    refused = await admin.send(
        "POST",
        base + "/trusted",
        data={
            "public_key": key.pem,
            "fingerprint": "0" * 64,
            "label": "Us",
            "_csrf_token": admin.csrf,
        },
    )
    assert refused.status_code == 422 and "is not this key&#39;s" in refused.text
    again = await admin.send("POST", base + "/key", data={"_csrf_token": admin.csrf})
    assert again.status_code == 303
    assert (await keys.public_key(as_actor(lab["ctx"], world["admin"]))) == key


async def test_the_export_form_on_the_recipe_page(
    lab: dict[str, Any], settings: Settings, browser: Any, owner: asyncpg.Connection
) -> None:
    recipe = await _effective(settings, lab)
    approver = await browser("approver")
    page = await approver.get(f"/t/{lab['ctx'].slug}/recipes/{recipe}")
    assert "Export for tech transfer" in page.text
    action = f"/t/{lab['ctx'].slug}/recipes/{recipe}/transfer-packages"
    wrong = await approver.send(
        "POST", action, data={"password": "no", "reason": "go", "_csrf_token": approver.csrf}
    )
    assert wrong.status_code == 401 and "password is incorrect" in wrong.text
    done = await approver.send(
        "POST", action, data={"password": PASSWORD, "reason": "go", "_csrf_token": approver.csrf}
    )
    assert done.status_code == 303, done.text
    listing = await approver.get(done.headers["location"])
    assert "Signed and exported revision 2" in listing.text
    assert await _count(owner, "transfer_packages", lab["ctx"].tenant_id) == 1


async def test_cli_export_and_verify_exit_codes(
    synced: Any,
    settings: Settings,
    world: World,
    owner: asyncpg.Connection,
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    from tests.integration.conftest import activation, viability

    fresh = await new_lab(world)
    lab = {**fresh, "uo": await activation(owner, fresh["ctx"])}
    lab["method"] = await viability(owner, fresh["ctx"])
    recipe = await _effective(settings, lab)
    out = tmp_path / "sent.zip"
    args = ("transfer", "export", "--tenant", fresh["ctx"].slug, "--recipe", str(recipe))
    code, said, err = await run(
        cli_env, *args, "--out", str(out), "--email", world["approver"].email, stdin=PASSWORD
    )
    assert code == 0, err
    fingerprint = said.split("signed by key ")[1].split()[0]
    code, said, err = await run(
        cli_env, "transfer", "verify", str(out), "--trust", fingerprint, "--progress"
    )
    assert (code, said.startswith("VALID")) == (0, True), said
    assert "verifying [" in err and "100 %" in err
    code, said, _ = await run(cli_env, "transfer", "verify", str(out))
    assert code == 1 and "untrusted_key" in said
    tampered = tmp_path / "tampered.zip"
    data = bytearray(out.read_bytes())
    data[30 + len("manifest.json") + 8] ^= 0x01  # inside the manifest's deflated bytes
    tampered.write_bytes(bytes(data))
    code, said, _ = await run(cli_env, "transfer", "verify", str(tampered), "--trust", fingerprint)
    assert code == 1 and "INVALID" in said
    code, _, err = await run(cli_env, "transfer", "verify", str(tmp_path / "missing.zip"))
    assert code == 2 and "cannot read" in err
    code, _, err = await run(cli_env, "transfer", "verify", str(out), "--trust", "nonsense")
    assert code == 2
    code, said, _ = await run(
        cli_env, "transfer", "verify", str(out), "--tenant", fresh["ctx"].slug
    )
    assert code == 1 and "untrusted_key" in said
    await tenancy.add_member(fresh["ctx"], world["admin"].user_id, ["tenant_admin"])
    admin = await member_as(fresh["ctx"], world["admin"])
    sender = await keys.public_key(admin)
    assert sender is not None
    await keys.trust(admin, sender.pem, sender.fingerprint, "Ourselves")
    code, said, _ = await run(
        cli_env, "transfer", "verify", str(out), "--tenant", fresh["ctx"].slug
    )
    assert code == 0, said
    wrong = await run(
        cli_env, *args, "--out", str(out), "--email", world["approver"].email, stdin="wrong"
    )
    assert wrong[0] == 2 and "password is incorrect" in wrong[2]
