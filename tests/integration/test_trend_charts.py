"""The trend charts of a batch's pages: the run page charts each unit a step holds over the
step's current phase, live, with the phase's limits of each signal; the review page charts
each unit over each phase it was bound during, not live; and the stream a chart opens
answers with the samples of that window."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import asyncpg
import pytest
from litestar import Litestar

from opencdmo.batches import equipment_use, trend_charts
from opencdmo.batches.execution import command_phase
from opencdmo.equipment import samples
from opencdmo.equipment.samples import Row
from opencdmo.settings import Settings
from tests.conftest import World
from tests.integration.batch_world import Plant, batch_of, new_plant, underway
from tests.integration.test_equipment import incubator, ready
from tests.integration.test_trend_stream import Stream, open_stream

SECTION = re.compile(
    r'<section class="trends" id="([^"]+)"[^>]*data-stream="([^"]+)"[^>]*'
    r'data-live="(true|false)"'
)
CHART = re.compile(r'<figure class="trend" id="([^"]+)" data-trend="([^"]+)"')


@pytest.fixture
async def plant(world: World, owner: asyncpg.Connection, settings: Settings, synced: Any) -> Plant:
    return await new_plant(world, owner, settings)


async def incubating(plant: Plant, settings: Settings) -> tuple[UUID, UUID]:
    """A running batch whose activate step holds INC-01, its incubation phase running."""
    unit = await ready(plant, settings, incubator(site="S1"))
    made = await batch_of(plant)
    await underway(plant, made.id, "incubation")
    await equipment_use.bind(plant.operator, made.id, "activate", unit.code)
    return made.id, unit.id


def charts(page: str) -> dict[str, Any]:
    return {k: json.loads(html.unescape(v)) for k, v in CHART.findall(page)}


async def test_the_run_page_charts_the_unit_over_the_running_phase_with_its_limits(
    app: Litestar,
    plant: Plant,
    settings: Settings,
    browser: Any,
    owner: asyncpg.Connection,
) -> None:
    batch_id, unit = await incubating(plant, settings)
    client = await browser("operator")
    page = await client.get(f"/t/{plant.ctx.slug}/batches/{batch_id}/run")
    assert page.status_code == 200, page.text
    [(group, url, live)] = SECTION.findall(page.text)
    assert live == "true" and group.startswith("trends-activate-")
    url = html.unescape(url)
    query = parse_qs(urlsplit(url).query)
    assert urlsplit(url).path == f"/t/{plant.ctx.slug}/equipment/INC-01/stream"
    assert sorted(query["signal"]) == ["chamber_temperature", "co2_concentration"]
    assert "end" not in query
    started = await owner.fetchval(
        "SELECT started_at FROM batch_phases WHERE batch_id = $1 AND phase = 'incubation'",
        batch_id,
    )
    bound = await owner.fetchval(
        "SELECT bound_at FROM batch_equipment WHERE batch_id = $1", batch_id
    )
    assert dt.datetime.fromisoformat(query["start"][0]) == max(started, bound)
    found = charts(page.text)
    temperature = found[f"{group}-chamber_temperature"]
    assert temperature["unit"] == "°C"
    assert temperature["bands"] == [{"kind": "limits", "low": 36.0, "high": 38.0}]
    assert temperature["excursions"] == []
    assert found[f"{group}-co2_concentration"]["bands"] == [
        {"kind": "limits", "low": 4.0, "high": 6.0}
    ]
    assert "INC-01 during Activation incubation" in page.text, page.text
    assert "Limits: 36 to 38 °C" in page.text

    # The chart's stream: the samples since the phase started, then new ones.
    now = dt.datetime.now(dt.UTC)
    before = max(started, bound) - dt.timedelta(seconds=1)  # before the window: not shown
    rows = [
        Row(unit, "chamber_temperature", v, None, 0, t, t) for t, v in ((before, 1.0), (now, 37.1))
    ]
    await samples.store(plant.ctx.tenant_id, rows)
    stream: Stream = await open_stream(app, client, url)
    try:
        history = json.loads((await stream.next("history"))["data"])
        assert history["chamber_temperature"] == [[round(now.timestamp() * 1000, 3), 37.1]]
    finally:
        await stream.close()


async def test_the_review_page_charts_each_phase_the_unit_was_bound_during(
    plant: Plant, settings: Settings, browser: Any
) -> None:
    batch_id, _ = await incubating(plant, settings)
    await command_phase(plant.operator, batch_id, "activate", "incubation", "complete", "done")
    groups = await trend_charts.for_review(plant.viewer, batch_id)
    assert [g.title for g in groups] == [
        "INC-01 during T-cell activation with anti-CD3/CD28 beads: Activation incubation"
    ]
    [group] = groups
    assert not group.live and group.end is not None and group.start is not None
    assert group.start < group.end
    client = await browser("approver")
    page = await client.get(f"/t/{plant.ctx.slug}/batches/{batch_id}/review")
    assert page.status_code == 200, page.text
    [(_, url, live)] = SECTION.findall(page.text)
    assert live == "false"
    assert parse_qs(urlsplit(html.unescape(url)).query)["end"] == [group.end.isoformat()]
    assert "Equipment trends" in page.text
    # The run page now has the phase's span as a closed window.
    bench = await trend_charts.at_the_bench(plant.viewer, batch_id)
    assert [g.live for g in bench["activate"]] == [False]


async def test_no_charts_without_a_unit_bound(plant: Plant, browser: Any) -> None:
    made = await batch_of(plant)
    await underway(plant, made.id, "incubation")
    assert await trend_charts.at_the_bench(plant.viewer, made.id) == {}
    assert await trend_charts.for_review(plant.viewer, made.id) == []
    page = await (await browser("operator")).get(f"/t/{plant.ctx.slug}/batches/{made.id}/run")
    assert page.status_code == 200 and "data-trends" not in page.text
