"""An entry whose request loses its database connection half-way, and the client's retry with
the same idempotency key: exactly one entry and one audit event in every case.

The request is stopped at a known point by a lock the test holds (the request's backend is
then seen waiting in ``pg_stat_activity``) and that backend is terminated from the owner
connection:

- before commit: the entry is inserted and the request waits to write its audit event (the
  test holds ``audit_events`` in SHARE mode). Killed there, nothing is kept: the client gets
  a 503 asking it to retry, and the retry makes the entry (201).
- after commit: the command has committed and seals its audit event before answering (the
  test holds the tenant's sealing lock). Killed there, the entry and its event are kept: the
  client gets its 201 (sealing is retried by the sweep) and a retry is given the same entry
  (200). A connection lost between the server's commit and its acknowledgement (committed,
  yet an error for the client) cannot be arranged with a lock: a backend terminated while it
  commits either has not committed or has already answered.
- in flight: a retry sent while the first request is still under way waits for it (the
  batch row is locked) and is given its entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from opencdmo.audit import sealer
from opencdmo.db.urls import DatabaseUrls
from opencdmo.settings import Settings
from tests.conftest import World
from tests.integration.batch_world import Plant, batch_of, new_plant, underway

# A backend of this database waiting on a lock, with what it runs.
WAITING = """
SELECT pid, wait_event, query FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()
"""


@pytest.fixture
async def plant(synced: Any, world: World, owner: asyncpg.Connection, settings: Settings) -> Plant:
    return await new_plant(world, owner, settings)


@pytest.fixture
async def holder(database: DatabaseUrls) -> AsyncIterator[asyncpg.Connection]:
    """An owner connection of its own that holds the lock the request stops at."""
    connection = await asyncpg.connect(database.owner)
    yield connection
    await connection.close()


async def running(plant: Plant) -> str:
    made = await batch_of(plant)
    await underway(plant, made.id, "seeding")
    return str(made.id)


async def operator(plant: Plant, browser: Any, batch: str) -> Any:
    """A signed-in operator who has been in the tenant already (a session's first request into
    a tenant records its sign-in there, which would wait on the test's locks too)."""
    client = await browser("operator")
    assert (await client.get(url(plant, batch))).status_code == 200
    await client.prime()
    return client


def url(plant: Plant, batch: str) -> str:
    return f"/api/v1/t/{plant.ctx.slug}/batches/{batch}/entries"


def entry(key: str) -> dict[str, Any]:
    return {
        "step": "activate",
        "phase": "seeding",
        "field": "pre_activation_viability",
        "value": 92,
        "idempotency_key": key,
    }


async def waiting(owner: asyncpg.Connection, count: int, on: str) -> list[asyncpg.Record]:
    """The backends waiting on a lock once ``count`` of them wait, the one waiting on ``on``
    (pg_stat_activity's wait_event: relation, advisory, transactionid, tuple) among them."""
    for _ in range(1000):
        found = await owner.fetch(WAITING)
        if len(found) >= count and any(r["wait_event"] == on for r in found):
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"no request waits on a lock ({on}): {await owner.fetch(WAITING)}")


async def kill(owner: asyncpg.Connection, backend: asyncpg.Record) -> None:
    assert await owner.fetchval("SELECT pg_terminate_backend($1)", backend["pid"])


async def entries_of(owner: asyncpg.Connection, batch: str) -> list[asyncpg.Record]:
    return await owner.fetch(
        "SELECT id, idempotency_key FROM batch_entries WHERE batch_id = $1", batch
    )


async def entry_events(owner: asyncpg.Connection, batch: str) -> list[asyncpg.Record]:
    return await owner.fetch(
        "SELECT seq, new_values::jsonb ->> 'entry_id' AS entry_id FROM audit_events "
        "WHERE entity_id = $1 AND action = 'batch.entry_recorded'",
        batch,
    )


async def test_killed_before_commit_the_client_is_told_to_retry_and_the_retry_makes_it(
    plant: Plant, browser: Any, owner: asyncpg.Connection, holder: asyncpg.Connection
) -> None:
    batch = await running(plant)
    client = await operator(plant, browser, batch)
    async with holder.transaction():
        await holder.execute("LOCK TABLE audit_events IN SHARE MODE")
        first = asyncio.create_task(client.send("POST", url(plant, batch), json=entry("k-1")))
        (backend,) = await waiting(owner, 1, "relation")
        assert "audit_events" in backend["query"]  # the entry is written; its event waits
        await kill(owner, backend)
        lost = await first
    assert lost.status_code == 503, lost.text
    error = lost.json()["error"]
    assert error["message"] == "The database connection was lost; retry the request."
    assert lost.headers["retry-after"]
    assert await entries_of(owner, batch) == []
    again = await client.send("POST", url(plant, batch), json=entry("k-1"))
    assert again.status_code == 201, again.text
    assert [str(r["id"]) for r in await entries_of(owner, batch)] == [again.json()["id"]]
    assert [r["entry_id"] for r in await entry_events(owner, batch)] == [again.json()["id"]]


async def test_killed_after_commit_the_entry_stands_and_the_retry_is_given_it(
    plant: Plant, browser: Any, owner: asyncpg.Connection, holder: asyncpg.Connection
) -> None:
    batch = await running(plant)
    client = await operator(plant, browser, batch)
    tenant = str(plant.ctx.tenant_id)
    lock = (sealer.LOCK_CLASS, tenant)
    await holder.execute("SELECT pg_advisory_lock($1, hashtext($2))", *lock)
    try:
        first = asyncio.create_task(client.send("POST", url(plant, batch), json=entry("k-1")))
        found = await waiting(owner, 1, "advisory")
        (backend,) = [r for r in found if r["wait_event"] == "advisory"]
        assert len(await entries_of(owner, batch)) == 1  # committed; sealing its event waits
        await kill(owner, backend)
        made = await first
        assert made.status_code == 201, made.text
        again = await client.send("POST", url(plant, batch), json=entry("k-1"))
        assert again.status_code == 200, again.text
        assert again.json() == made.json()
    finally:
        await holder.execute("SELECT pg_advisory_unlock($1, hashtext($2))", *lock)
    await sealer.seal(plant.ctx.tenant_id)  # what the sweep does for the round that was killed
    assert [str(r["id"]) for r in await entries_of(owner, batch)] == [made.json()["id"]]
    (event,) = await entry_events(owner, batch)
    assert event["entry_id"] == made.json()["id"] and event["seq"] is not None


async def test_a_retry_while_the_first_is_in_flight_is_given_the_first(
    plant: Plant, browser: Any, owner: asyncpg.Connection, holder: asyncpg.Connection
) -> None:
    batch = await running(plant)
    clients = [await operator(plant, browser, batch) for _ in range(2)]
    async with holder.transaction():
        await holder.execute("LOCK TABLE audit_events IN SHARE MODE")
        first = asyncio.create_task(clients[0].send("POST", url(plant, batch), json=entry("k-1")))
        await waiting(owner, 1, "relation")  # the first holds the batch and waits to audit
        retry = asyncio.create_task(clients[1].send("POST", url(plant, batch), json=entry("k-1")))
        await waiting(owner, 2, "transactionid")  # the retry waits for the batch row
    made, again = await first, await retry
    assert (made.status_code, again.status_code) == (201, 200), (made.text, again.text)
    assert again.json() == made.json()
    assert [str(r["id"]) for r in await entries_of(owner, batch)] == [made.json()["id"]]
    assert [r["entry_id"] for r in await entry_events(owner, batch)] == [made.json()["id"]]
