"""The keyed chain and its checkpoints against every kind of tampering, done as the database
superuser (the owner here) with the append-only triggers switched off, as a superuser can."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from opencdmo.audit import keeper, keys
from opencdmo.audit import service as audit
from opencdmo.audit.chain import AUDIT_FIELDS, GENESIS, event_hash
from opencdmo.audit.checkpoints import LocalCheckpointStore, tenant_chain
from opencdmo.audit.verify import ChainReport, tenant, verify_security_chain, verify_tenant
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext
from opencdmo.tenancy import service as tenancy
from tests.conftest import AUDIT_KEY, recorded

pytestmark = pytest.mark.usefixtures("app")


async def _scratch_tenant(events: int = 6) -> TenantContext:
    """A tenant whose chain has ``events`` events (the first is tenant.created)."""
    slug = f"c-{uuid.uuid4().hex[:10]}"
    ctx = await tenancy.create_tenant(slug, "Chain", "cdmo", SYSTEM, RequestMeta())
    for i in range(events - 1):
        await recorded(ctx, "test.event", "thing", i, new={"n": i, "x": 1.5})
    return ctx


async def _tamper(owner: asyncpg.Connection, sql: str, *args: Any) -> None:
    """As superuser, with the append-only triggers out of the way."""
    async with owner.transaction():
        await owner.execute("SET LOCAL session_replication_role = replica")
        await owner.execute(sql, *args)


async def _rewind_head(owner: asyncpg.Connection, ctx: TenantContext, seq: int) -> None:
    await _tamper(
        owner,
        "UPDATE audit_heads SET last_seq = $2, last_hash = coalesce((SELECT hash FROM audit_events"
        " WHERE tenant_id = $1 AND seq = $2), repeat('0', 64)) WHERE tenant_id = $1",
        ctx.tenant_id,
        seq,
    )


async def _verify(ctx: TenantContext, store: LocalCheckpointStore | None = None) -> ChainReport:
    return await verify_tenant(ctx.tenant_id, ctx.slug, store)


@pytest.fixture
def store(tmp_path: Path) -> LocalCheckpointStore:
    return LocalCheckpointStore(tmp_path / "audit-checkpoints")


async def test_events_are_keyed_and_name_their_key_never_the_key(
    owner: asyncpg.Connection,
) -> None:
    ctx = await _scratch_tenant(4)
    rows = await owner.fetch(
        "SELECT seq, algorithm, key_id, mac, hash, to_jsonb(e)::text AS everything "
        "FROM audit_events e WHERE tenant_id = $1 ORDER BY seq",
        ctx.tenant_id,
    )
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert {r["algorithm"] for r in rows} == {"hmac-sha256"}
    assert {r["key_id"] for r in rows} == {keys.make_key(AUDIT_KEY).id}
    assert all(AUDIT_KEY not in r["everything"] for r in rows)
    # Unkeyed SHA-256 over the same document does not give the stored MAC.
    first = await owner.fetchrow(
        "SELECT * FROM audit_events WHERE tenant_id = $1 AND seq = 1", ctx.tenant_id
    )
    assert event_hash(GENESIS, first, AUDIT_FIELDS) != first["hash"]
    report = await _verify(ctx)
    assert (report.intact, report.checked) == (True, 4)


async def test_altered_event_is_named(owner: asyncpg.Connection) -> None:
    ctx = await _scratch_tenant()
    await _tamper(
        owner,
        'UPDATE audit_events SET new_values = \'{"n": 99, "x": 1.5}\' '
        "WHERE tenant_id = $1 AND seq = 4",
        ctx.tenant_id,
    )
    report = await _verify(ctx)
    assert (report.kinds, report.broken_at, report.checked) == (["altered"], 4, 3)


async def test_altered_time_is_named(owner: asyncpg.Connection) -> None:
    ctx = await _scratch_tenant()
    await _tamper(
        owner,
        "UPDATE audit_events SET occurred_at = occurred_at - interval '1 day' "
        "WHERE tenant_id = $1 AND seq = 2",
        ctx.tenant_id,
    )
    report = await _verify(ctx)
    assert (report.kinds, report.broken_at) == (["altered"], 2)


async def test_altered_and_rehashed_event_is_named(owner: asyncpg.Connection) -> None:
    ctx = await _scratch_tenant()
    await _tamper(
        owner,
        "UPDATE audit_events SET actor_name = 'someone else', hash = repeat('a', 64) "
        "WHERE tenant_id = $1 AND seq = 2",
        ctx.tenant_id,
    )
    report = await _verify(ctx)
    assert (report.kinds, report.broken_at) == (["altered"], 2)


async def test_deletion_in_the_middle_is_named(owner: asyncpg.Connection) -> None:
    ctx = await _scratch_tenant()
    await _tamper(owner, "DELETE FROM audit_events WHERE tenant_id = $1 AND seq = 3", ctx.tenant_id)
    report = await _verify(ctx)
    assert (report.kinds, report.broken_at) == (["deleted"], 3)


async def test_deletion_in_the_middle_with_renumbering_is_named(
    owner: asyncpg.Connection,
) -> None:
    ctx = await _scratch_tenant()
    await _tamper(owner, "DELETE FROM audit_events WHERE tenant_id = $1 AND seq = 3", ctx.tenant_id)
    for seq in (4, 5, 6):
        await _tamper(
            owner,
            "UPDATE audit_events SET seq = $2 - 1 WHERE tenant_id = $1 AND seq = $2",
            ctx.tenant_id,
            seq,
        )
    await _rewind_head(owner, ctx, 5)
    report = await _verify(ctx)
    assert (report.kinds, report.broken_at) == (["deleted"], 3)


async def test_deleted_last_event_without_rewinding_the_head_is_named(
    owner: asyncpg.Connection,
) -> None:
    ctx = await _scratch_tenant()
    await _tamper(owner, "DELETE FROM audit_events WHERE tenant_id = $1 AND seq = 6", ctx.tenant_id)
    report = await _verify(ctx)
    assert (report.kinds, report.broken_at) == (["truncated"], 6)


async def test_truncation_with_the_head_rewound_is_caught_by_the_checkpoint(
    owner: asyncpg.Connection, store: LocalCheckpointStore
) -> None:
    ctx = await _scratch_tenant()
    result = await keeper.checkpoint_chain(tenant(ctx.tenant_id, ctx.slug), store)
    assert result.written is not None and result.written.seq == 6
    await _tamper(
        owner, "DELETE FROM audit_events WHERE tenant_id = $1 AND seq >= 5", ctx.tenant_id
    )
    await _rewind_head(owner, ctx, 4)
    assert (await _verify(ctx)).intact, "without a checkpoint the rewound chain looks whole"
    report = await _verify(ctx, store)
    assert (report.kinds, report.broken_at) == (["truncated"], 5)
    assert "recorded 6 events: events 5-6 were removed" in (report.problem or "")
    # The checkpoint writer refuses to checkpoint the shortened chain.
    again = await keeper.checkpoint_chain(tenant(ctx.tenant_id, ctx.slug), store)
    assert again.written is None
    assert again.report.kinds == ["truncated"]


_COLUMNS = (
    "tenant_id, id, seq, occurred_at, actor_id, actor_name, action, entity_type, entity_id, "
    "old_values, new_values, reason, request_id, address, prev_hash, hash, algorithm, key_id, mac"
)


async def test_inserted_event_is_named(owner: asyncpg.Connection) -> None:
    ctx = await _scratch_tenant()
    # Make room at 3 and insert a forged event there, copying a neighbour's hashes.
    for seq in (6, 5, 4, 3):
        await _tamper(
            owner,
            "UPDATE audit_events SET seq = $2 + 1 WHERE tenant_id = $1 AND seq = $2",
            ctx.tenant_id,
            seq,
        )
    forged = _COLUMNS.replace("id, seq,", "gen_random_uuid(), 3,").replace(
        "action,", "'forged.event',"
    )
    await _tamper(
        owner,
        f"INSERT INTO audit_events ({_COLUMNS}) SELECT {forged} FROM audit_events "
        "WHERE tenant_id = $1 AND seq = 2",
        ctx.tenant_id,
    )
    await _rewind_head(owner, ctx, 7)
    report = await _verify(ctx)
    assert (report.kinds, report.broken_at) == (["inserted"], 3)


async def test_forged_append_with_the_head_updated_is_named(owner: asyncpg.Connection) -> None:
    ctx = await _scratch_tenant()
    # Without the key, the forger can only make up the MAC (here: the unkeyed hash).
    last = await owner.fetchrow(
        "SELECT * FROM audit_events WHERE tenant_id = $1 AND seq = 6", ctx.tenant_id
    )
    row = {**dict(last), "id": uuid.uuid4(), "seq": 7, "action": "recipe.approve"}
    digest = event_hash(last["hash"], row, AUDIT_FIELDS)
    forged = _COLUMNS.replace("tenant_id, id, seq,", "tenant_id, $2, 7,").replace(
        "action,", "'recipe.approve',"
    )
    forged = forged.replace("prev_hash, hash,", "hash, $3,")
    await _tamper(
        owner,
        f"INSERT INTO audit_events ({_COLUMNS}) SELECT {forged} FROM audit_events "
        "WHERE tenant_id = $1 AND seq = 6",
        ctx.tenant_id,
        row["id"],
        digest,
    )
    await _rewind_head(owner, ctx, 7)
    report = await _verify(ctx)
    assert (report.kinds, report.broken_at) == (["forged"], 7)
    # The same append marked as an unkeyed (pre-key) event is refused too.
    await _tamper(
        owner,
        "UPDATE audit_events SET algorithm = 'sha256', key_id = NULL, mac = NULL "
        "WHERE tenant_id = $1 AND seq = 7",
        ctx.tenant_id,
    )
    report = await _verify(ctx)
    assert (report.kinds, report.broken_at) == (["unkeyed"], 7)


async def test_reordered_events_are_named(owner: asyncpg.Connection) -> None:
    ctx = await _scratch_tenant()
    for old, new in ((4, -4), (5, 4), (-4, 5)):
        await _tamper(
            owner,
            "UPDATE audit_events SET seq = $3 WHERE tenant_id = $1 AND seq = $2",
            ctx.tenant_id,
            old,
            new,
        )
    report = await _verify(ctx)
    assert (report.kinds, report.broken_at) == (["reordered"], 4)


async def test_unsealed_event_inserted_without_the_key_is_named_and_never_sealed(
    owner: asyncpg.Connection,
) -> None:
    ctx = await _scratch_tenant(3)
    forged = _COLUMNS.replace("id, seq,", "gen_random_uuid(), NULL,")
    forged = forged.replace("prev_hash, hash,", "NULL, NULL,").replace("mac", "repeat('b', 64)")
    await _tamper(
        owner,
        f"INSERT INTO audit_events ({_COLUMNS}) SELECT {forged} FROM audit_events "
        "WHERE tenant_id = $1 AND seq = 3",
        ctx.tenant_id,
    )
    await keeper.sweep()
    report = await _verify(ctx)
    assert report.kinds == ["inserted"]
    assert report.broken_at is None and report.checked == 3
    unsealed = await owner.fetchval(
        "SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND seq IS NULL", ctx.tenant_id
    )
    assert unsealed == 1


async def test_wrong_key_is_reported_as_such(store: LocalCheckpointStore) -> None:
    ctx = await _scratch_tenant(3)
    await keeper.checkpoint_chain(tenant(ctx.tenant_id, ctx.slug), store)
    try:
        keys.use(keys.Keyring(keys.make_key("a-different-audit-key-" + "9" * 20)))
        report = await _verify(ctx, store)
    finally:
        keys.use(keys.Keyring(keys.make_key(AUDIT_KEY)))
    assert report.kinds == ["wrong_key", "wrong_key"]  # the checkpoint, then event 1
    assert all("wrong key" in f.message for f in report.findings)
    assert report.broken_at == 1


async def test_a_retired_key_still_verifies_after_rotation(store: LocalCheckpointStore) -> None:
    ctx = await _scratch_tenant(3)
    await keeper.checkpoint_chain(tenant(ctx.tenant_id, ctx.slug), store)
    rotated = keys.make_key("the-next-audit-key-" + "7" * 20)
    try:
        keys.use(keys.Keyring(rotated, (keys.make_key(AUDIT_KEY),)))
        await recorded(ctx, "test.after_rotation", "thing", 1)
        report = await _verify(ctx, store)
        assert (report.intact, report.checked) == (True, 4)
        result = await keeper.checkpoint_chain(tenant(ctx.tenant_id, ctx.slug), store)
        assert result.written is not None and result.written.key_id == rotated.id
    finally:
        keys.use(keys.Keyring(keys.make_key(AUDIT_KEY)))


async def test_checkpoint_whose_signature_does_not_verify_is_named(
    store: LocalCheckpointStore,
) -> None:
    ctx = await _scratch_tenant(4)
    await keeper.checkpoint_chain(tenant(ctx.tenant_id, ctx.slug), store)
    path = store.directory / f"{tenant_chain(ctx.tenant_id)}.jsonl"
    entry = json.loads(path.read_text().splitlines()[-1])
    # Someone without the key lowers the checkpointed length, to hide a later truncation.
    path.write_text(path.read_text() + json.dumps({**entry, "seq": 2}) + "\n")
    report = await _verify(ctx, store)
    assert report.kinds == ["bad_checkpoint"]
    assert "does not verify" in (report.problem or "")
    assert report.broken_at == 2


async def test_platform_security_chain_tampering_is_detected(owner: asyncpg.Connection) -> None:
    await audit.record_security("test.platform", actor=SYSTEM, meta=RequestMeta(), detail={"a": 1})
    seq = await owner.fetchval("SELECT max(seq) FROM security_events")
    await audit.record_security("test.platform", actor=SYSTEM, meta=RequestMeta(), detail={"b": 1})
    assert (await verify_security_chain()).intact
    original = await owner.fetchval("SELECT detail::text FROM security_events WHERE seq = $1", seq)
    await _tamper(owner, "UPDATE security_events SET detail = '{\"a\": 2}' WHERE seq = $1", seq)
    try:
        report = await verify_security_chain()
        assert (report.kinds, report.broken_at) == (["altered"], seq)
    finally:
        await _tamper(
            owner, "UPDATE security_events SET detail = $2::json WHERE seq = $1", seq, original
        )
    assert (await verify_security_chain()).intact


# --- chains from before the key ---------------------------------------------------------------


async def _make_legacy(owner: asyncpg.Connection, ctx: TenantContext) -> None:
    """Rewrite a chain as an install from before the key wrote it: unkeyed SHA-256."""
    prev = GENESIS
    rows = await owner.fetch(
        "SELECT * FROM audit_events WHERE tenant_id = $1 ORDER BY seq", ctx.tenant_id
    )
    for row in rows:
        digest = event_hash(prev, row, AUDIT_FIELDS)
        await _tamper(
            owner,
            "UPDATE audit_events SET algorithm = 'sha256', key_id = NULL, mac = NULL, "
            "prev_hash = $3, hash = $4 WHERE tenant_id = $1 AND seq = $2",
            ctx.tenant_id,
            row["seq"],
            prev,
            digest,
        )
        prev = digest
    await _rewind_head(owner, ctx, len(rows))


async def test_unkeyed_events_from_before_the_key_verify_once_anchored(
    owner: asyncpg.Connection,
) -> None:
    ctx = await _scratch_tenant(4)
    await _make_legacy(owner, ctx)
    report = await _verify(ctx)
    assert (report.kinds, report.broken_at) == (["unkeyed"], 1), "nothing vouches for them yet"
    assert f"tenant {ctx.slug}" in await keeper.anchor_legacy()
    await audit.drain()
    anchored = await _verify(ctx)
    assert (anchored.intact, anchored.checked) == (True, 5)
    anchor = await owner.fetchrow(
        "SELECT action, algorithm FROM audit_events WHERE tenant_id = $1 AND seq = 5",
        ctx.tenant_id,
    )
    assert dict(anchor) == {"action": "audit.chain_keyed", "algorithm": "hmac-sha256"}
    assert f"tenant {ctx.slug}" not in await keeper.anchor_legacy(), "anchored once"


async def test_rewriting_unkeyed_events_breaks_at_the_keyed_anchor(
    owner: asyncpg.Connection,
) -> None:
    ctx = await _scratch_tenant(4)
    await _make_legacy(owner, ctx)
    await keeper.anchor_legacy()
    await audit.drain()
    # Unkeyed hashes anyone can recompute: rewrite event 2 and rechain 2-4 without the key.
    await _tamper(
        owner,
        "UPDATE audit_events SET actor_name = 'someone else' WHERE tenant_id = $1 AND seq = 2",
        ctx.tenant_id,
    )
    rows = await owner.fetch(
        "SELECT * FROM audit_events WHERE tenant_id = $1 AND seq <= 4 ORDER BY seq",
        ctx.tenant_id,
    )
    prev = GENESIS
    for row in rows:
        digest = event_hash(prev, row, AUDIT_FIELDS)
        await _tamper(
            owner,
            "UPDATE audit_events SET prev_hash = $3, hash = $4 WHERE tenant_id = $1 AND seq = $2",
            ctx.tenant_id,
            row["seq"],
            prev,
            digest,
        )
        prev = digest
    report = await _verify(ctx)
    assert (report.kinds, report.broken_at) == (["rewritten"], 5)


# --- sealing ---------------------------------------------------------------------------------


async def test_a_rolled_back_event_is_never_sealed_and_leaves_no_gap(
    owner: asyncpg.Connection,
) -> None:
    from opencdmo.db.tx import tenant_transaction

    ctx = await _scratch_tenant(2)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):  # noqa: PT012 - the rollback of this whole block is the point
        async with tenant_transaction(ctx):
            await audit.record(ctx, "test.rolled_back", "thing", 1)
            raise Boom
    await recorded(ctx, "test.kept", "thing", 2)
    rows = await owner.fetch(
        "SELECT seq, action FROM audit_events WHERE tenant_id = $1 ORDER BY entry", ctx.tenant_id
    )
    assert [(r["seq"], r["action"]) for r in rows] == [
        (1, "tenant.created"),
        (2, "test.event"),
        (3, "test.kept"),
    ]


async def test_the_sweep_seals_events_committed_outside_a_command(
    owner: asyncpg.Connection,
) -> None:
    from opencdmo.db.engine import get_engine

    ctx = await _scratch_tenant(2)
    pool = get_engine().pool
    assert pool is not None
    async with pool.acquire() as connection, connection.transaction():  # no after-commit hook
        await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(ctx.tenant_id))
        await audit._append(
            connection,
            ctx.tenant_id,
            SYSTEM,
            RequestMeta(),
            "test.raw",
            "thing",
            "1",
            None,
            None,
            None,
        )
    assert (
        await owner.fetchval(
            "SELECT seq FROM audit_events WHERE tenant_id = $1 AND action = 'test.raw'",
            ctx.tenant_id,
        )
        is None
    )
    assert (await _verify(ctx)).intact, "verify seals what has committed first"
    assert (
        await owner.fetchval(
            "SELECT seq FROM audit_events WHERE tenant_id = $1 AND action = 'test.raw'",
            ctx.tenant_id,
        )
        == 3
    )
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(ctx.tenant_id))
        await audit._append(
            connection,
            ctx.tenant_id,
            SYSTEM,
            RequestMeta(),
            "test.raw",
            "thing",
            "2",
            None,
            None,
            None,
        )
    assert await keeper.sweep() >= 1
    seqs = await owner.fetch(
        "SELECT seq FROM audit_events WHERE tenant_id = $1 ORDER BY seq", ctx.tenant_id
    )
    assert [r["seq"] for r in seqs] == [1, 2, 3, 4]


async def test_the_app_keeper_writes_checkpoints_on_its_interval(
    store: LocalCheckpointStore,
) -> None:
    ctx = await _scratch_tenant(3)
    path = store.directory / f"{tenant_chain(ctx.tenant_id)}.jsonl"
    running = keeper.Keeper(store, checkpoint_seconds=1)
    await running.start()
    try:
        for _ in range(400):
            if path.exists():
                break
            await asyncio.sleep(0.05)
    finally:
        await running.stop()
    entry = json.loads(path.read_text().splitlines()[-1])
    assert (entry["seq"], entry["label"], entry["key_id"]) == (
        3,
        f"tenant {ctx.slug}",
        keys.make_key(AUDIT_KEY).id,
    )
    assert (await _verify(ctx, store)).intact


async def test_writers_of_one_tenant_do_not_wait_on_each_other_and_chain_in_commit_order(
    owner: asyncpg.Connection,
) -> None:
    """A command holding its transaction open after writing an event no longer holds the
    tenant's chain: another command of the tenant writes, commits and is sealed meanwhile,
    and the chain follows the order of the commits, not of the writes."""
    from opencdmo.db.tx import tenant_transaction

    ctx = await _scratch_tenant(1)
    first_written, second_done = asyncio.Event(), asyncio.Event()

    async def slow() -> None:
        async with tenant_transaction(ctx):
            await audit.record(ctx, "test.written_first", "thing", 1)
            first_written.set()
            await second_done.wait()  # commits only after the other command has returned

    async def quick() -> None:
        await first_written.wait()
        await recorded(ctx, "test.written_second", "thing", 2)
        second_done.set()

    # The guard only turns a wait on the other transaction (the old design) into a failure.
    await asyncio.wait_for(asyncio.gather(slow(), quick()), timeout=30)
    rows = await owner.fetch(
        "SELECT seq, action, entry FROM audit_events WHERE tenant_id = $1 ORDER BY seq",
        ctx.tenant_id,
    )
    assert [(r["seq"], r["action"]) for r in rows] == [
        (1, "tenant.created"),
        (2, "test.written_second"),
        (3, "test.written_first"),
    ]
    assert rows[2]["entry"] < rows[1]["entry"], "written first, chained after"
    assert (await _verify(ctx)).intact


async def test_sealing_rounds_of_two_processes_do_not_overlap(owner: asyncpg.Connection) -> None:
    """Rounds called directly (as two processes' sealers would run) take turns on the
    tenant's advisory lock: every event gets one place, the places stay contiguous."""
    from opencdmo.audit import sealer
    from opencdmo.db.engine import get_engine

    ctx = await _scratch_tenant(1)
    pool = get_engine().pool
    assert pool is not None
    for n in range(40):
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "SELECT set_config('app.tenant_id', $1, true)", str(ctx.tenant_id)
            )
            await audit._append(
                connection,
                ctx.tenant_id,
                SYSTEM,
                RequestMeta(),
                "test.raw",
                "t",
                str(n),
                None,
                None,
                None,
            )
    counts = await asyncio.gather(*(sealer.seal_round(ctx.tenant_id) for _ in range(4)))
    # No event is sealed twice (the app's checkpoint keeper may seal some of them meanwhile:
    # the places below say that every one was sealed exactly once).
    assert sum(counts) <= 40
    seqs = await owner.fetch(
        "SELECT seq FROM audit_events WHERE tenant_id = $1 ORDER BY seq", ctx.tenant_id
    )
    assert [r["seq"] for r in seqs] == list(range(1, 42))
    report = await _verify(ctx)
    assert (report.intact, report.checked) == (True, 41)
