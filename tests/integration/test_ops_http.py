"""/metrics (Prometheus text, for the operator's token only) and the API rate limits."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from opencdmo.identity import service as identity
from opencdmo.ops import metrics, ratelimit
from opencdmo.ops import routes as ops_routes
from opencdmo.ops.ratelimit import Limiter, Rate
from tests.conftest import World, as_actor

METRICS_TOKEN = "metrics-" + "f" * 40


@pytest.fixture
def metrics_token() -> Iterator[str]:
    ops_routes.configure(METRICS_TOKEN)
    yield METRICS_TOKEN
    ops_routes.configure(None)


def _samples(text: str, name: str) -> list[Any]:
    return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


async def test_metrics_are_not_served_without_the_setting(browser: Any) -> None:
    client = await browser()
    assert (await client.get("/metrics")).status_code == 404
    assert (
        await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    ).status_code == 404


async def test_metrics_need_the_metrics_token(
    browser: Any, world: World, metrics_token: str
) -> None:
    client = await browser()
    ctx = as_actor(world.alpha, world["admin"])
    tenant_token, _ = await identity.create_token(ctx, world["admin"].user_id, "not for metrics")
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": tenant_token},
        {"Authorization": f"Bearer {tenant_token}"},
    ):
        refused = await client.get("/metrics", headers=headers)
        assert refused.status_code == 401, headers
        assert "metrics bearer token" in refused.text
        assert "opencdmo_http" not in refused.text
    admin = await browser("admin")  # a signed-in tenant admin's session does not do either
    assert (await admin.get("/metrics")).status_code == 401


async def test_metrics_count_requests_per_route_template(
    browser: Any, world: World, metrics_token: str
) -> None:
    ctx = as_actor(world.alpha, world["admin"])
    token, _ = await identity.create_token(ctx, world["admin"].user_id, "metrics test")
    client = await browser()
    bearer = {"Authorization": f"Bearer {token}"}
    scrape = {"Authorization": f"Bearer {metrics_token}"}
    before = await client.get("/metrics", headers=scrape)
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    route = "/api/v1/t/{slug}/members"

    def count(text: str) -> float:
        return sum(
            s.value
            for s in _samples(text, "opencdmo_http_requests_total")
            if s.labels == {"method": "GET", "route": route, "status": "200"}
        )

    for _ in range(3):
        assert (await client.get("/api/v1/t/alpha/members", headers=bearer)).status_code == 200
    after = (await client.get("/metrics", headers=scrape)).text
    assert count(after) - count(before.text) == 3
    assert "/api/v1/t/alpha/members" not in after, "labels name templates, never raw paths"
    latency = [
        s
        for s in _samples(after, "opencdmo_http_request_duration_seconds_count")
        if s.labels == {"method": "GET", "route": route}
    ]
    assert latency and latency[0].value >= 3
    running = _samples(after, "opencdmo_transfer_jobs_running")
    assert {s.labels["tenant"] for s in running} >= {"alpha", "beta"}
    families = {f.name for f in text_string_to_metric_families(after)}
    assert {
        "opencdmo_capture_newest_sample_age_seconds",
        "opencdmo_capture_lease_seconds_left",
    } <= families


RECORD = """
import sys
from opencdmo.ops import metrics
for _ in range(int(sys.argv[1])):
    metrics.observe("GET", "/api/v1/t/{slug}/members", 200, 0.01)
"""


async def test_worker_processes_counts_add_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `serve --workers N` does: one directory for all workers, the scrape sums them."""
    monkeypatch.setenv(metrics.MULTIPROC_ENV, "")
    directory = metrics.share_between_workers(tmp_path)
    assert os.environ[metrics.MULTIPROC_ENV] == str(directory)
    for n in (2, 5):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", RECORD, str(n), env=dict(os.environ)
        )
        assert await process.wait() == 0
    text = metrics.process_text().decode()
    totals = [
        s.value
        for s in _samples(text, "opencdmo_http_requests_total")
        if s.labels.get("route") == "/api/v1/t/{slug}/members"
    ]
    assert totals == [7.0]
    stopped = tmp_path / "metrics-999999999"  # a server that is not running any more
    stopped.mkdir()
    again = metrics.share_between_workers(tmp_path)
    assert again == directory and not any(again.iterdir()), "a new server starts from zero"
    assert not stopped.exists(), "the counts of stopped servers are removed"


# --- rate limits ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Iterator[Clock]:
    """Per token 60 a minute with 2 seconds of burst (3 at once), per tenant 120 a minute
    (5 at once), on a clock the test moves."""
    clock = Clock()
    previous = ratelimit.limiter()
    ratelimit.configure(Limiter(Rate(60, 2), Rate(120, 2), clock=clock))
    yield clock
    ratelimit.configure(previous)


async def _token(world: World, tenant: str, persona: str) -> dict[str, str]:
    ctx = as_actor(getattr(world, tenant), world[persona])
    token, _ = await identity.create_token(ctx, world[persona].user_id, "rate test")
    return {"Authorization": f"Bearer {token}"}


async def test_api_rate_limits_per_token_and_tenant(
    browser: Any, world: World, clock: Clock
) -> None:
    client = await browser()
    first = await _token(world, "alpha", "admin")
    second = await _token(world, "alpha", "admin")
    other = await _token(world, "beta", "outsider")
    path = "/api/v1/t/alpha/members"
    for _ in range(3):
        assert (await client.get(path, headers=first)).status_code == 200
    refused = await client.get(path, headers=first)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert "this API token" in refused.json()["error"]["message"]
    # Another token of the same tenant is not held back by the first one's limit ...
    assert (await client.get(path, headers=second)).status_code == 200
    assert (await client.get(path, headers=second)).status_code == 200
    # ... until the tenant's own limit (5 at once) is reached.
    tenant_refused = await client.get(path, headers=second)
    assert tenant_refused.status_code == 429
    assert "this tenant" in tenant_refused.json()["error"]["message"]
    assert int(tenant_refused.headers["retry-after"]) >= 1
    # Another tenant is not affected at all.
    assert (await client.get("/api/v1/t/beta/members", headers=other)).status_code == 200
    # The limit recovers as time passes.
    clock.now += 1
    assert (await client.get(path, headers=first)).status_code == 200


async def test_rate_limits_leave_pages_and_unresolved_calls_alone(
    browser: Any, world: World, clock: Clock
) -> None:
    admin = await browser("admin")
    for _ in range(8):
        assert (await admin.get("/t/alpha/")).status_code in (200, 303)
    anonymous = await browser()
    for _ in range(8):
        assert (await anonymous.get("/api/v1/t/alpha/members")).status_code == 401


def test_limits_are_shared_out_by_worker_count() -> None:
    from opencdmo.settings import Settings

    limiter = Limiter.from_settings(
        Settings(api_rate_per_token=600, api_rate_per_tenant=0, workers=4)
    )
    assert limiter.per_tenant is None
    assert limiter.per_credential is not None
    assert limiter.per_credential.interval == pytest.approx(60 * 4 / 600)


def test_a_refused_request_is_not_counted() -> None:
    clock = Clock()
    limiter = Limiter(Rate(60, 0), None, clock=clock)
    limiter.check("token:a", "t")
    for _ in range(5):
        with pytest.raises(ratelimit.RateLimited):
            limiter.check("token:a", "t")
    clock.now += 1
    limiter.check("token:a", "t")
    assert re.fullmatch(r"\d+", str(ratelimit.RateLimited("x", 3).headers["Retry-After"]))


async def test_capture_lag_is_the_newest_sample_of_each_unit(
    browser: Any, own_tenant: Any, owner: Any, metrics_token: str
) -> None:
    tenant = own_tenant.tenant_id
    site = await owner.fetchval("SELECT id FROM sites WHERE tenant_id = $1 AND code = 'A1'", tenant)
    unit = await owner.fetchval(
        "INSERT INTO equipment (tenant_id, code, class_slug, name, site_id)"
        " VALUES ($1, 'LAG-01', 'bioreactor', 'Lag test unit', $2) RETURNING id",
        tenant,
        site,
    )
    await owner.execute(
        "INSERT INTO equipment (tenant_id, code, class_slug, name, site_id)"
        " VALUES ($1, 'QUIET-01', 'bioreactor', 'Never sampled', $2)",
        tenant,
        site,
    )
    for signal, hours in (("temp", 72), ("ph", 1), ("temp", 48)):
        await owner.execute(
            "INSERT INTO equipment_samples (tenant_id, equipment_id, signal, value, source_time)"
            " VALUES ($1, $2, $3, 1.0, clock_timestamp() - make_interval(hours => $4))",
            tenant,
            unit,
            signal,
            hours,
        )
    await owner.execute(
        "INSERT INTO capture_workers (tenant_id, worker, seen_at, expires_at) VALUES"
        " ($1, 'lag-test', clock_timestamp() - interval '2 hours', clock_timestamp())",
        tenant,
    )
    client = await browser()
    text = (await client.get("/metrics", headers={"Authorization": f"Bearer {metrics_token}"})).text
    lag = {
        s.labels["equipment"]: s.value
        for s in _samples(text, "opencdmo_capture_newest_sample_age_seconds")
        if s.labels["tenant"] == own_tenant.slug
    }
    assert set(lag) == {"LAG-01"}, "a unit without samples has no lag to show"
    assert 3600 <= lag["LAG-01"] < 48 * 3600, "the newest sample of any signal counts"
    beat = [
        s.value
        for s in _samples(text, "opencdmo_capture_worker_heartbeat_age_seconds")
        if s.labels["tenant"] == own_tenant.slug
    ]
    assert len(beat) == 1 and 7200 <= beat[0] < 48 * 3600


async def test_the_job_queue_depth_counts_queued_jobs_by_kind(
    browser: Any, owner: Any, metrics_token: str
) -> None:
    """URS-OPS-02: the queue's depth per kind and state, from background_jobs."""
    kind = f"metrics-test-{uuid.uuid4().hex[:8]}"
    await owner.executemany(
        "INSERT INTO background_jobs (kind, run_after) VALUES ($1, clock_timestamp() + "
        "interval '1 day')",
        [(kind,), (kind,)],
    )
    try:
        client = await browser()
        headers = {"Authorization": f"Bearer {metrics_token}"}
        text = (await client.get("/metrics", headers=headers)).text
        depth = [
            (s.labels["state"], s.value)
            for s in _samples(text, "opencdmo_job_queue_depth")
            if s.labels["kind"] == kind
        ]
        assert depth == [("queued", 2.0)]
    finally:
        await owner.execute("DELETE FROM background_jobs WHERE kind = $1", kind)
