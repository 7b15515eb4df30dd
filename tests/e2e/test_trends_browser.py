"""Trend charts in a real browser: the equipment unit's page draws every signal from its
stored samples (a canvas in each chart, and its text alternative with the latest value),
then a sample stored while the page is open arrives and is drawn; the run page draws the
incubator a step holds over its running phase, with the phase's limits."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Browser, expect

from opencdmo.batches import equipment_use
from opencdmo.equipment import samples
from opencdmo.equipment.samples import Row
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from tests.conftest import World
from tests.e2e.conftest import check_page
from tests.e2e.test_inventory_browser import signed_in
from tests.integration.batch_world import batch_of, new_plant, underway
from tests.integration.test_capture import bioreactor
from tests.integration.test_equipment import incubator, ready

pytestmark = pytest.mark.e2e


async def test_the_unit_page_draws_its_signals_and_a_new_sample(
    server: str,
    chromium: Browser,
    own_tenant: TenantContext,
    world: World,
    synced: Any,
    owner: asyncpg.Connection,
) -> None:
    unit = await bioreactor(own_tenant, world, "opc.tcp://127.0.0.1:4841")
    code = await owner.fetchval("SELECT code FROM equipment WHERE id = $1", unit)
    now = dt.datetime.now(dt.UTC)
    values = [(now - dt.timedelta(seconds=300 - 5 * i), 37.0 + (i % 5) / 20) for i in range(59)]
    values.append((now - dt.timedelta(seconds=2), 37.25))
    stored = [Row(unit, "culture_temperature", v, None, 0, t, t) for t, v in values]
    await samples.store(own_tenant.tenant_id, stored)

    url = f"{server}/t/{own_tenant.slug}/equipment/{code}"
    page = await signed_in(chromium, "supervisor@alpha.test", url, "trends-unit")
    chart = page.locator(f"#trends-{code}-1-culture_temperature")
    summary = chart.locator("[data-trend-summary]")
    await expect(chart.locator("canvas")).to_have_count(1)
    await expect(summary).to_contain_text("Latest 37.25 °C")
    await expect(summary).to_contain_text("lowest 37 °C, highest 37.25 °C, 60 points")
    ph = page.locator(f"#trends-{code}-1-ph [data-trend-summary]")
    await expect(ph).to_have_text("No samples in the window yet.")
    await expect(page.locator(f"#trends-{code}-1 [data-trends-status]")).to_have_text("Live")
    box = await chart.locator("[data-trend-plot]").bounding_box()
    assert box is not None and box["height"] == 200

    fresh = dt.datetime.now(dt.UTC)
    await samples.store(
        own_tenant.tenant_id, [Row(unit, "culture_temperature", 38.5, None, 0, fresh, fresh)]
    )
    await expect(summary).to_contain_text("Latest 38.5 °C", timeout=10_000)
    await expect(summary).to_contain_text("highest 38.5 °C, 61 points")
    after = await chart.locator("[data-trend-plot]").bounding_box()
    assert after == box  # the data moved nothing
    await check_page(page, "trends-unit-live")


async def test_the_run_page_draws_the_incubator_over_the_running_phase_with_its_limits(
    server: str,
    chromium: Browser,
    world: World,
    synced: Any,
    owner: asyncpg.Connection,
    settings: Settings,
) -> None:
    plant = await new_plant(world, owner, settings)
    unit = await ready(plant, settings, incubator(site="S1"))
    made = await batch_of(plant)
    await underway(plant, made.id, "incubation")
    await equipment_use.bind(plant.operator, made.id, "activate", unit.code)
    now = dt.datetime.now(dt.UTC)
    values = [(now + dt.timedelta(milliseconds=10 * i), 37.0 + i / 100) for i in range(10)]
    stored = [Row(unit.id, "chamber_temperature", v, None, 0, t, t) for t, v in values]
    await samples.store(plant.ctx.tenant_id, stored)

    url = f"{server}/t/{plant.ctx.slug}/batches/{made.id}/run"
    page = await signed_in(chromium, "operator@alpha.test", url, "trends-run")
    group = page.locator("#s-activate section.trends")
    await expect(group.locator("h4")).to_have_text("INC-01 during Activation incubation")
    chart = group.locator("figure", has_text="Chamber temperature")
    await expect(chart.locator("canvas")).to_have_count(1)
    await expect(chart.locator("[data-trend-summary]")).to_contain_text("Latest 37.09 °C")
    await expect(chart.locator(".trend-band-limits")).to_have_text("Limits: 36 to 38 °C")
    co2 = group.locator("figure", has_text="CO2 concentration")
    await expect(co2.locator(".trend-band-limits")).to_have_text("Limits: 4 to 6 %")
    await check_page(page, "trends-run-drawn")
