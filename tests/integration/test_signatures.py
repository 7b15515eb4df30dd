"""Electronic signatures: re-authentication, linking to the record's hash, separation of duties."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from opencdmo.db.tx import unit_of_work
from opencdmo.errors import Forbidden, NotAuthenticated, TooManyAttempts, ValidationFailed
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.signatures import service as signatures
from tests.conftest import PASSWORD, World, as_actor


async def sign(
    settings: Settings,
    ctx: TenantContext,
    record: Any,
    meaning: str,
    reason: str,
    password: str,
) -> signatures.SignatureView:
    """One signature as a command makes it: re-authenticated first, then applied inside the
    command's unit of work."""
    signing = await signatures.prepare(settings, ctx, meaning, reason, password)
    async with unit_of_work(ctx):
        return await signatures.apply(ctx, signing, record)


@dataclass
class Record:
    """A stand-in GMP record: any type with these members can be signed."""

    author_id: uuid.UUID | None
    record_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    record_type: str = "test_record"
    record_version: str = "1"
    content: dict[str, Any] = field(default_factory=lambda: {"steps": [{"ph": 7.2}]})

    def signed_content(self) -> Any:
        return self.content


async def test_sign_stores_the_manifestation_and_hash(
    world: World, settings: Settings, owner: asyncpg.Connection
) -> None:
    ctx = as_actor(world.alpha, world["approver"])
    record = Record(author_id=world["author"].user_id)
    view = await sign(settings, ctx, record, "approved", "Reviewed batch record", PASSWORD)
    assert view.valid
    assert view.signer_name == world["approver"].full_name
    assert view.meaning == "approved"
    assert view.signed_at.tzinfo is not None
    assert len(view.record_hash) == 64
    manifestation = view.manifestation("Europe/Berlin")
    assert world["approver"].full_name in manifestation
    assert "approved" in manifestation
    assert "CET" in manifestation or "CEST" in manifestation
    audited = await owner.fetchrow(
        "SELECT * FROM audit_events WHERE action = 'signature.applied' AND entity_id = $1",
        record.record_id,
    )
    assert audited["reason"] == "Reviewed batch record"
    assert json.loads(audited["new_values"])["record_hash"] == view.record_hash


async def test_changed_record_shows_the_signature_invalid(world: World, settings: Settings) -> None:
    ctx = as_actor(world.alpha, world["approver"])
    record = Record(author_id=world["author"].user_id)
    await sign(settings, ctx, record, "reviewed", "ok", PASSWORD)
    assert [s.valid for s in await signatures.signatures_for(ctx, record)] == [True]
    record.content["steps"][0]["ph"] = 7.3
    assert [s.valid for s in await signatures.signatures_for(ctx, record)] == [False]


async def test_author_cannot_approve_own_record(world: World, settings: Settings) -> None:
    ctx = as_actor(world.alpha, world["author"])
    record = Record(author_id=world["author"].user_id)
    with pytest.raises(Forbidden, match="Separation of duties"):
        await sign(settings, ctx, record, "approved", "mine", PASSWORD)
    authored = await sign(settings, ctx, record, "authored", "I wrote it", PASSWORD)
    assert authored.valid


async def test_wrong_password_is_refused_audited_and_throttled(
    world: World, settings: Settings, owner: asyncpg.Connection
) -> None:
    from opencdmo.identity import service as identity
    from opencdmo.tenancy import service as tenancy

    user = await identity.create_user(f"sig-{uuid.uuid4().hex[:6]}@alpha.test", "Signer", PASSWORD)
    await tenancy.add_member(world.alpha, user.id, ["qa_approver"])
    from tests.conftest import Persona

    ctx = as_actor(world.alpha, Persona("signer", user.email, user.full_name, user.id))
    record = Record(author_id=world["author"].user_id)
    for _ in range(settings.login_max_failures_account):
        with pytest.raises(NotAuthenticated):
            await sign(settings, ctx, record, "approved", "x", "not-my-password-1")
    with pytest.raises(TooManyAttempts):
        await sign(settings, ctx, record, "approved", "x", PASSWORD)
    failures = await owner.fetchval(
        "SELECT count(*) FROM audit_events WHERE action = 'signature.password_failed' AND actor_id = $1",
        user.id,
    )
    assert failures == settings.login_max_failures_account
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM signatures WHERE record_id = $1", record.record_id
        )
        == 0
    )


@pytest.mark.parametrize(("meaning", "reason"), [("approved", "  "), ("blessed", "why not")])
async def test_meaning_and_reason_are_required(
    world: World, settings: Settings, meaning: str, reason: str
) -> None:
    ctx = as_actor(world.alpha, world["approver"])
    with pytest.raises(ValidationFailed):
        await sign(settings, ctx, Record(author_id=None), meaning, reason, PASSWORD)


async def test_signatures_are_append_only(
    world: World, settings: Settings, owner: asyncpg.Connection
) -> None:
    ctx = as_actor(world.alpha, world["approver"])
    await sign(settings, ctx, Record(author_id=None), "verified", "checked", PASSWORD)
    for statement in ("UPDATE signatures SET meaning = 'approved'", "DELETE FROM signatures"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await owner.execute(statement)


async def test_a_failure_after_the_signature_leaves_no_signature(
    world: World, settings: Settings, owner: asyncpg.Connection
) -> None:
    """The signature commits with the command's state change or not at all."""
    ctx = as_actor(world.alpha, world["approver"])
    record = Record(author_id=world["author"].user_id)
    signing = await signatures.prepare(settings, ctx, "approved", "checked", PASSWORD)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):  # noqa: PT012 - the rollback of the whole command is the point
        async with unit_of_work(ctx):
            await signatures.apply(ctx, signing, record)
            raise Boom
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM signatures WHERE record_id = $1", record.record_id
        )
        == 0
    )
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM audit_events WHERE action = 'signature.applied' AND entity_id = $1",
            record.record_id,
        )
        == 0
    )


async def test_the_password_is_checked_before_the_unit_of_work_opens(
    world: World, settings: Settings
) -> None:
    ctx = as_actor(world.alpha, world["approver"])
    async with unit_of_work(ctx):
        with pytest.raises(RuntimeError, match="before the command's unit of work"):
            await signatures.prepare(settings, ctx, "approved", "x", PASSWORD)


async def test_a_signature_prepared_for_one_person_cannot_be_applied_by_another(
    world: World, settings: Settings
) -> None:
    signing = await signatures.prepare(
        settings, as_actor(world.alpha, world["approver"]), "approved", "x", PASSWORD
    )
    other = as_actor(world.alpha, world["operator"])
    async with unit_of_work(other):
        with pytest.raises(NotAuthenticated):
            await signatures.apply(other, signing, Record(author_id=None))
