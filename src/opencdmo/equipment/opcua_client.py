"""The capture client core: OPC UA subscriptions to a set of signals, delivered as samples.

``CaptureClient(endpoint, signals, sink, security).run()`` connects, subscribes with one
monitored item per node (every change, no sampling, a deep server-side queue), and hands the
notifications to ``sink.write(samples)`` in batches, in arrival order.

A first connection that fails is retried with exponential backoff (bounded by
``Backoff.max_delay``); a dropped one is restored by asyncua's supervisor (its own backoff,
bounded by the same maximum): the same session on a new channel when the server still holds
it, with the notifications queued meanwhile (a network drop loses nothing), or else a new
session and subscription (a restarted server). Then what each node changed to between its
last sample before the drop and its first one after is read with HistoryRead, where the
server keeps history: those samples arrive after newer ones (order by source timestamp). A
sample already delivered for the same (node, source timestamp) is dropped: a new
subscription starts with each item's current value, and a republish may overlap. A client
given ``resume_from`` (per signal, the newest sample stored before it: a unit whose lease it
took over from a worker that died) reads the same way what changed between then and its
first live sample.

``user`` is a user name and password for servers that ask for one (the password comes from
the environment variable the unit's description names, never from the description).

Nothing here touches the database: storage is a sink
(``async def write(samples: list[Sample]) -> None``) added later.

Security: None, or Basic256Sha256 Sign / SignAndEncrypt with the client's own certificate
and a trust list of server certificates (``opcua_security``); an untrusted server raises
``UntrustedServer`` before any secure channel is opened, and ``run`` does not retry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.common.subscription import DataChangeEvent, Subscription
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import UaError

from opencdmo.equipment import opcua_security
from opencdmo.equipment.opcua_security import CaptureError, Security, UntrustedServer

__all__ = [
    "Backoff",
    "CaptureClient",
    "CaptureError",
    "CollectingSink",
    "Sample",
    "Security",
    "Sink",
    "Stats",
    "UntrustedServer",
]

logger = logging.getLogger(__name__)

APPLICATION_URI = "urn:opencdmo:capture"
DEDUPE_DEPTH = 64  # source timestamps remembered per node
RETRIED = (OSError, TimeoutError, UaError, ConnectionError)  # worth connecting again


@dataclass(frozen=True, slots=True)
class Sample:
    """One data change notification of one signal."""

    signal: str  # the signal key (``culture_temperature``)
    node: str  # the node id as configured (``ns=2;s=BR01.Temperature``)
    value: Any
    source_timestamp: dt.datetime | None
    server_timestamp: dt.datetime | None
    status: int  # the OPC UA status code (0 is Good)

    @property
    def good(self) -> bool:
        return self.status & 0xC0000000 == 0


class Sink(Protocol):
    """Where samples go; ``write`` is awaited for each batch, in order. An exception from it
    ends ``CaptureClient.run`` (a sink that must not lose samples spools them itself)."""

    async def write(self, samples: list[Sample]) -> None: ...


class CollectingSink:
    """A sink that keeps every sample in memory (tests, benchmarks, tools)."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.changed = asyncio.Event()

    async def write(self, samples: list[Sample]) -> None:
        self.samples.extend(samples)
        self.changed.set()


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: ``initial``, doubled each failed attempt, at most ``max_delay``."""

    initial: float = 0.5
    max_delay: float = 10.0

    def delays(self) -> Iterable[float]:
        delay = self.initial
        while True:
            yield delay
            delay = min(delay * 2, self.max_delay)


@dataclass
class Stats:
    """What the client has done so far."""

    received: int = 0
    duplicates: int = 0
    backfilled: int = 0  # of the received, read from the server's history after a reconnect
    connects: int = 0
    failures: list[str] = field(default_factory=list)


class CaptureClient:
    """Subscribes to ``signals`` (signal key -> node id) on ``endpoint`` until ``stop``."""

    def __init__(
        self,
        endpoint: str,
        signals: Mapping[str, str],
        sink: Sink,
        security: Security | None = None,
        *,
        publishing_interval_ms: float = 50.0,
        queue_size: int = 10_000,
        backoff: Backoff | None = None,
        timeout: float = 4.0,
        resume_from: Mapping[str, dt.datetime] | None = None,
        user: tuple[str, str] | None = None,
    ) -> None:
        if not signals:
            raise CaptureError("no signals to subscribe to")
        self.endpoint = endpoint
        self.signals = dict(signals)
        self.sink = sink
        self.security = security or Security()
        self.publishing_interval_ms = publishing_interval_ms
        self.queue_size = queue_size
        self.backoff = backoff or Backoff()
        self.timeout = timeout
        self.stats = Stats()
        self.connected = asyncio.Event()  # set while subscribed
        self._refs = [(key, node) for key, node in self.signals.items()]
        self._nodeids = [_nodeid(key, node) for key, node in self._refs]
        self._seen: dict[str, deque[dt.datetime]] = {node: deque() for _, node in self._refs}
        self._pending: list[Sample] = []
        self._arrived = asyncio.Event()
        self._stopping = asyncio.Event()
        self._first_live: dict[str, dt.datetime] | None = None  # while resuming: per node
        # per node, the newest sample stored before this client started (a lease handed over)
        resume = resume_from or {}
        self._resume = {node: _utc(resume[key]) for key, node in self._refs if key in resume}
        self.user = user

    def stop(self) -> None:
        """Ask ``run`` to deliver what it holds, disconnect and return."""
        self._stopping.set()

    async def run(self) -> None:
        """Capture until ``stop``. The first connection is retried here; once connected, the
        library's supervisor (``auto_reconnect``) restores a dropped connection: the same
        session and subscription when the server still holds them (what was queued meanwhile
        is republished), a new session and subscription when it does not (a restart)."""
        delays = iter(self.backoff.delays())
        while not self._stopping.is_set():
            try:
                client = await self._connect()
            except CaptureError:
                raise
            except RETRIED as exc:
                self._failed(exc)
                await self._sleep(next(delays))
                continue
            try:
                await self._capture(client)
            except CaptureError:
                raise
            except RETRIED as exc:
                self._failed(exc)
                await self._sleep(next(delays))
            finally:
                self.connected.clear()
                await self._flush()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.disconnect(), self.timeout)

    def _failed(self, exc: BaseException) -> None:
        self.stats.failures.append(f"{type(exc).__name__}: {exc}")
        logger.warning("OPC UA %s: %s; connecting again", self.endpoint, exc)

    async def _connect(self) -> Client:
        client = Client(self.endpoint, timeout=self.timeout, watchdog_intervall=1.0)
        client.application_uri = APPLICATION_URI
        client.name = client.description = "OpenCDMO capture"
        client.connection_lost_callback = self._connection_lost
        if self.user is not None:
            client.set_user(self.user[0])
            client.set_password(self.user[1])
        if self.security.mode != "None":
            await opcua_security.secure(
                client, self.endpoint, self.security, APPLICATION_URI, self.timeout
            )
        await asyncio.wait_for(
            client.connect(auto_reconnect=True, reconnect_max_delay=self.backoff.max_delay),
            self.timeout * 2,
        )
        return client

    async def _connection_lost(self, exc: Exception) -> None:
        self.connected.clear()
        self._failed(exc)

    async def _capture(self, client: Client) -> None:
        """Subscribe, then deliver until stopped (reconnects happen underneath)."""
        subscription = await self._subscribe(client)
        self.stats.connects += 1
        self.connected.set()
        tasks = [
            asyncio.create_task(self._consume(subscription)),
            asyncio.create_task(self._watch(client)),
        ]
        if self._resume:  # what changed since the last stored sample, before this client
            since = {node: stamp for node, stamp in self._resume.items() if stamp is not None}
            self._resume = {}
            tasks.append(asyncio.create_task(self._catch_up(client, since)))
        try:
            while not self._stopping.is_set():
                await self._wait_any(self._arrived, self._stopping, tasks=tasks)
                await self._flush()
                for task in [t for t in tasks if t.done()]:
                    task.result()  # raises what ended it
                    tasks.remove(task)  # a catch-up done; the others run until stopped
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self, client: Client) -> None:
        """Follow the connection: ``connected`` is set while it is up; after a reconnect,
        the changes made meanwhile are read from the server's history once the subscription
        delivers again (from then on, anything newer comes through it)."""
        async with client.subscribe_state() as states:
            while True:
                state = await states.next_change()
                if state is not UaClientState.CONNECTED:
                    self.connected.clear()
                    continue
                self.stats.connects += 1
                since = {node: max(seen) for node, seen in self._seen.items() if seen}
                await self._catch_up(client, since)
                self.connected.set()

    async def _catch_up(self, client: Client, since: Mapping[str, dt.datetime]) -> None:
        """Once the subscription delivers again (or after a short wait), read from the
        server's history what each node changed to after ``since`` and before its first live
        sample."""
        self._first_live = {}
        self._arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._arrived.wait(), self._resume_wait)
        try:
            await self._backfill(client, since, self._first_live)
        finally:
            self._first_live = None

    @property
    def _resume_wait(self) -> float:
        return max(1.0, 4 * self.publishing_interval_ms / 1000)

    async def _backfill(
        self,
        client: Client,
        since: Mapping[str, dt.datetime],
        live: Mapping[str, dt.datetime],
    ) -> None:
        """What each node changed to after ``since`` (its newest sample before the drop) and
        before ``live`` (its first one since), from HistoryRead; a server that keeps no
        history gives nothing more."""
        later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        for handle, (_, node) in enumerate(self._refs):
            if node not in since:
                continue
            until = live.get(node, later)
            try:
                values = await client.get_node(self._nodeids[handle]).read_raw_history(
                    since[node], until, return_bounds=False
                )
            except UaError as exc:
                logger.info("OPC UA %s: no history of %s (%s)", self.endpoint, node, exc)
                continue
            for value in values:
                stamp = _utc(value.SourceTimestamp)
                if stamp is not None and since[node] < stamp < until:
                    self.stats.backfilled += self._take(handle, value)
        self._arrived.set()

    async def _consume(self, subscription: Subscription) -> None:
        async for event in subscription:
            if isinstance(event, DataChangeEvent):
                item = event.data.monitored_item
                if 0 <= item.ClientHandle < len(self._refs):
                    self._take_live(item.ClientHandle, item.Value)
                self._arrived.set()

    def _take_live(self, handle: int, value: ua.DataValue) -> None:
        first_live = self._first_live
        if first_live is not None and (stamp := _utc(value.SourceTimestamp)) is not None:
            first_live.setdefault(self._refs[handle][1], stamp)
        self._take(handle, value)

    async def _subscribe(self, client: Client) -> Subscription:
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = self.publishing_interval_ms
        params.RequestedLifetimeCount = 10_000
        params.RequestedMaxKeepAliveCount = client.get_keepalive_count(self.publishing_interval_ms)
        params.MaxNotificationsPerPublish = 0  # no limit
        params.PublishingEnabled = True
        params.Priority = 0
        # an unbounded queue (maxsize 0): the library's default drops the oldest when full
        subscription = await client.create_subscription(params, queue_maxsize=0)
        results = await subscription.create_monitored_items(self._requests())
        refused = [
            f"{node} ({result.name})"
            for (_, node), result in zip(self._refs, results, strict=True)
            if isinstance(result, ua.StatusCode)
        ]
        if refused:
            raise CaptureError(f"{self.endpoint} refused the nodes {', '.join(refused)}")
        return subscription

    def _requests(self) -> list[ua.MonitoredItemCreateRequest]:
        requests = []
        for handle, nodeid in enumerate(self._nodeids):
            item = ua.ReadValueId()
            item.NodeId = nodeid
            item.AttributeId = AttributeIds.Value
            parameters = ua.MonitoringParameters()
            parameters.ClientHandle = handle
            parameters.SamplingInterval = 0.0  # every change, not sampled
            parameters.QueueSize = self.queue_size
            parameters.DiscardOldest = True
            request = ua.MonitoredItemCreateRequest()
            request.ItemToMonitor = item
            request.MonitoringMode = ua.MonitoringMode.Reporting
            request.RequestedParameters = parameters
            requests.append(request)
        return requests

    def _take(self, handle: int, value: ua.DataValue) -> int:
        """Add a sample for this item's value unless it was delivered already; returns 1 when
        it was added."""
        signal, node = self._refs[handle]
        source = _utc(value.SourceTimestamp)
        stamp = source or _utc(value.ServerTimestamp)
        if stamp is not None and self._duplicate(node, stamp):
            self.stats.duplicates += 1
            return 0
        status = value.StatusCode.value if value.StatusCode is not None else 0
        data = value.Value.Value if value.Value is not None else None
        self._pending.append(
            Sample(signal, node, data, source, _utc(value.ServerTimestamp), status)
        )
        self.stats.received += 1
        return 1

    def _duplicate(self, node: str, stamp: dt.datetime) -> bool:
        seen = self._seen[node]
        if stamp in seen:
            return True
        seen.append(stamp)
        if len(seen) > DEDUPE_DEPTH:
            seen.popleft()
        return False

    async def _flush(self) -> None:
        self._arrived.clear()
        if self._pending:
            batch, self._pending = self._pending, []
            await self.sink.write(batch)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    @staticmethod
    async def _wait_any(*events: asyncio.Event, tasks: Iterable[asyncio.Task[None]]) -> None:
        """Until one of the events is set or one of the tasks ends."""
        waiters = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait([*waiters, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


def _nodeid(signal: str, node: str) -> ua.NodeId:
    try:
        return ua.NodeId.from_string(node)
    except (ValueError, UaError) as exc:
        raise CaptureError(f"signal {signal}: {node!r} is not an OPC UA node id") from exc


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
