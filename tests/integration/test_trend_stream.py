"""The trend stream (server-sent events) through the app against the real database: the
history first, then a sample stored after the stream opened; another tenant's unit a 404, an
unknown signal a 400 before any event; a closed window ends; a reconnect goes on from its
Last-Event-ID; a client that goes away ends the stream with every connection returned; and
the downsampling of a long window in the database."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg
import pytest
from litestar import Litestar

from opencdmo.db.tx import tenant_id_transaction
from opencdmo.equipment import capture, samples, trend_stream, trends
from opencdmo.equipment.samples import Row
from opencdmo.equipment.simulator import Simulator, SimulatorConfig
from opencdmo.scope import TenantContext
from tests.conftest import World
from tests.integration.test_capture import FAST, bioreactor
from tests.integration.test_opcua import eventually, free_port

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(autouse=True)
def _now() -> None:
    """Each test's "now", taken when it starts: the live window is the last 15 minutes, and
    a time taken when the module was collected can be older than that by the time it runs."""
    global NOW
    NOW = dt.datetime.now(dt.UTC)


@dataclass
class Stream:
    """One server-sent events response, read as the browser reads it."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    buffer: str = ""
    events: asyncio.Queue[dict[str, str]] = field(default_factory=asyncio.Queue)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def feed(self, text: str) -> None:
        self.buffer += text.replace("\r\n", "\n")
        while "\n\n" in self.buffer:
            block, self.buffer = self.buffer.split("\n\n", 1)
            event: dict[str, str] = {}
            for line in block.split("\n"):
                name, _, value = line.partition(": ")
                event[name] = event.get(name, "") + value if name == "data" else value
            self.events.put_nowait(event)

    async def next(self, kind: str | None = None) -> dict[str, str]:
        while True:
            event = await asyncio.wait_for(self.events.get(), 10)
            if kind is None or event.get("event") == kind:
                return event

    async def close(self) -> None:
        """The client goes away; the app's response ends."""
        self.gone.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)


async def open_stream(
    app: Litestar, client: Any, url: str, headers: dict[str, str] | None = None
) -> Stream:
    """A GET through the app's ASGI interface, with the signed-in client's cookies; the body
    arrives as the app sends it (the test client would wait for the end)."""
    parts = urlsplit(url)
    cookie = "; ".join(f"{k}={v}" for k, v in client.http.cookies.items())
    sent = {
        "accept": "text/event-stream",
        "cookie": cookie,
        "host": "testserver",
        **(headers or {}),
    }
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": parts.path,
        "raw_path": parts.path.encode(),
        "query_string": parts.query.encode(),
        "root_path": "",
        "headers": [(k.encode(), v.encode()) for k, v in sent.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 443),
    }
    stream = Stream()
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await stream.gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            stream.status = message["status"]
            stream.headers = {k.decode(): v.decode() for k, v in message["headers"]}
            stream.started.set()
        elif message["type"] == "http.response.body":
            stream.feed(message.get("body", b"").decode())
            if not message.get("more_body", False):
                stream.events.put_nowait({"event": "closed"})

    stream.task = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
    await asyncio.wait_for(stream.started.wait(), 10)
    return stream


@pytest.fixture
async def unit(own_tenant: TenantContext, world: World, synced: Any) -> UUID:
    return await bioreactor(own_tenant, world, "opc.tcp://127.0.0.1:4841")


async def code_of(owner: asyncpg.Connection, unit: UUID) -> str:
    code: str = await owner.fetchval("SELECT code FROM equipment WHERE id = $1", unit)
    return code


def rows(unit: UUID, signal: str, values: list[tuple[dt.datetime, float]]) -> list[Row]:
    return [Row(unit, signal, v, None, 0, t, t) for t, v in values]


def ms(at: dt.datetime) -> float:
    return round(at.timestamp() * 1000, 3)


@pytest.fixture
async def streams() -> AsyncIterator[list[Stream]]:
    opened: list[Stream] = []
    yield opened
    for stream in opened:
        with contextlib.suppress(Exception):
            await stream.close()


async def test_history_then_a_sample_stored_after_the_stream_opened(
    app: Litestar,
    browser: Any,
    own_tenant: TenantContext,
    unit: UUID,
    owner: asyncpg.Connection,
    streams: list[Stream],
) -> None:
    then = [(NOW - dt.timedelta(minutes=5, seconds=-i), 37.0 + i / 100) for i in range(30)]
    await samples.store(own_tenant.tenant_id, rows(unit, "culture_temperature", then))
    await samples.store(
        own_tenant.tenant_id, rows(unit, "ph", [(NOW - dt.timedelta(hours=2), 7.1)])
    )  # before the window: not in its history
    client = await browser("operator")
    code = await code_of(owner, unit)
    url = f"/t/{own_tenant.slug}/equipment/{code}/stream?signal=culture_temperature&signal=ph"
    stream = await open_stream(app, client, url)
    streams.append(stream)
    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    first = await stream.next()
    assert first["event"] == "history"
    assert json.loads(first["data"]) == {
        "culture_temperature": [[ms(t), v] for t, v in then],
        "ph": [],
    }
    assert first["retry"] == "2000"
    # the earliest of the signals' last times: ph has none in the window, so its start
    assert int(first["id"]) < int(then[0][0].timestamp() * 1_000_000)

    fresh = dt.datetime.now(dt.UTC)
    await samples.store(own_tenant.tenant_id, rows(unit, "ph", [(fresh, 7.25)]))
    live = await stream.next("samples")
    assert json.loads(live["data"]) == {"culture_temperature": [], "ph": [[ms(fresh), 7.25]]}
    assert live["id"] == str(int(then[-1][0].timestamp() * 1_000_000))


async def test_a_closed_window_ends_after_its_history(
    app: Litestar,
    browser: Any,
    own_tenant: TenantContext,
    unit: UUID,
    owner: asyncpg.Connection,
) -> None:
    start = NOW - dt.timedelta(hours=1)
    values = [(start + dt.timedelta(seconds=i), float(i)) for i in range(10)]
    await samples.store(own_tenant.tenant_id, rows(unit, "ph", values))
    client = await browser("viewer")
    code = await code_of(owner, unit)
    window = f"start={start.isoformat()}&end={values[4][0].isoformat()}".replace("+", "%2B")
    stream = await open_stream(
        app, client, f"/t/{own_tenant.slug}/equipment/{code}/stream?signal=ph&{window}"
    )
    history = await stream.next()
    assert json.loads(history["data"]) == {"ph": [[ms(t), v] for t, v in values[:5]]}
    assert (await stream.next())["event"] == "end"
    assert (await stream.next())["event"] == "closed"
    await stream.close()


async def test_a_reconnect_goes_on_from_its_last_event_id(
    app: Litestar,
    browser: Any,
    own_tenant: TenantContext,
    unit: UUID,
    owner: asyncpg.Connection,
    streams: list[Stream],
) -> None:
    values = [(NOW - dt.timedelta(seconds=60 - i), float(i)) for i in range(6)]
    await samples.store(own_tenant.tenant_id, rows(unit, "ph", values))
    client = await browser("viewer")
    code = await code_of(owner, unit)
    last = str(int(values[2][0].timestamp() * 1_000_000))
    stream = await open_stream(
        app,
        client,
        f"/t/{own_tenant.slug}/equipment/{code}/stream?signal=ph",
        {"last-event-id": last},
    )
    streams.append(stream)
    first = await stream.next()
    assert first["event"] == "samples"  # no history again: what came after the last event
    assert json.loads(first["data"]) == {"ph": [[ms(t), v] for t, v in values[3:]]}
    for nonsense in ("yesterday", "9" * 20, "-5"):  # not an id this stream gave: history
        again = await open_stream(
            app,
            client,
            f"/t/{own_tenant.slug}/equipment/{code}/stream?signal=ph",
            {"last-event-id": nonsense},
        )
        streams.append(again)
        assert (await again.next())["event"] == "history"


async def test_a_client_going_away_ends_the_stream_and_returns_its_connections(
    app: Litestar,
    browser: Any,
    own_tenant: TenantContext,
    unit: UUID,
    owner: asyncpg.Connection,
) -> None:
    client = await browser("viewer")
    code = await code_of(owner, unit)
    url = f"/t/{own_tenant.slug}/equipment/{code}/stream?signal=ph&signal=culture_weight"
    before = trend_stream.open_streams()
    stream = await open_stream(app, client, url)
    assert (await stream.next())["event"] == "history"
    assert trend_stream.open_streams() == before + 1
    await asyncio.sleep(1.5)  # a poll or two on the way
    await stream.close()
    assert stream.task is not None and stream.task.done()
    assert trend_stream.open_streams() == before
    await eventually(lambda: trend_stream.reads_running() == 0, 5)  # shielded reads end
    held = await owner.fetchval(
        # This test's database only: the other workers of the suite read samples of their own
        # at the same moment, and a query running elsewhere is not a connection left behind.
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'opencdmo_app' "
        "AND datname = current_database() AND state LIKE 'idle in transaction%' "
        "AND query LIKE '%equipment_samples%'"
    )
    assert held == 0  # no connection left in a transaction over the samples


async def test_the_stream_ends_after_its_longest_life(
    own_tenant: TenantContext, unit: UUID
) -> None:
    limits = trend_stream.StreamLimits(seconds=1.2, poll=0.2, heartbeat=0.3)
    found = await trend_stream.plan(own_tenant, str(unit), trend_stream.TrendAsk(("ph",)), limits)
    kinds = [e.kind async for e in trend_stream.events(own_tenant, found, limits)]
    assert kinds[0] == "history" and kinds.count("comment") >= 2
    assert set(kinds[1:]) == {"comment"}


async def test_another_tenants_unit_is_a_404_whatever_the_query(
    app: Litestar, browser: Any, world: World, unit: UUID, owner: asyncpg.Connection
) -> None:
    code = await code_of(owner, unit)
    client = await browser("outsider")  # beta's admin
    for query in ("signal=ph", "signal=nope", "", "signal=ph&start=never"):
        response = await client.get(f"/t/beta/equipment/{code}/stream?{query}")
        assert response.status_code == 404, (query, response.text)
        answer = await client.get(
            f"/t/beta/equipment/NO-SUCH-{uuid.uuid4().hex[:6]}/stream?{query}"
        )
        assert answer.status_code == 404


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("signal=nope", "'nope' is not a signal of"),
        ("", "signal is required"),
        ("signal=ph&start=yesterday", "start must be an ISO 8601 time"),
        ("signal=ph&start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z", "end must not be"),
        ("signal=ph&start=2025-01-01T00:00:00Z", "at most 31 days"),
        ("&".join(f"signal=s{i}" for i in range(9)), "at most 8 signals"),
    ],
)
async def test_a_bad_query_is_a_400_with_a_message(
    app: Litestar,
    browser: Any,
    own_tenant: TenantContext,
    unit: UUID,
    owner: asyncpg.Connection,
    query: str,
    message: str,
) -> None:
    client = await browser("viewer")
    code = await code_of(owner, unit)
    response = await client.get(
        f"/t/{own_tenant.slug}/equipment/{code}/stream?{query}",
        headers={"accept": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]
    assert trend_stream.open_streams() == 0


async def test_a_long_window_is_folded_in_the_database(
    own_tenant: TenantContext, unit: UUID
) -> None:
    """More samples than a history reads raw: time buckets with their low and high, then
    LTTB; the spike in the middle survives, the first and the last sample too."""
    start = NOW - dt.timedelta(days=2)
    count = trends.RAW_MAX + 5000
    values = [(start + dt.timedelta(seconds=i), 10.0 + (i % 7) / 10) for i in range(count)]
    values[count // 2] = (values[count // 2][0], 99.0)
    for i in range(0, count, 5000):
        await samples.store(
            own_tenant.tenant_id, rows(unit, "culture_weight", values[i : i + 5000])
        )
    async with tenant_id_transaction(own_tenant.tenant_id) as conn:
        series = await trends.history(conn, unit, "culture_weight", start, values[-1][0], 500)
        raw = await trends.history(conn, unit, "culture_weight", start, values[1000][0], 500)
    assert series.bucketed and not raw.bucketed
    assert len(series.points) == 500 and len(raw.points) == 500
    assert series.points[0][0] == values[0][0] and series.points[-1][0] == values[-1][0]
    assert max(v for _, v in series.points) == 99.0
    assert min(v for _, v in series.points) == 10.0
    times = [t for t, _ in series.points]
    assert times == sorted(times) and len(set(times)) == len(times)


async def test_two_people_watching_at_once_see_the_same_samples_and_nothing_is_written(
    app: Litestar,
    browser: Any,
    own_tenant: TenantContext,
    unit: UUID,
    owner: asyncpg.Connection,
    streams: list[Stream],
) -> None:
    code = await code_of(owner, unit)
    url = f"/t/{own_tenant.slug}/equipment/{code}/stream?signal=ph"
    first, second = await asyncio.gather(
        open_stream(app, await browser("operator"), url),
        open_stream(app, await browser("approver"), url),
    )
    streams += [first, second]
    assert [(await s.next())["event"] for s in (first, second)] == ["history", "history"]
    # (each person's first request into the tenant recorded their sign-in there)
    events = "SELECT count(*) FROM audit_events WHERE tenant_id = $1"
    audited = await owner.fetchval(events, own_tenant.tenant_id)
    fresh = dt.datetime.now(dt.UTC)
    await samples.store(own_tenant.tenant_id, rows(unit, "ph", [(fresh, 7.3)]))
    got = await asyncio.gather(first.next("samples"), second.next("samples"))
    assert [json.loads(g["data"]) for g in got] == [{"ph": [[ms(fresh), 7.3]]}] * 2
    await asyncio.sleep(1.2)  # polls on the way
    assert await owner.fetchval(events, own_tenant.tenant_id) == audited  # reads write nothing


async def test_samples_captured_from_the_simulator_arrive_on_the_stream(
    app: Litestar,
    browser: Any,
    own_tenant: TenantContext,
    world: World,
    synced: Any,
    owner: asyncpg.Connection,
    streams: list[Stream],
) -> None:
    """The whole way: the capture worker subscribed to the OPC UA simulator stores samples,
    and an open stream delivers them as they are stored, in source time order."""
    async with Simulator(SimulatorConfig(port=free_port(), rate=20, seed=8)) as simulator:
        unit = await bioreactor(own_tenant, world, simulator.endpoint)
        code = await code_of(owner, unit)
        url = f"/t/{own_tenant.slug}/equipment/{code}/stream?signal=culture_temperature"
        stream = await open_stream(app, await browser("viewer"), url)
        streams.append(stream)
        await stream.next("history")
        units = await capture.units_to_capture(own_tenant.tenant_id)
        worker = capture.Worker(own_tenant.tenant_id, units, backoff=FAST, interval=0.05)
        task = asyncio.create_task(worker.run())
        try:
            seen: list[list[float]] = []
            while len(seen) < 10:
                seen += json.loads((await stream.next("samples"))["data"])["culture_temperature"]
        finally:
            worker.stop()
            await asyncio.wait_for(task, 15)
    times = [t for t, _ in seen]
    assert times == sorted(times) and len(set(times)) == len(times)
    produced = dict(simulator.produced.values["ns=2;s=BR01.Temperature"])
    by_ms = {ms(t): v for t, v in produced.items()}
    assert all(by_ms.get(t) == v for t, v in seen)
