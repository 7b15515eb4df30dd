"""Prometheus metrics: requests and their latency per route template, and what the database
shows at scrape time (the job queue, running transfer jobs, capture lag per equipment unit).

Labels are bounded: the route is Litestar's path template (``/api/v1/t/{slug}/batches``,
never the raw path), the method and the status; the database gauges are labelled by tenant
slug and equipment code.

Several worker processes (``serve --workers N``): ``serve`` gives them one fresh directory in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode), each process writes its
counts there and the worker that answers a scrape sums all of them, so any scrape shows the
totals of every worker. One process: the counts are kept in memory.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "opencdmo_http_requests",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "opencdmo_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template",
    ["method", "route"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
UNMATCHED = "unmatched"  # no template in the scope (paths no route serves never get here)


def observe(method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


class MetricsMiddleware(ASGIMiddleware):
    """Outermost: counts every routed request, whatever answered it (429s included)."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, sending)
        finally:
            http: Any = scope
            route = http.get("path_template") or UNMATCHED
            observe(http["method"], route, status[0], time.perf_counter() - started)


def process_text() -> bytes:
    """The request metrics: of every worker (multiprocess mode) or of this process."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


class _Families:
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def families_text(families: Iterable[Metric]) -> bytes:
    registry = CollectorRegistry()
    registry.register(_Families(families))
    return generate_latest(registry)


# --- the database at scrape time --------------------------------------------------------------

SET_TENANT = "SELECT set_config('app.tenant_id', $1, true)"
# The newest sample of each unit, by index lookups only (a loose index scan: each signal of the
# unit found by the next-larger one, then its newest source time), never a scan of the samples.
CAPTURE_LAG = """
WITH RECURSIVE signals AS (
    SELECT e.tenant_id, e.id, e.code, (
        SELECT min(s.signal) FROM equipment_samples s
        WHERE s.tenant_id = e.tenant_id AND s.equipment_id = e.id
    ) AS signal
    FROM equipment e
    UNION ALL
    SELECT g.tenant_id, g.id, g.code, (
        SELECT min(s.signal) FROM equipment_samples s
        WHERE s.tenant_id = g.tenant_id AND s.equipment_id = g.id AND s.signal > g.signal
    )
    FROM signals g WHERE g.signal IS NOT NULL
)
SELECT g.code, extract(epoch FROM clock_timestamp() - max((
    SELECT max(s.source_time) FROM equipment_samples s
    WHERE s.tenant_id = g.tenant_id AND s.equipment_id = g.id AND s.signal = g.signal
)))::float8
FROM signals g WHERE g.signal IS NOT NULL GROUP BY g.code
"""
HEARTBEAT = (
    "SELECT extract(epoch FROM clock_timestamp() - max(seen_at))::float8 FROM capture_workers"
)
LEASES = """
SELECT e.code, extract(epoch FROM l.expires_at - clock_timestamp())::float8
FROM capture_leases l JOIN equipment e ON e.tenant_id = l.tenant_id AND e.id = l.equipment_id
"""


async def database_families(connection: Any) -> list[Metric]:
    """Gauges read as the app role, tenant by tenant (row security stays on: each tenant's
    rows are read in its own scope, in one read-only transaction)."""
    running = GaugeMetricFamily(
        "opencdmo_transfer_jobs_running",
        "Tech-transfer verification jobs running, per tenant",
        labels=["tenant"],
    )
    lag = GaugeMetricFamily(
        "opencdmo_capture_newest_sample_age_seconds",
        "Seconds since the source time of an equipment unit's newest stored sample (capture lag)",
        labels=["tenant", "equipment"],
    )
    heartbeat = GaugeMetricFamily(
        "opencdmo_capture_worker_heartbeat_age_seconds",
        "Seconds since a capture worker of the tenant last reported (its newest heartbeat)",
        labels=["tenant"],
    )
    lease = GaugeMetricFamily(
        "opencdmo_capture_lease_seconds_left",
        "Seconds until a capture worker's lease on a unit runs out (its heartbeat; below 0: "
        "no worker holds it)",
        labels=["tenant", "equipment"],
    )
    async with connection.transaction(readonly=True):
        tenants = await connection.fetch("SELECT id, slug FROM tenants ORDER BY slug")
        for tenant in tenants:
            await connection.execute(SET_TENANT, str(tenant["id"]))
            count = await connection.fetchval(
                "SELECT count(*) FROM transfer_jobs WHERE state = 'running'"
            )
            running.add_metric([tenant["slug"]], float(count))
            for code, seconds in await connection.fetch(CAPTURE_LAG):
                lag.add_metric([tenant["slug"], code], seconds)
            seen = await connection.fetchval(HEARTBEAT)
            if seen is not None:
                heartbeat.add_metric([tenant["slug"]], seen)
            for code, seconds in await connection.fetch(LEASES):
                lease.add_metric([tenant["slug"], code], seconds)
        queue = await queue_depth(connection)
    return [running, lag, heartbeat, lease, *queue]


async def queue_depth(connection: Any) -> list[Metric]:
    """The background job queue's depth (``background_jobs``, a global table): jobs queued or
    running, per kind and state."""
    depth = GaugeMetricFamily(
        "opencdmo_job_queue_depth",
        "Background jobs queued or running, per kind and state",
        labels=["kind", "state"],
    )
    # Raw SQL: a GROUP BY count on the job table, read as the metrics scrape's own connection.
    rows = await connection.fetch(
        "SELECT kind, state, count(*) FROM background_jobs"
        " WHERE state IN ('queued', 'running') GROUP BY 1, 2"
    )
    for kind, state, count in rows:
        depth.add_metric([kind, state], float(count))
    return [depth]


def share_between_workers(run_dir: Path) -> Path:
    """Before ``serve`` starts worker processes: a fresh directory of this server's own for
    their counts (multiprocess mode), named in the environment they inherit."""
    for old in run_dir.glob("metrics-*"):  # of servers that have stopped (or this one's pid)
        pid = old.name.removeprefix("metrics-")
        if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            shutil.rmtree(old, ignore_errors=True)
    directory = run_dir / f"metrics-{os.getpid()}"
    directory.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
